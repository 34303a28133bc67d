"""The start function's work: plan a new run and submit its first calls."""

from __future__ import annotations

from typing import Any

from miniwdl_serverless.controller.actions import Plan
from miniwdl_serverless.controller.drive import Driver
from miniwdl_serverless.controller.end import AnswerNotSent, answer_owed
from miniwdl_serverless.controller.ports import Ports
from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.core.records import RUN_PLANNING


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
    if existing is not None and existing.status != RUN_PLANNING:
        if not answer_owed(existing, ports):
            raise AnswerNotSent(run_id)
        return {"run_id": run_id, "resumed": True}
    driver = Driver(ports)
    driver.run([Plan(execution_input, task_token, execution_arn, started_at, run_id)])
    return driver.result or {"run_id": run_id}
