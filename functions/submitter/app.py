"""The work table's submissions → AWS Batch, paced: every run's SubmitJob calls go through
here, at no more than the stack's rate; and every other Batch and Step Functions call the
functions inside the VPC handed on (outside the VPC: it touches no files)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.submitter import handle_items
from miniwdl_serverless.handlers.events import WorkStream, item_failures
from miniwdl_serverless.handlers.wiring import (
    lambda_handler,
    logger,
    submit_pacer,
    submitter_ports,
    work_items,
)


@lambda_handler(WorkStream)
def handler(event: WorkStream, context: LambdaContext) -> dict:
    items = work_items(event)
    remaining = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731
    left = handle_items([item for _, item in items], submitter_ports(), submit_pacer(), remaining)
    logger.info("submitter items handled", extra={"items": len(items), "left": len(left)})
    return item_failures(items, left)
