"""Finish state: outputs.json / error.json, upload to S3, delete the run directory per
delete_after; when its time runs low it returns {"status": "continue"} and the state machine
invokes it again."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.handlers.events import FinishEvent
from miniwdl_serverless.handlers.wiring import finish_deadline, lambda_handler, logger, ports


@lambda_handler(FinishEvent)
def handler(event: FinishEvent, context: LambdaContext) -> dict:
    logger.append_keys(run_id=event.execution_name)
    deadline = finish_deadline(context)  # its invocation's time, not the context itself
    result = finish_run(event.state, event.execution_name, ports(), deadline)
    logger.info("finish done", extra={"status": result["status"]})
    return result
