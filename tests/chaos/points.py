"""The write points of the controller, enumerated from its ports: every method of every port
Protocol (controller/ports.py) is classified here as a read or a write. A write is a call
after which a Lambda that dies leaves something changed in the world, so the chaos run
crashes once right after each of them. ``test_chaos.py`` fails if a port method is missing
from this table, so a new port method cannot be forgotten."""

from __future__ import annotations

import inspect

from miniwdl_serverless.controller import ports

# The ports whose methods the controller calls while it runs a workflow, by Ports field.
PORTS: dict[str, type] = {
    "store": ports.RunStore,
    "files": ports.RunFiles,
    "batch": ports.BatchJobs,
    "orchestrator": ports.Orchestrator,
    "uploads": ports.Uploads,
    "metrics": ports.Metrics,
    "sources": ports.WorkflowSources,
    "remotes": ports.Remotes,
    "cache": ports.CacheStore,
    "work": ports.WorkQueue,
    # the reconciler's own (controller/reconcile.py:ReconcilePorts)
    "runs": ports.LiveRuns,
    "dead_letters": ports.DeadLetters,
}

READ, WRITE = "read", "write"

KINDS: dict[str, dict[str, str]] = {
    "store": {
        "create_run": WRITE,
        "put_run": WRITE,
        "get_run": READ,
        "set_run_status": WRITE,
        "mark_answered": WRITE,
        "record_upload": WRITE,
        "count": WRITE,
        "put_new_jobs": WRITE,
        "register_waiter": WRITE,
        "get_job": READ,
        "get_run_and_job": READ,
        "get_jobs": READ,
        "query_jobs": READ,
        "claim": WRITE,
        "mark_running": WRITE,
        "renew_lease": WRITE,
        "record_batch_job": WRITE,
        "note_started": WRITE,
        "take_leases": WRITE,
        "record_batch_jobs": WRITE,
        "stop_awaiting": WRITE,
        "update_job": WRITE,
        "complete": WRITE,
        "tally_shard": WRITE,
        "tally_bucket": WRITE,
        "tallied": READ,
        "fail_job": WRITE,
    },
    "files": {
        "create_run_dir": WRITE,
        "inside_root": READ,
        "make_dirs": WRITE,
        "write_text": WRITE,
        "read_text": READ,
        "write_json": WRITE,
        "store_value": WRITE,  # may write a spill file
        "load_value": READ,
        "append_log": WRITE,
        "prepare_call": WRITE,
        "point_last": WRITE,
        "link_output": WRITE,
        "exists": READ,
        "is_dir": READ,
        "is_file": READ,
        "is_own_file": READ,
        "real_path": READ,
        "file_size": READ,
        "list_files": READ,
        "remove_tree": WRITE,
        "open_new": WRITE,
        "move": WRITE,
        "stamp": READ,
    },
    "batch": {"find": READ, "describe": READ, "submit": WRITE, "terminate": WRITE},
    "work": {"put": WRITE, "get": READ},
    "orchestrator": {"send_success": WRITE, "send_failure": WRITE},
    "uploads": {"upload_file": WRITE, "put_json": WRITE, "get_json": READ},
    # metrics are best effort and never read back; a source is only read
    "metrics": {"count": READ},
    "sources": {"fetch": READ},
    "remotes": {"probe": READ, "fetch": READ},  # a fetch writes through files.open_new
    "cache": {
        "get_entry": READ,
        "claim_entry": WRITE,
        "add_waiter": WRITE,
        "settle_entry": WRITE,
        "put_entry": WRITE,
    },
    "runs": {"running": READ},
    "dead_letters": {"receive": READ, "delete": WRITE},  # deleted only after its replay
}


def protocol_methods(protocol: type) -> list[str]:
    """The public methods a port Protocol declares (its own, not typing's)."""
    return sorted(
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )


def unclassified() -> list[str]:
    """``port.method`` for every Protocol method this table does not classify (or names that
    are no Protocol method any more)."""
    problems = []
    for port, protocol in PORTS.items():
        declared = set(protocol_methods(protocol))
        table = set(KINDS.get(port, {}))
        problems += [f"{port}.{name}" for name in sorted(declared ^ table)]
    return problems


def write_points() -> list[tuple[str, str]]:
    """Every (port, method) that writes, in the Protocols' order."""
    return [
        (port, name)
        for port, protocol in PORTS.items()
        for name in protocol_methods(protocol)
        if KINDS[port][name] == WRITE
    ]


def is_write(port: str, method: str) -> bool:
    return KINDS.get(port, {}).get(method) == WRITE
