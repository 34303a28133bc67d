"""EventBridge "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) → stop the
run: mark it failed and terminate its Batch jobs (a stopped execution runs no Finish state).
Outside the VPC: it needs DynamoDB and Batch, and no file."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.end import stop_run
from miniwdl_serverless.handlers.events import ExecutionStatusChange
from miniwdl_serverless.handlers.wiring import lambda_handler, logger, outside_ports


@lambda_handler(ExecutionStatusChange)
def handler(event: ExecutionStatusChange, context: LambdaContext) -> dict:
    run_id = event.detail.name
    logger.append_keys(run_id=run_id)
    terminated = stop_run(run_id, event.detail.status, outside_ports())
    logger.info("run stopped", extra={"status": event.detail.status, "terminated": terminated})
    return {"run_id": run_id, "terminated": terminated}
