"""The start function's work: plan a new run and submit its first calls."""

from __future__ import annotations

from typing import Any

from miniwdl_serverless.controller.actions import Plan
from miniwdl_serverless.controller.context import load_context
from miniwdl_serverless.controller.drive import Driver
from miniwdl_serverless.controller.end import AnswerNotSent, answer_owed, send_answer
from miniwdl_serverless.controller.ports import Ports
from miniwdl_serverless.controller.progress import restart
from miniwdl_serverless.core.decisions import ended_answer
from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.core.records import RUN_ENDED, RUN_RUNNING, Run


def start_run(
    execution_input: Any,
    task_token: str,
    execution_arn: str,
    started_at: str | None,
    ports: Ports,
) -> dict[str, Any]:
    """Idempotent. Step Functions retries Start (a transient failure, a crash), each attempt
    with its own task token: a retry finishes what the first attempt left, and the run's end
    answers the newest token. Bad input fails the run before any job, with the problem in the
    execution's error and cause. Raises AnswerNotSent if the run ended and Step Functions
    could not be told."""
    run_id = run_id_of(execution_arn)
    existing = ports.store.get_run(run_id)
    if existing is not None and existing.status == RUN_RUNNING:
        if _take_token(existing, task_token, ports):
            _restart(existing, ports)
            return {"run_id": run_id, "resumed": True}
        existing = ports.store.get_run(run_id)  # it ended meanwhile
    if existing is not None and existing.status in RUN_ENDED:
        return _answer_ended(existing, task_token, ports)
    driver = Driver(ports)
    driver.run([Plan(execution_input, task_token, execution_arn, started_at, run_id)])
    return driver.result or {"run_id": run_id}


def _restart(run: Run, ports: Ports) -> None:
    """Offer the first jobs again (Step Functions retries only an attempt that died). A first
    job marked running without a Batch job is the submitter's: its item is in the work table,
    or, if the dead attempt died before handing it on, the reconciler resubmits it once its
    lease ran out (looked up by name first)."""
    ctx = load_context(run, ports)
    Driver(ports, ctx).run(restart(ctx))


def _take_token(run: Run, task_token: str, ports: Ports) -> bool:
    """The running run's end answers this attempt's token from now on (False: it ended)."""
    if run.task_token == task_token:
        return True
    taken = ports.store.set_run_status(
        run.run_id, RUN_RUNNING, [RUN_RUNNING], task_token=task_token
    )
    run.task_token = task_token
    return taken


def _answer_ended(run: Run, task_token: str, ports: Ports) -> dict[str, Any]:
    """A retried Start of a run that ended: the answer it owes, to this attempt's token."""
    if task_token == run.task_token:
        sent = answer_owed(run, ports)
    else:
        sent = send_answer(ports, run.run_id, task_token, ended_answer(run))
    if not sent:
        raise AnswerNotSent(run.run_id)
    return {"run_id": run.run_id, "resumed": True}
