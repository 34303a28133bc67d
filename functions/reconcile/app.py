"""Scheduled (and on demand, `miniwdl-serverless reconcile`): replay the Batch transitions
whose events were lost, send owed answers, pick up or fail runs nothing advances, and replay
the dead-letter queue."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from miniwdl_serverless.controller.reconcile import reconcile
from miniwdl_serverless.handlers.events import ReconcileRequest
from miniwdl_serverless.handlers.wiring import lambda_handler, logger, reconcile_ports


@lambda_handler(ReconcileRequest)
def handler(request: ReconcileRequest, context: LambdaContext) -> dict:
    report = reconcile(reconcile_ports(), [request.run_id] if request.run_id else None)
    for item in report.done:
        logger.info(item.text, extra={"run_id": item.run_id, "job_id": item.job_id})
    for run_id, problem in report.problems.items():
        logger.warning("not reconciled", extra={"run_id": run_id, "problem": problem})
    for letter in report.kept:
        logger.warning("dead letter kept", extra={"letter": letter})
    logger.info("reconciled", extra={"runs": report.runs, "replayed": len(report.replayed)})
    return report.as_dict()
