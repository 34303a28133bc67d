"""EventBridge "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) → stop the
run: mark it failed and terminate its Batch jobs (a stopped execution runs no Finish state)."""

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.engine import stop_run
from miniwdl_serverless.lambda_support import (
    ExecutionStatusChange,
    logger,
    metrics,
    services,
    tracer,
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ExecutionStatusChange)
def handler(event: ExecutionStatusChange, context: LambdaContext) -> dict:
    run_id = event.detail.name
    logger.append_keys(run_id=run_id)
    terminated = stop_run(run_id, event.detail.status, services())
    logger.info("run stopped", extra={"status": event.detail.status, "terminated": terminated})
    return {"run_id": run_id, "terminated": terminated}
