"""The start function's work: plan a new run and submit its first calls."""

from __future__ import annotations

import time
from typing import Any

from miniwdl_serverless.controller.actions import Plan
from miniwdl_serverless.controller.context import load_context, load_scope
from miniwdl_serverless.controller.drive import Driver
from miniwdl_serverless.controller.end import AnswerNotSent, answer_owed
from miniwdl_serverless.controller.ports import Ports
from miniwdl_serverless.controller.progress import expand
from miniwdl_serverless.core import planner
from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.core.records import RUN_PLANNING, RUN_RUNNING, RUNNING, Run

START = "start"  # the claimant of the jobs planning found ready (planning.py)


def start_run(
    execution_input: Any,
    task_token: str,
    execution_arn: str,
    started_at: str | None,
    ports: Ports,
) -> dict[str, Any]:
    """Idempotent: a retried start of a run that got going changes nothing (but sends an
    answer the run still owes). Bad input fails the run before any job, with the problem in
    the execution's error and cause. Raises AnswerNotSent if the run ended and Step
    Functions could not be told."""
    run_id = run_id_of(execution_arn)
    existing = ports.store.get_run(run_id)
    if existing is not None and existing.status == RUN_RUNNING:
        resume_start(existing, ports)
        return {"run_id": run_id, "resumed": True}
    if existing is not None and existing.status != RUN_PLANNING:
        if not answer_owed(existing, ports):
            raise AnswerNotSent(run_id)
        return {"run_id": run_id, "resumed": True}
    driver = Driver(ports)
    driver.run([Plan(execution_input, task_token, execution_arn, started_at, run_id)])
    return driver.result or {"run_id": run_id}


def resume_start(run: Run, ports: Ports) -> None:
    """A retried start of a running run (Step Functions retries the Start state when Lambda
    failed, perhaps after the first invocation planned the run and died before submitting
    all the first jobs; nothing else would ever submit them): follow planning's first jobs
    again, as a redelivered event follows its job's completion (``progress.expand``: what
    exists is offered to its claimant, what does not is created). A job the first
    invocation was submitting when it died is resubmitted once its submit lease runs out
    (the retry comes seconds later, well within the lease)."""
    ctx = load_context(run, ports)
    for _ in range(2):
        initial = planner.initial_jobs(load_scope(ctx, "", []))
        Driver(ports, ctx).run(expand(ctx, "", [], initial, START))
        held = [
            job.lease_until
            for job in ports.store.query_jobs(run.run_id, [RUNNING])
            if job.batch_job_id is None and job.lease_until and job.lease_until > time.time()
        ]
        if not held:
            return
        time.sleep(max(held) - time.time() + 1)  # until the leases held run out
