"""The Batch and Step Functions ports of the functions inside the VPC. The VPC has no NAT
gateway: those functions reach DynamoDB and S3 through their gateway endpoints, and nothing
else. What they would ask Batch or Step Functions is put in the work table instead, for the
submitter (outside the VPC) to carry out: the call's effect comes a stream hop later, and
the item stays until it is done (the stream delivers it again after a failure)."""

from __future__ import annotations

from typing import Any

from miniwdl_serverless.controller.ports import WorkQueue
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.resources import TaskSubmission
from miniwdl_serverless.core.work import answer_item, terminate_item


class OutsideOnly(RuntimeError):
    """A call only the functions outside the VPC can make (a bug: nothing inside asks it)."""


class HandedOnBatch:
    """BatchJobs inside the VPC: ``terminate`` becomes a ``terminate`` item; finding,
    submitting and describing are the submitter's and the reconciler's alone."""

    def __init__(self, work: WorkQueue) -> None:
        self.work = work

    def terminate(self, batch_job_id: str, reason: str) -> None:
        self.work.put([terminate_item(batch_job_id, reason)])

    def find(self, name: str, queue: str) -> str | None:
        raise OutsideOnly(f"ListJobs ({name} in {queue}) is not reachable inside the VPC")

    def submit(self, submission: TaskSubmission) -> str:
        raise OutsideOnly(f"SubmitJob ({submission.name}) is not reachable inside the VPC")

    def describe(self, batch_job_ids: list[str]) -> list[BatchJobDetail]:
        raise OutsideOnly(
            f"DescribeJobs ({len(batch_job_ids)} jobs) is not reachable inside the VPC"
        )


class HandedOnOrchestrator:
    """Orchestrator inside the VPC: the answer becomes an ``answer`` item. True once the item
    is in the table (the run then owes no answer: the item is the promise, and the submitter
    retries it until Step Functions has it or refuses it for good)."""

    def __init__(self, work: WorkQueue) -> None:
        self.work = work

    def send_success(self, token: str, output: dict[str, Any]) -> bool:
        self.work.put([answer_item(token, {"output": output})])
        return True

    def send_failure(self, token: str, error: str, cause: str) -> bool:
        self.work.put([answer_item(token, {"error": error, "cause": cause})])
        return True
