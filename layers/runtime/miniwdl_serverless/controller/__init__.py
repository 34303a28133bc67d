"""The controller: start a run, react to Batch events, drive the graph, end the run (on ports)."""
