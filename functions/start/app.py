"""Start state: plan the run, submit ready calls, keep the task token (Step Functions waits on it)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.engine import start_run
from miniwdl_serverless.lambda_support import StartEvent, lambda_handler, logger, services


@lambda_handler(StartEvent)
def handler(event: StartEvent, context: LambdaContext) -> dict:
    logger.append_keys(run_id=event.execution_arn.rsplit(":", 1)[-1])
    result = start_run(event.input, event.task_token, event.execution_arn, event.started_at, services())
    logger.info("start done", extra=result)
    return result
