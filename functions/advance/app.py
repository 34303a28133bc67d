"""EventBridge "Batch Job State Change" → collect outputs, advance the graph, submit what is ready."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.engine import BatchJobChange, on_batch_event
from miniwdl_serverless.lambda_support import BatchJobStateChange, lambda_handler, logger, services


@lambda_handler(BatchJobStateChange)
def handler(event: BatchJobStateChange, context: LambdaContext) -> dict:
    change = BatchJobChange.from_detail(event.detail.model_dump())
    logger.append_keys(run_id=change.run_id, job_id=change.graph_job_id, batch_job_id=change.job_id)
    outcome = on_batch_event(change, services())
    logger.info("batch event handled", extra={"status": change.status, "outcome": outcome})
    return {"outcome": outcome}
