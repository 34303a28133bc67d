"""Ending a run: success, failure (fail fast: terminate the other Batch jobs), stop; and the
answer the Start task's token is owed, re-sent until it is known to have been sent."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from miniwdl_serverless.controller.ports import Ports, RunFiles
from miniwdl_serverless.core.decisions import Answer, owed_answer
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.records import (
    RUN_FAILED,
    RUN_PLANNING,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
    Run,
)

if TYPE_CHECKING:  # the context needs miniwdl; cancel's stop_run needs neither
    from miniwdl_serverless.controller.context import RunContext

log = logging.getLogger("miniwdl_serverless.controller")
LIVE = (RUN_PLANNING, RUN_RUNNING)


class AnswerNotSent(Exception):  # noqa: N818 - what happened, as the other outcomes read
    """Step Functions could not be told how the run ended (throttled, unreachable). The
    invocation fails so that its event is delivered again; the run's ``answer_due`` says
    what to send then (``answer_owed``)."""


def succeed_run(ctx: RunContext, outputs: dict[str, Any]) -> None:
    stored = ctx.store_value(outputs, "run.outputs")
    store = ctx.ports.store
    answer = Answer.success(ctx.run_id, ctx.run_dir)
    due = answer.due()
    if store.set_run_status(
        ctx.run_id, RUN_SUCCEEDED, [RUN_RUNNING], outputs=stored, answer_due=due
    ):
        ctx.log("workflow finished")
    else:  # ended before (a resumed end): answer only what is still owed
        run = store.get_run(ctx.run_id)
        owed = owed_answer(run) if run is not None else None
        if owed is None:
            return
        answer = owed
    if not send_answer(ctx.ports, ctx.run_id, current_token(ctx), answer):
        ctx.unanswered = True


def current_token(ctx: RunContext) -> str:
    """The token to answer, read after the run's end was written: a retried Start may have
    replaced the one this invocation loaded (and cannot once the run has ended)."""
    run = ctx.ports.store.get_run(ctx.run_id)
    return str((run or ctx.run).task_token)


def fail_run(ctx: RunContext, error: RunError) -> None:
    """Record the error, terminate the run's other Batch jobs, tell Step Functions."""
    ctx.run.status = RUN_FAILED
    answer = Answer.failure(error)
    store = ctx.ports.store
    if not store.set_run_status(
        ctx.run_id, RUN_FAILED, LIVE, error=error.info, answer_due=answer.due()
    ):
        return
    ctx.log(f"workflow failed: {error.info.get('message')}")
    write_json_best_effort(ctx.ports.files, os.path.join(ctx.run_dir, "error.json"), error.info)
    terminate_run_jobs(ctx.ports, ctx.run_id, f"miniwdl-serverless: run failed ({error.name})")
    if not send_answer(ctx.ports, ctx.run_id, current_token(ctx), answer):
        ctx.unanswered = True


def fail_unloadable_run(run: Run, ports: Ports, error: RunError) -> bool:
    """Fail a run whose context cannot be loaded — its WDL bundle on EFS was changed, swapped
    for a link or a FIFO, or its run directory for a link — as ``fail_run`` does, without the
    document. False if Step Functions could not be told."""
    answer = Answer.failure(error)
    if not ports.store.set_run_status(
        run.run_id, RUN_FAILED, LIVE, error=error.info, answer_due=answer.due()
    ):
        return True  # ended meanwhile, by whoever ended it
    log.error("the run's context cannot be loaded", extra={"error": error.info})
    if run.run_dir:
        write_json_best_effort(ports.files, os.path.join(run.run_dir, "error.json"), error.info)
    terminate_run_jobs(ports, run.run_id, f"miniwdl-serverless: run failed ({error.name})")
    return send_answer(ports, run.run_id, str(run.task_token), answer)


def answer_owed(run: Run, ports: Ports) -> bool:
    """An ended run whose answer may not have been sent (the invocation that ended it died,
    or Step Functions could not be told): finish what ending it does after the status write
    (a failed run's fail fast; error.json is Finish's too) and send the answer again.
    False if it still could not be sent."""
    answer = owed_answer(run)
    if answer is None:
        return True
    if run.status == RUN_FAILED:
        terminate_run_jobs(ports, run.run_id, f"miniwdl-serverless: run failed ({answer.error})")
    return send_answer(ports, run.run_id, str(run.task_token), answer)


def send_answer(ports: Ports, run_id: str, token: str, answer: Answer) -> bool:
    """Tell Step Functions; once it has the answer (or refuses it for good), the run owes none."""
    orchestrator = ports.orchestrator
    if answer.output is not None:
        sent = orchestrator.send_success(token, answer.output)
    else:
        sent = orchestrator.send_failure(token, str(answer.error), str(answer.cause))
    if sent:
        ports.store.mark_answered(run_id)
    return sent


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
    count, stopped = 0, set()
    for job in ports.store.query_jobs(run_id, [RUNNING]):
        # an array child's id is "<parent>:<index>": stopping the parent stops its children
        batch_job_id = (job.batch_job_id or "").split(":", 1)[0]
        if batch_job_id and batch_job_id not in stopped:
            stopped.add(batch_job_id)
            try:
                ports.batch.terminate(batch_job_id, reason)
                count += 1
            except Exception as exn:  # one job that cannot be stopped does not stop the rest
                log.warning("terminate %s: %s", batch_job_id, exn)
    return count


def write_json_best_effort(files: RunFiles, path: str, data: Any) -> None:
    """A JSON file users look at (error.json, outputs.json); EFS may be gone already."""
    try:
        files.write_json(path, data)
    except OSError as exn:
        log.warning("cannot write %s: %s", path, exn)
