"""The AWS Batch "Job State Change" detail as a typed value, parsed once by the handler's
EventBridge envelope and handed to the controller as it is.

Field names are AWS's (``jobId`` is the Batch job id); the properties speak the controller's
vocabulary (``batch_job_id``, ``job_id`` = the graph job id from our tag, ``attempt``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB, TAG_RUN

BatchStatus = Literal[
    "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"
]
# How Batch reports a spot reclaim (or any host loss) in the job's status reason.
INTERRUPTION = re.compile(r"Host EC2 .*terminated", re.IGNORECASE)


class BatchJobDetail(BaseModel):
    """The detail of a "Batch Job State Change" event (DescribeJobs' job shape)."""

    jobName: str
    jobId: str
    jobQueue: str | None = None
    status: BatchStatus
    statusReason: str | None = None
    container: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    startedAt: int | None = None  # epoch milliseconds (DescribeJobs and the event carry them)
    stoppedAt: int | None = None

    @property
    def batch_job_id(self) -> str:
        return self.jobId

    @property
    def run_id(self) -> str | None:
        return self.tags.get(TAG_RUN)

    @property
    def job_id(self) -> str | None:
        """The graph job id this Batch job runs an attempt of."""
        return self.tags.get(TAG_JOB)

    @property
    def attempt(self) -> int | None:
        value = self.tags.get(TAG_ATTEMPT)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def exit_code(self) -> int | None:
        code = self.container.get("exitCode")
        return int(code) if code is not None else None

    @property
    def status_reason(self) -> str:
        reasons = (self.statusReason, self.container.get("reason"))
        return " - ".join(str(r) for r in reasons if r)

    @property
    def log_stream(self) -> str | None:
        return self.container.get("logStreamName")

    @property
    def interrupted(self) -> bool:
        return bool(INTERRUPTION.search(self.status_reason))
