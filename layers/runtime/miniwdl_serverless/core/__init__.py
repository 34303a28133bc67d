"""The pure core: WDL planning, decisions, ids, records, options and errors (no AWS, no I/O)."""
