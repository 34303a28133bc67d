"""Ending a run: success, failure (fail fast: terminate the other Batch jobs), stop."""

from __future__ import annotations

import logging
import os
from typing import Any

from miniwdl_serverless.controller.context import RunContext
from miniwdl_serverless.controller.ports import Ports, RunFiles
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.records import (
    RUN_FAILED,
    RUN_PLANNING,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
)

log = logging.getLogger("miniwdl_serverless.controller")
LIVE = (RUN_PLANNING, RUN_RUNNING)


def succeed_run(ctx: RunContext, outputs: dict[str, Any]) -> None:
    stored = ctx.store_value(outputs, "run.outputs")
    store = ctx.ports.store
    if store.set_run_status(ctx.run_id, RUN_SUCCEEDED, [RUN_RUNNING], outputs=stored):
        ctx.log("workflow finished")
    answer = {"run_id": ctx.run_id, "dir": ctx.run_dir}
    ctx.ports.orchestrator.send_success(str(ctx.run.task_token), answer)


def fail_run(ctx: RunContext, error: RunError) -> None:
    """Record the error, terminate the run's other Batch jobs, tell Step Functions."""
    ctx.run.status = RUN_FAILED
    if not ctx.ports.store.set_run_status(ctx.run_id, RUN_FAILED, LIVE, error=error.info):
        return
    ctx.log(f"workflow failed: {error.info.get('message')}")
    write_json_best_effort(ctx.ports.files, os.path.join(ctx.run_dir, "error.json"), error.info)
    terminate_run_jobs(ctx.ports, ctx.run_id, f"miniwdl-serverless: run failed ({error.name})")
    ctx.ports.orchestrator.send_failure(str(ctx.run.task_token), error.name, error.cause)


def stop_run(run_id: str, execution_status: str, ports: Ports) -> int:
    """The execution ended without the run ending (stopped, timed out): fail the run and
    terminate its Batch jobs. Returns how many were terminated. Idempotent."""
    run = ports.store.get_run(run_id)
    if run is None or run.status == RUN_SUCCEEDED:
        return 0
    message = f"the Step Functions execution ended: {execution_status}"
    if run.status != RUN_FAILED:
        error = RunError.of("RunStopped", message)
        ports.store.set_run_status(run_id, RUN_FAILED, LIVE, error=error.info)
    return terminate_run_jobs(ports, run_id, f"miniwdl-serverless: execution {execution_status}")


def terminate_run_jobs(ports: Ports, run_id: str, reason: str) -> int:
    count = 0
    for job in ports.store.query_jobs(run_id, [RUNNING]):
        if job.batch_job_id:
            try:
                ports.batch.terminate(job.batch_job_id, reason)
                count += 1
            except Exception as exn:  # one job that cannot be stopped does not stop the rest
                log.warning("terminate %s: %s", job.batch_job_id, exn)
    return count


def write_json_best_effort(files: RunFiles, path: str, data: Any) -> None:
    """A JSON file users look at (error.json, outputs.json); EFS may be gone already."""
    try:
        files.write_json(path, data)
    except OSError as exn:
        log.warning("cannot write %s: %s", path, exn)
