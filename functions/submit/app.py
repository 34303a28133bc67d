"""EventBridge "Object Created" (S3, under submit/) → validate the submission JSON and start one
execution, named after the object version; an invalid one starts nothing and gets
errors/…error.json."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.submit import SubmittedObject, handle_submission
from miniwdl_serverless.handlers.events import S3ObjectCreated
from miniwdl_serverless.handlers.wiring import lambda_handler, logger, submission_ports


@lambda_handler(S3ObjectCreated)
def handler(event: S3ObjectCreated, context: LambdaContext) -> dict:
    item = event.detail.object
    submitted = SubmittedObject(
        event.detail.bucket.name, item.key, item.size, item.etag, item.version_id
    )
    logger.append_keys(
        submission=f"s3://{submitted.bucket}/{submitted.key}", version_id=submitted.version_id
    )

    def log(message: str, extra: dict) -> None:
        logger.info(message, extra=extra)

    return handle_submission(submitted, submission_ports(), log=log).as_dict()
