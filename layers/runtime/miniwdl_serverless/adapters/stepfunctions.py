"""The Orchestrator port on Step Functions: answer the Start task's token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from miniwdl_serverless.controller.submit import Rejected, execution_arn

log = logging.getLogger("miniwdl_serverless.stepfunctions")
ERROR_LIMIT, CAUSE_LIMIT = 256, 32768  # SendTaskFailure's limits
# The token will never take this answer: it was used (a repeated answer), timed out, or is not
# a token; or the answer itself is refused. Sending again cannot help, so it counts as sent.
FINAL_REFUSALS = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken", "InvalidOutput"})


class StepFunctionsOrchestrator:
    def __init__(self, client: Any):
        self.client = client

    def send_success(self, token: str, output: dict[str, Any]) -> bool:
        try:
            self.client.send_task_success(taskToken=token, output=json.dumps(output))
        except Exception as exn:
            return _refused_for_good("send_task_success", exn)
        return True

    def send_failure(self, token: str, error: str, cause: str) -> bool:
        try:
            self.client.send_task_failure(
                taskToken=token, error=error[:ERROR_LIMIT], cause=cause[:CAUSE_LIMIT]
            )
        except Exception as exn:
            return _refused_for_good("send_task_failure", exn)
        return True


def _refused_for_good(call: str, exn: Exception) -> bool:
    """True: the token will never take an answer (harmless); False: try again later
    (throttling, a service error, no connection)."""
    code = str((getattr(exn, "response", None) or {}).get("Error", {}).get("Code") or "")
    if code in FINAL_REFUSALS:
        log.info("%s: %s", call, exn)
        return True
    log.warning("%s failed, the answer is still owed: %s", call, exn)
    return False


class StepFunctionsExecutions:
    """The S3 drop's Executions (controller/submit.py): one state machine's, on a Step
    Functions client."""

    def __init__(self, sfn: Any, state_machine_arn: str):
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn

    def start(self, name: str, execution_input: str) -> tuple[str, bool]:
        arn = execution_arn(self.state_machine_arn, name)
        try:  # a standard workflow's StartExecution succeeds again for a *running* same-named one
            self.sfn.describe_execution(executionArn=arn)
            return arn, False
        except self.sfn.exceptions.ExecutionDoesNotExist:
            pass
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=execution_input
            )
        except self.sfn.exceptions.ExecutionAlreadyExists:
            return arn, False
        except self.sfn.exceptions.InvalidExecutionInput as exn:
            raise Rejected(
                "Step Functions refused the execution input: "
                f"{exn.response['Error'].get('Message')}"
            ) from None
        return str(response["executionArn"]), True


class StepFunctionsRuns:
    """LiveRuns on the stack's state machine: ListExecutions(statusFilter=RUNNING); the
    execution name is the run id."""

    def __init__(self, sfn: Any, state_machine_arn: str):
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn

    def running(self) -> Iterator[str]:
        pages = self.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        )
        for page in pages:
            for execution in page.get("executions", []):
                yield str(execution["name"])
