"""Read-only: the tail of one file inside a run's directory (for `miniwdl-serverless logs`).
Refuses any path outside that run's directory, symlink escapes included."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.logs import read_run_file
from miniwdl_serverless.handlers.wiring import logger, metrics, run_store, tracer


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict:
    logger.append_keys(run_id=event.get("run_id"))
    result = read_run_file(event, run_store())
    if "error" in result:
        logger.info(
            "refused",
            extra={
                "refusal": result["error"],
                "reason": result["message"],
                "path": event.get("path"),
            },
        )
    return result
