"""The in-process Batch of the embedded AWS's default mode (local/batch_service.py), through
boto3 clients as the handlers and the tests reach it: AWS's response shapes, BatchAdapter on
top of it, and refusals as ClientException (HTTP 400). Its jobs are recorded, not run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from miniwdl_serverless.adapters.batch import BatchAdapter, EfsVolume
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.resources import Resources, TaskSubmission
from miniwdl_serverless.local import batch_service, in_process
from miniwdl_serverless.local.resources import LOCAL_QUEUE, LOCAL_QUEUE_ARN


class Recorded:
    def __init__(self) -> None:
        self.jobs: list[Any] = []
        self.arrays: list[tuple[Any, list[Any]]] = []


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    recorded = Recorded()
    service = batch_service.LocalBatchService(
        recorded.jobs.append, lambda parent, kids: recorded.arrays.append((parent, kids))
    )
    saved = in_process.serving(batch_service.SERVICE)
    with mock_aws():  # nothing reaches AWS even if the hook did not answer
        batch_service.serve(service)
        try:
            yield recorded
        finally:
            batch_service.serve(saved)


def submission(name: str, **extra: Any) -> TaskSubmission:
    return TaskSubmission(
        name=name,
        queue=LOCAL_QUEUE,
        image="ubuntu:22.04",
        resources=Resources(vcpus=1, memory_mib=512),
        script="echo hi",
        timeout_seconds=600,
        tags={"run": "r1"},
        **extra,
    )


def test_the_adapter_submits_finds_and_describes_jobs(served):
    adapter = BatchAdapter(client=boto3.client("batch"), efs=EfsVolume(mount_path="/"))
    job_id = adapter.submit(submission("call-a"))
    (job,) = served.jobs
    assert job.job_id == job_id and job.status == "SUBMITTED"
    assert job.container_overrides["command"] == ["/bin/bash", "-ec", "echo hi"]
    assert adapter.find("call-a", LOCAL_QUEUE) == job_id  # every status with a name filter
    assert adapter.find("call-b", LOCAL_QUEUE) is None
    again = BatchAdapter(client=boto3.client("batch"), efs=EfsVolume(mount_path="/"))
    again.submit(submission("call-b"))  # the definition is found, not registered again
    definitions = boto3.client("batch").describe_job_definitions()["jobDefinitions"]
    assert len(definitions) == 1 and definitions[0]["revision"] == 1
    job.job_started_at = job.job_created_at
    job.status, job.exit_code = "RUNNING", None
    job._start_attempt()
    job.exit_code = 3
    job._mark_stopped(success=False)
    (detail,) = adapter.describe([job_id])
    assert detail == BatchJobDetail.model_validate(job.describe())
    assert detail.status == "FAILED" and detail.container["exitCode"] == 3
    assert detail.jobQueue == LOCAL_QUEUE_ARN
    assert detail.tags == {"run": "r1", "miniwdl-serverless:image": "ubuntu:22.04"}  # propagated
    assert detail.startedAt and detail.stoppedAt and detail.attempts[0]["container"]


def test_list_jobs_pages_and_filters_by_status(served):
    batch = boto3.client("batch")
    adapter = BatchAdapter(client=batch, efs=EfsVolume(mount_path="/"))
    for n in range(5):
        adapter.submit(submission(f"job-{n}"))
    served.jobs[0].status = "RUNNING"
    assert [s["jobName"] for s in batch.list_jobs(jobQueue=LOCAL_QUEUE)["jobSummaryList"]] == [
        "job-0"
    ]  # RUNNING jobs when no status is given, as on AWS
    pages = batch.get_paginator("list_jobs").paginate(
        jobQueue=LOCAL_QUEUE, jobStatus="SUBMITTED", PaginationConfig={"PageSize": 2}
    )
    names = [s["jobName"] for page in pages for s in page["jobSummaryList"]]
    assert names == ["job-1", "job-2", "job-3", "job-4"]
    wildcard = [{"name": "JOB_NAME", "values": ["JOB-*"]}]
    assert len(batch.list_jobs(jobQueue=LOCAL_QUEUE, filters=wildcard)["jobSummaryList"]) == 5


def test_an_array_job_and_its_termination(served):
    batch = boto3.client("batch")
    adapter = BatchAdapter(client=batch, efs=EfsVolume(mount_path="/"))
    parent_id = adapter.submit(submission("shards", array_size=3))
    ((parent, children),) = served.arrays
    assert parent.job_id == parent_id and [c.job_id for c in children] == [
        f"{parent_id}:{i}" for i in range(3)
    ]
    assert [c.array_properties for c in children] == [{"index": i} for i in range(3)]
    children[0]._mark_stopped(success=True)
    (described,) = batch.describe_jobs(jobs=[parent_id])["jobs"]
    assert described["arrayProperties"]["size"] == 3
    assert described["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 1
    listed = batch.list_jobs(arrayJobId=parent_id, jobStatus="SUBMITTED")["jobSummaryList"]
    assert [s["arrayProperties"]["index"] for s in listed] == [1, 2]
    batch.terminate_job(jobId=parent_id, reason="stop")
    assert parent.stop and all(c.stop for c in children[1:])
    assert not children[0].stop  # it had ended
    assert children[1].job_stopped_reason == "stop"


def test_refusals_are_client_errors(served):
    batch = boto3.client("batch")
    with pytest.raises(batch.exceptions.ClientException) as refused:
        batch.submit_job(jobName="x", jobQueue="another-queue", jobDefinition="nothing")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError, match="does not exist"):
        batch.submit_job(jobName="x", jobQueue=LOCAL_QUEUE, jobDefinition="nothing")
    with pytest.raises(ClientError, match="at most 100"):
        batch.describe_jobs(jobs=[f"id-{n}" for n in range(101)])
    assert served.jobs == []
