"""`status` and `list` on local runs: read from the state directory `miniwdl-serverless run`
keeps (local/state.py), without starting the embedded AWS. The executions saved there stand in
for Step Functions' and the runs and jobs tables' items are read with the DynamoDB store's own
item models, so the output is the same as for a deployed stack's runs.

Which one a command reads: ``--local`` or ``--state-dir`` → local runs; else a stack given by
flag or environment → that stack; else local runs, if the state directory has any (a note on
stderr says so), or the usual "which stack?" error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from miniwdl_serverless.cli.submit import ENV_STACK, ENV_STATE_MACHINE, UsageError
from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.core.records import Job, Run
from miniwdl_serverless.local.persistence import EXECUTIONS
from miniwdl_serverless.local.state import Item, Snapshot, StateDir, paused_gc, state_dir_path


def chosen(args: argparse.Namespace, environ: Mapping[str, str]) -> StateDir | None:
    """The state directory to read, or None when the command is for a deployed stack."""
    explicit = bool(args.local or args.state_dir)
    if explicit and (args.stack or args.state_machine):
        raise UsageError(
            "--local and --state-dir read local runs: leave out --stack and --state-machine"
        )
    state = StateDir(state_dir_path(args.state_dir, environ))
    if explicit:
        return state
    if args.stack or args.state_machine or environ.get(ENV_STACK) or environ.get(ENV_STATE_MACHINE):
        return None
    if not state.exists():
        raise UsageError(
            f"which stack? give --stack NAME or --state-machine ARN (or set {ENV_STACK}); "
            f"there are no local runs in {state.path} either"
        )
    print(f"miniwdl-serverless: no stack given: local runs in {state.path}", file=sys.stderr)
    return state


class LocalRuns:
    """The runs of one state directory (as saved: expired items left out)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot.live()

    @classmethod
    def read(cls, state: StateDir) -> LocalRuns:
        with paused_gc():
            return cls(state.read())

    def _items(self, collection: str | None) -> list[Item]:
        found = self.snapshot.collections.get(collection) if collection else None
        return list(found.items.values()) if found is not None else []

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        """As Step Functions' ListExecutions gives them, newest first."""
        found = [_execution(item) for item in self._items(EXECUTIONS)]
        if status:
            found = [e for e in found if e["status"] == status]
        return sorted(found, key=lambda e: e["startDate"], reverse=True)

    def execution(self, run: str) -> dict[str, Any] | None:
        """A run id (the execution name) or execution ARN, as DescribeExecution gives it."""
        run_id = run_id_of(run)
        for execution in self.executions():
            if execution["name"] == run_id or execution["executionArn"] == run:
                return execution
        return None

    def run(self, run_id: str) -> Run | None:
        from miniwdl_serverless.adapters.dynamodb_items import RunItem, run_record

        for item in self._items(self.snapshot.roles.get("runs")):
            if item["run_id"].get("S") == run_id:
                return run_record(RunItem.from_raw_data(item))
        return None

    def run_in(self, run_dir: str) -> Run | None:
        """The run whose run directory is ``run_dir`` (a real path)."""
        from miniwdl_serverless.adapters.dynamodb_items import RunItem, run_record

        for item in self._items(self.snapshot.roles.get("runs")):
            found = item.get("run_dir", {}).get("S")
            if found and os.path.realpath(found) == run_dir:
                return run_record(RunItem.from_raw_data(item))
        return None

    def jobs(self, run_id: str) -> list[Job]:
        from miniwdl_serverless.adapters.dynamodb_items import JobItem, job_record

        records = (
            job_record(JobItem.from_raw_data(item))
            for item in self._items(self.snapshot.roles.get("jobs"))
            if item["run_id"].get("S") == run_id
        )
        return [job for job in records if job is not None]


def _execution(item: Item) -> dict[str, Any]:
    def when(name: str) -> datetime | None:
        value = item.get(name)
        if value is None:
            return None
        return datetime.fromtimestamp(float(value["N"]), tz=timezone.utc).astimezone()

    return {
        "executionArn": item["executionArn"]["S"],
        "stateMachineArn": item.get("stateMachineArn", {}).get("S"),
        "name": item["name"]["S"],
        "status": item["status"]["S"],
        "startDate": when("startDate"),
        "stopDate": when("stopDate"),
    }


def status(
    args: argparse.Namespace, state: StateDir
) -> tuple[dict[str, Any], Run | None, list[Job]]:
    """What `status` shows of a local run: (execution, run record, jobs)."""
    runs = LocalRuns.read(state)
    execution = runs.execution(args.run)
    if execution is None:
        raise UsageError(f"no run {args.run} among the local runs in {state.path}")
    run_id = str(execution["name"])
    return execution, runs.run(run_id), runs.jobs(run_id)


def list_runs(args: argparse.Namespace, state: StateDir) -> list[dict[str, Any]]:
    """What `list` shows of local runs: executions, newest first."""
    return LocalRuns.read(state).executions(args.status)[: args.limit]
