"""The Orchestrator port on Step Functions: answer the Start task's token."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("miniwdl_serverless.stepfunctions")
ERROR_LIMIT, CAUSE_LIMIT = 256, 32768  # SendTaskFailure's limits


class StepFunctionsOrchestrator:
    def __init__(self, client: Any):
        self.client = client

    def send_success(self, token: str, output: dict[str, Any]) -> None:
        try:
            self.client.send_task_success(taskToken=token, output=json.dumps(output))
        except Exception as exn:  # a repeated answer (token already used) is harmless
            log.info("send_task_success: %s", exn)

    def send_failure(self, token: str, error: str, cause: str) -> None:
        try:
            self.client.send_task_failure(
                taskToken=token, error=error[:ERROR_LIMIT], cause=cause[:CAUSE_LIMIT]
            )
        except Exception as exn:
            log.info("send_task_failure: %s", exn)
