"""Start state: plan the run, submit ready calls, keep the task token (Step Functions waits
on it)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.handlers.events import StartEvent
from miniwdl_serverless.handlers.wiring import lambda_handler, logger, ports


@lambda_handler(StartEvent)
def handler(event: StartEvent, context: LambdaContext) -> dict:
    logger.append_keys(run_id=run_id_of(event.execution_arn))
    result = start_run(
        event.input, event.task_token, event.execution_arn, event.started_at, ports()
    )
    logger.info("start done", extra=result)
    return result
