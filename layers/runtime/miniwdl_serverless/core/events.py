"""The AWS Batch "Job State Change" detail as a typed value, parsed once by the handler's
EventBridge envelope and handed to the controller as it is.

Field names are AWS's (``jobId`` is the Batch job id); the properties speak the controller's
vocabulary (``batch_job_id``, ``job_id`` = the graph job id from our tag, ``attempt``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from miniwdl_serverless.core.ids import TAG_ARRAY, TAG_ARRAY_RECORD, TAG_ATTEMPT, TAG_JOB, TAG_RUN

BatchStatus = Literal[
    "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"
]
# How Batch reports a spot reclaim (or any host loss) in the job's status reason.
INTERRUPTION = re.compile(r"Host EC2 .*terminated", re.IGNORECASE)
# An array child's job id: the parent's id, ':', the child's index (AWS Batch's array jobs)
CHILD_ID = re.compile(r"^(?P<parent>[^:]+):(?P<index>0|[1-9][0-9]{0,3})$")


class ArrayProperties(BaseModel):
    """``arrayProperties`` of DescribeJobs' JobDetail (API_ArrayPropertiesDetail): ``size``
    and ``statusSummary`` on the parent of an array job, ``index`` on each child."""

    size: int | None = None
    index: int | None = None
    statusSummary: dict[str, int] = Field(default_factory=dict)


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
    arrayProperties: ArrayProperties | None = None

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

    # -- array jobs (core/arrays.py) --
    @property
    def array_child(self) -> tuple[str, int] | None:
        """(the parent's Batch job id, the index) of an array job's child; else None.

        Both the job id (``<parent>:<index>``) and ``arrayProperties.index`` must say so, and
        agree: an event that only half looks like a child's is no child's.
        """
        found = CHILD_ID.match(self.jobId)
        index = self.arrayProperties.index if self.arrayProperties else None
        if found is None or index is None or int(found["index"]) != index:
            return None
        return found["parent"], index

    @property
    def is_array_parent(self) -> bool:
        """The parent of an array job (its own events: PENDING, then SUCCEEDED or FAILED)."""
        props = self.arrayProperties
        return props is not None and props.size is not None and props.index is None

    @property
    def array_id(self) -> str | None:
        """Our id of the array (its tag): which shards of which scatter it runs."""
        return self.tags.get(TAG_ARRAY)

    @property
    def array_record(self) -> int | None:
        """The width in bytes of one record of the array's index file (its tag)."""
        value = self.tags.get(TAG_ARRAY_RECORD)
        return int(value) if value is not None and value.isdigit() and int(value) > 0 else None

    @property
    def status_summary(self) -> dict[str, int]:
        """How many of a parent's children are in each status (empty for other jobs)."""
        return dict(self.arrayProperties.statusSummary) if self.arrayProperties else {}
