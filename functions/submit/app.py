"""EventBridge "Object Created" (S3, under submit/) → validate the submission JSON and start one
execution, named after the object version; an invalid one starts nothing and gets
errors/…error.json."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.submit import SubmittedObject, handle_submission
from miniwdl_serverless.handlers.events import S3ObjectCreated
from miniwdl_serverless.handlers.wiring import (
    count_metric,
    lambda_handler,
    logger,
    submission_adapters,
)

METRICS = {
    "started": "SubmissionsStarted",
    "rejected": "SubmissionsRejected",
    "duplicate": "SubmissionsDuplicate",
}


@lambda_handler(S3ObjectCreated)
def handler(event: S3ObjectCreated, context: LambdaContext) -> dict:
    item = event.detail.object
    submitted = SubmittedObject(
        event.detail.bucket.name, item.key, item.size, item.etag, item.version_id
    )
    logger.append_keys(
        submission=f"s3://{submitted.bucket}/{submitted.key}", version_id=submitted.version_id
    )
    store, executions = submission_adapters()
    result = handle_submission(
        submitted, store, executions, log=lambda message, extra: logger.info(message, extra=extra)
    )
    if result.outcome in METRICS:
        count_metric(METRICS[result.outcome], 1)
    return result.as_dict()
