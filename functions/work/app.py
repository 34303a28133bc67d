"""The work table's graph work → the driver: parts of runs' work that an invocation handed on
when it reached its budget (ready jobs to offer, ranges of a wide scatter's shards)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.work import on_graph_work
from miniwdl_serverless.handlers.events import WorkStream, item_failures
from miniwdl_serverless.handlers.wiring import lambda_handler, logger, ports, work_items


@lambda_handler(WorkStream)
def handler(event: WorkStream, context: LambdaContext) -> dict:
    items = work_items(event)
    for index, (_, item) in enumerate(items):
        logger.append_keys(run_id=item.run_id)
        try:
            outcome = on_graph_work(item, ports())
        except Exception:  # this one and the rest come again (the stream resumes here)
            logger.exception("graph work failed; delivered again", extra={"key": item.key})
            return item_failures(items, [i.key for _, i in items[index:]])
        logger.info("graph work done", extra={"key": item.key, "outcome": outcome})
    return item_failures(items, [])
