"""EventBridge "Batch Job State Change" → collect outputs, advance the graph, submit what is
ready."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.advance import on_batch_event
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.handlers.events import EventBridgeDetail
from miniwdl_serverless.handlers.wiring import lambda_handler, logger, ports


@lambda_handler(BatchJobDetail, envelope=EventBridgeDetail)
def handler(detail: BatchJobDetail, context: LambdaContext) -> dict:
    logger.append_keys(run_id=detail.run_id, job_id=detail.job_id, batch_job_id=detail.jobId)
    outcome = on_batch_event(detail, ports())
    logger.info("batch event handled", extra={"status": detail.status, "outcome": outcome})
    return {"outcome": outcome}
