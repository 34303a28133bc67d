"""BatchAdapter against moto's AWS Batch API, in-process (no Docker: jobs are only recorded)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from miniwdl_serverless.adapters.batch import BatchAdapter, EfsVolume, adapter_from_environment
from miniwdl_serverless.core.ids import BATCH_NAME_LIMIT as NAME_LIMIT
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB, TAG_RUN
from miniwdl_serverless.core.ids import batch_job_name as job_name
from miniwdl_serverless.core.resources import (
    MIN_MEMORY_MIB,
    Resources,
    TaskSubmission,
    resources_for,
)
from miniwdl_serverless.local import batch_service

REGION = "us-east-1"
QUEUE = "msls-test-queue"
# Other tests in the same process may hold an embedded AWS (moto state is shared while any
# mock is active), so every name here is unique to the test.
PREFIX = "msls-test"
MOUNT = "/mnt/efs"
FILE_SYSTEM = "fs-0123456789abcdef0"
ACCESS_POINT = "fsap-0123456789abcdef0"
JOB_ROLE = "arn:aws:iam::123456789012:role/msls-task-job"
# SubmitJob: up to 128 characters, the first alphanumeric, then letters, digits, '-' and '_'.
AWS_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
GIB = 2**30


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials and region first, then moto, so no client can reach real AWS."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    global PREFIX, QUEUE
    suffix = uuid.uuid4().hex[:8]
    PREFIX, QUEUE = f"msls-test-{suffix}", f"msls-test-queue-{suffix}"
    # moto's own Batch, even while this process holds an embedded AWS (whose in-process Batch
    # serves every boto3 Batch client)
    with batch_service.suspended(), mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def batch(aws: None) -> Any:
    return boto3.client("batch", region_name=REGION)


@pytest.fixture
def queue(batch: Any) -> str:
    """An UNMANAGED compute environment (with its service role) and a job queue on it."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName=f"msls-batch-service-{PREFIX}",
        AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}',
    )["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"{PREFIX}-env", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
        ],
    )
    return QUEUE


def make_adapter(batch: Any, **overrides: Any) -> BatchAdapter:
    arguments: dict[str, Any] = {
        "efs": EfsVolume(
            mount_path=MOUNT, file_system_id=FILE_SYSTEM, access_point_id=ACCESS_POINT
        ),
        "definition_prefix": PREFIX,
        "job_role_arn": JOB_ROLE,
    }
    arguments.update(overrides)
    return BatchAdapter(client=batch, **arguments)


def submit(adapter: BatchAdapter, queue: str, name: str, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "name": name,
        "queue": queue,
        "image": "ubuntu:22.04",
        "resources": Resources(vcpus=2, memory_mib=4063),
        "script": "echo hello > stdout.txt",
        "environment": {"B": "2", "A": "1"},
        "tags": {TAG_RUN: "run-1", TAG_JOB: "call-hello", TAG_ATTEMPT: "0"},
        "timeout_seconds": 3600,
    }
    arguments.update(overrides)
    return adapter.submit(TaskSubmission(**arguments))


def definitions(batch: Any, **filters: Any) -> list[dict[str, Any]]:
    found = batch.describe_job_definitions(**filters)["jobDefinitions"]
    return [d for d in found if d["jobDefinitionName"].startswith(PREFIX + "-")]


def describe(batch: Any, job_id: str) -> dict[str, Any]:
    jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert len(jobs) == 1
    return dict(jobs[0])


# ---- job definitions ------------------------------------------------------------------------


def test_one_definition_per_image_reused_across_submits(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    ids = [
        submit(adapter, queue, f"run-1-call-x-{i}-try1", resources=Resources(vcpus=1 + i % 4))
        for i in range(12)
    ]
    assert len(set(ids)) == 12
    registered = definitions(batch)
    assert len(registered) == 1
    assert registered[0]["revision"] == 1
    assert registered[0]["containerProperties"]["image"] == "ubuntu:22.04"
    used = {describe(batch, job_id)["jobDefinition"] for job_id in ids}
    assert used == {registered[0]["jobDefinitionArn"]}


def test_one_definition_per_image_and_gpu_shape(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    shapes = [
        ("ubuntu:22.04", Resources()),
        ("ubuntu:22.04", Resources(vcpus=8, memory_mib=16000)),  # same image, same (CPU) shape
        ("ubuntu:22.04", Resources(gpus=1)),
        ("ubuntu:22.04", Resources(vcpus=4, gpus=1)),  # same GPU shape as above
        ("ubuntu:22.04", Resources(gpus=2)),
        ("quay.io/biocontainers/samtools:1.17--h00cdaf9_0", Resources()),
    ]
    arns = [adapter.job_definition(image, resources) for image, resources in shapes]
    assert arns[0] == arns[1]
    assert arns[2] == arns[3]
    assert len({arns[0], arns[2], arns[4], arns[5]}) == 4
    registered = definitions(batch)
    assert len(registered) == 4
    by_arn = {d["jobDefinitionArn"]: d for d in registered}
    gpu2 = by_arn[arns[4]]["containerProperties"]["resourceRequirements"]
    assert {"type": "GPU", "value": "2"} in gpu2
    cpu = by_arn[arns[0]]["containerProperties"]["resourceRequirements"]
    assert not [r for r in cpu if r["type"] == "GPU"]
    for definition in registered:
        assert AWS_JOB_NAME.match(definition["jobDefinitionName"])
        assert definition["type"] == "container"
        assert definition["propagateTags"] is True


def test_new_adapter_reuses_the_active_definition(batch: Any, queue: str) -> None:
    first = make_adapter(batch).job_definition("ubuntu:22.04", Resources())
    again = make_adapter(batch)  # e.g. another Lambda container: an empty cache
    assert again.job_definition("ubuntu:22.04", Resources()) == first
    submit(again, queue, "run-2-call-x-try1")
    registered = definitions(batch)
    assert [d["revision"] for d in registered] == [1]


def test_inactive_definition_is_not_reused(batch: Any, queue: str) -> None:
    first = make_adapter(batch).job_definition("ubuntu:22.04", Resources())
    batch.deregister_job_definition(jobDefinition=first)
    second = make_adapter(batch).job_definition("ubuntu:22.04", Resources())
    assert second != first
    assert second.endswith(":2")


def test_definition_mounts_efs_like_the_lambdas(batch: Any, queue: str) -> None:
    arn = make_adapter(batch).job_definition("ubuntu:22.04", Resources())
    (definition,) = definitions(batch, jobDefinitions=[arn])
    properties = definition["containerProperties"]
    (volume,) = properties["volumes"]
    assert volume["efsVolumeConfiguration"] == {
        "fileSystemId": FILE_SYSTEM,
        "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": ACCESS_POINT, "iam": "ENABLED"},
    }
    assert properties["mountPoints"] == [
        {"sourceVolume": volume["name"], "containerPath": MOUNT, "readOnly": False}
    ]
    assert properties["jobRoleArn"] == JOB_ROLE
    assert definition["tags"]["miniwdl-serverless:image"] == "ubuntu:22.04"


def test_adapter_from_environment_uses_the_lambda_mount(
    batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSLS_EFS_ROOT", "/mnt/efs")
    monkeypatch.setenv("EFS_FILE_SYSTEM_ID", FILE_SYSTEM)
    monkeypatch.setenv("EFS_ACCESS_POINT_ID", ACCESS_POINT)
    monkeypatch.setenv("JOB_DEFINITION_PREFIX", f"{PREFIX}-my-stack")
    monkeypatch.setenv("TASK_JOB_ROLE_ARN", "")
    adapter = adapter_from_environment(batch)
    arn = adapter.job_definition("ubuntu:22.04", Resources())
    (definition,) = definitions(batch, jobDefinitions=[arn])
    assert definition["jobDefinitionName"].startswith(f"{PREFIX}-my-stack-")
    properties = definition["containerProperties"]
    assert properties["mountPoints"][0]["containerPath"] == "/mnt/efs"
    config = properties["volumes"][0]["efsVolumeConfiguration"]
    assert config["authorizationConfig"]["accessPointId"] == ACCESS_POINT
    assert "jobRoleArn" not in properties


def test_without_efs_the_mount_is_a_host_path() -> None:
    assert EfsVolume(mount_path="/tmp/runs").volume() == {
        "name": "efs",
        "host": {"sourcePath": "/tmp/runs"},
    }


def test_changed_efs_or_role_gets_a_new_definition(batch: Any, queue: str) -> None:
    """A redeployed stack (same prefix) with another file system must not reuse the old one."""
    old = make_adapter(batch).job_definition("ubuntu:22.04", Resources())
    moved = BatchAdapter(
        client=batch,
        efs=EfsVolume(mount_path=MOUNT, file_system_id="fs-0fedcba987654321f"),
        definition_prefix=PREFIX,
        job_role_arn=JOB_ROLE,
    )
    new = moved.job_definition("ubuntu:22.04", Resources())
    assert new != old
    (definition,) = definitions(batch, jobDefinitions=[new])
    volume = definition["containerProperties"]["volumes"][0]
    assert volume["efsVolumeConfiguration"]["fileSystemId"] == "fs-0fedcba987654321f"


def test_long_prefix_keeps_definitions_apart(batch: Any, queue: str) -> None:
    """A 120-character stack name must not make two images share one definition."""
    adapter = make_adapter(batch, definition_prefix="s" * 120)
    arns = {
        adapter.job_definition("quay.io/biocontainers/samtools:1.17", Resources()),
        adapter.job_definition("quay.io/biocontainers/samtools:1.18", Resources()),
        adapter.job_definition("quay.io/biocontainers/samtools:1.18", Resources(gpus=1)),
    }
    assert len(arns) == 3
    for definition in definitions(batch):
        assert len(definition["jobDefinitionName"]) <= NAME_LIMIT
        assert definition["jobDefinitionName"].startswith("s" * 100)


# ---- resources --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "raw", "expected"),
    [
        ({}, {}, Resources(vcpus=1, memory_mib=MIN_MEMORY_MIB, gpus=0)),
        ({"cpu": 4, "memory_reservation": 8 * GIB}, {}, Resources(4, 8192 - 33, 0)),
        ({"cpu": 2, "memory_reservation": 4 * GIB + 1}, {}, Resources(2, 4097 - 33, 0)),
        ({"cpu": 1, "memory_reservation": 512 * 2**20}, {}, Resources(1, 991, 0)),
        ({"cpu": 1, "memory_reservation": 1 * GIB}, {}, Resources(1, 991, 0)),
        ({"cpu": 0}, {}, Resources(1, 991, 0)),
        ({"cpu": 8, "gpu": True}, {}, Resources(8, 991, 1)),
        ({"gpu": True}, {"gpuCount": 4}, Resources(1, 991, 4)),
        ({}, {"acceleratorType": "nvidia-tesla-t4"}, Resources(1, 991, 1)),
        ({}, {"acceleratorType": "NVIDIA-A10G", "acceleratorCount": 2}, Resources(1, 991, 2)),
        ({"gpu": False}, {"acceleratorType": "amd-radeon"}, Resources(1, 991, 0)),
    ],
)
def test_resources_for(runtime: dict[str, Any], raw: dict[str, Any], expected: Resources) -> None:
    assert resources_for(runtime, raw) == expected


def test_resources_for_memory_delta() -> None:
    assert resources_for({"memory_reservation": 8 * GIB}, {}, memory_delta_mib=0).memory_mib == 8192
    assert resources_for({"memory_reservation": 8 * GIB}, {}, memory_delta_mib=-100).memory_mib == (
        8092
    )


def test_resource_requirements_shape() -> None:
    assert Resources(2, 4063, 0).requirements() == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "4063"},
    ]
    assert {"type": "GPU", "value": "1"} in Resources(gpus=1).requirements()


# ---- job names --------------------------------------------------------------------------------


def test_job_name_is_deterministic_and_attempts_differ() -> None:
    name = job_name("run-1", "call-hello", 0)
    assert name == job_name("run-1", "call-hello", 0)
    assert AWS_JOB_NAME.match(name)
    names = {job_name("run-1", "call-hello", attempt) for attempt in range(5)}
    assert len(names) == 5


@pytest.mark.parametrize(
    ("run_id", "job_id"),
    [
        ("run-1", "call-sub/scatter-L12C5-sample-3/call-align"),
        ("a" * 80, "/".join(f"call-sub{i}/scatter-L{i}C3-x-{i}" for i in range(20))),
        ("ünïcode run", "call-x"),
        ("r" * 80, "call-" + "y" * 300),
        ("_leading-underscore", "call-x"),
        ("-leading-dash", "call-x"),
        (".hidden", "call-x"),
    ],
)
def test_job_name_is_valid_for_batch(run_id: str, job_id: str) -> None:
    for attempt in (0, 1, 10):
        name = job_name(run_id, job_id, attempt)
        assert len(name) <= NAME_LIMIT
        assert AWS_JOB_NAME.match(name), name
        assert name == job_name(run_id, job_id, attempt)
    assert len({job_name(run_id, job_id, attempt) for attempt in (0, 1, 10)}) == 3


def test_long_names_stay_distinct() -> None:
    run_id, base = "b" * 80, "call-sub/" * 20
    names = {job_name(run_id, f"{base}call-task-{i}", 0) for i in range(50)}
    assert len(names) == 50
    assert all(len(name) == NAME_LIMIT for name in names)


def test_sanitized_names_do_not_collide() -> None:
    """Execution names "sample.1" and "sample_1" are two runs: their jobs need two names."""
    assert job_name("sample.1", "call-x", 0) != job_name("sample_1", "call-x", 0)
    assert job_name("run", "call-a/call-b", 0) != job_name("run", "call-a_call-b", 0)


# ---- submit / find / terminate ------------------------------------------------------------------


def test_submit_tags_and_overrides(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    name = job_name("run-1", "call-sub/call-hello", 1)
    job_id = submit(
        adapter,
        queue,
        name,
        tags={TAG_RUN: "run-1", TAG_JOB: "call-sub/call-hello", TAG_ATTEMPT: "1", "team": "x"},
    )
    job = describe(batch, job_id)
    assert job["jobName"] == name
    assert job["jobQueue"].endswith(f":job-queue/{QUEUE}")
    assert job["tags"][TAG_RUN] == "run-1"
    assert job["tags"][TAG_JOB] == "call-sub/call-hello"
    assert job["tags"][TAG_ATTEMPT] == "1"
    assert job["tags"]["team"] == "x"
    assert job["container"]["command"] == ["/bin/bash", "-ec", "echo hello > stdout.txt"]
    environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert environment["A"] == "1" and environment["B"] == "2"
    assert job["timeout"] == {"attemptDurationSeconds": 3600}
    (definition,) = definitions(batch, jobDefinitions=[job["jobDefinition"]])
    assert definition["containerProperties"]["volumes"][0]["name"] == "efs"


def test_submit_sends_per_task_resources(batch: Any, queue: str, monkeypatch: Any) -> None:
    adapter = make_adapter(batch)
    sent: list[dict[str, Any]] = []
    original = batch.submit_job

    def spy(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(batch, "submit_job", spy)
    submit(
        adapter, queue, "run-1-call-gpu-try1", resources=Resources(4, 15000, 1), timeout_seconds=5
    )
    (request,) = sent
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "15000"},
        {"type": "GPU", "value": "1"},
    ]
    assert request["containerOverrides"]["environment"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    assert request["propagateTags"] is True
    assert request["timeout"] == {"attemptDurationSeconds": 60}  # Batch's minimum


def test_long_tags_are_cut_to_batch_limits(batch: Any, queue: str) -> None:
    job_id = submit(make_adapter(batch), queue, "run-1-call-x-try1", tags={"k" * 200: "v" * 400})
    tags = describe(batch, job_id)["tags"]
    assert tags == {"k" * 128: "v" * 256}


THROTTLED = {
    "Error": {"Code": "TooManyRequestsException"},
    "ResponseMetadata": {"HTTPStatusCode": 429},
}


class Recording:
    """The Batch client, its calls counted; each SubmitJob does what ``script`` says next:
    "lost" (goes through, then times out: the answer lost on its way back), "throttled"
    (refused with a 429, nothing done), or as Batch does once the script is played."""

    def __init__(self, client: Any, script: list[str] | None = None):
        self.client, self.script, self.calls = client, list(script or []), Counter[str]()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            what = self.script.pop(0) if name == "submit_job" and self.script else ""
            if what == "throttled":
                raise ClientError(THROTTLED, "SubmitJob")  # type: ignore[arg-type]
            answer = method(*args, **kwargs)
            if what == "lost":
                raise ReadTimeoutError(endpoint_url="https://batch")
            return answer

        return call


def test_a_submission_is_one_submit_job_and_no_list_jobs(batch: Any, queue: str) -> None:
    client = Recording(batch)
    submit(make_adapter(client), queue, job_name("run-1", "call-hello", 0))
    assert client.calls["submit_job"] == 1 and client.calls["list_jobs"] == 0


def test_a_submit_job_whose_answer_was_lost_is_found_by_name_when_retried(
    batch: Any, queue: str
) -> None:
    client = Recording(batch, ["lost"])
    adapter, name = make_adapter(client), job_name("run-1", "call-hello", 0)
    with pytest.raises(ReadTimeoutError):
        submit(adapter, queue, name)
    again = submit(adapter, queue, name)  # the Retrying wrapper's next try: adopted, not doubled
    listed = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])
    assert [summary["jobId"] for summary in listed["jobSummaryList"]] == [again]
    assert client.calls["submit_job"] == 1


def test_a_throttled_submit_job_is_tried_again_without_a_lookup(batch: Any, queue: str) -> None:
    client = Recording(batch, ["throttled"])
    adapter, name = make_adapter(client), job_name("run-1", "call-hello", 0)
    with pytest.raises(ClientError):
        submit(adapter, queue, name)
    submit(adapter, queue, name)
    assert client.calls["submit_job"] == 2
    assert client.calls["list_jobs"] == 0  # a refusal created nothing to look up


def test_find_is_exact(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    assert adapter.find("run-1-call-hello-try1", queue) is None
    first = submit(adapter, queue, "run-1-call-hello-try1")
    submit(adapter, queue, "RUN-1-call-hello-try1")  # JOB_NAME matches case-insensitively
    submit(adapter, queue, "run-1-call-hello-try10")
    assert adapter.find("run-1-call-hello-try1", queue) == first
    second = submit(adapter, queue, "run-1-call-hello-try2")
    assert second != first
    assert adapter.find("run-1-call-hello-try2", queue) == second


def test_terminate(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    job_id = submit(adapter, queue, "run-1-call-x-try1")
    adapter.terminate(job_id, "run failed: " + "x" * 2000)
    job = describe(batch, job_id)
    assert job["statusReason"].startswith("run failed: ")
    assert len(job["statusReason"]) == 1024


def test_defect_07_every_job_carries_the_stack_tag(
    batch: Any, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The functions may terminate only jobs tagged with their stack (template.yaml's
    TerminateJob condition): the adapter tags each job, over whatever the run's tags say."""
    from miniwdl_serverless.core.ids import TAG_STACK

    monkeypatch.setenv("STACK_NAME", "my-stack")
    adapter = adapter_from_environment(batch)
    tags = {TAG_RUN: "run-1", TAG_JOB: "call-x", TAG_ATTEMPT: "0", TAG_STACK: "another-stack"}
    job_id = submit(adapter, queue, "run-1-call-x-try1", tags=tags)
    assert describe(batch, job_id)["tags"][TAG_STACK] == "my-stack"
    assert describe(batch, job_id)["tags"][TAG_RUN] == "run-1"


# ---- describe (the reconciler) --------------------------------------------------------------


class CountingClient:
    """The Batch client, with the ids of every DescribeJobs call kept."""

    def __init__(self, client: Any):
        self.client = client
        self.described: list[list[str]] = []

    def describe_jobs(self, jobs: list[str]) -> Any:
        self.described.append(list(jobs))
        return self.client.describe_jobs(jobs=jobs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_describe_asks_100_ids_at_a_time_and_returns_event_details(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    known = [submit(adapter, queue, f"{PREFIX}-job-{i}") for i in range(3)]
    unknown = [str(uuid.uuid4()) for _ in range(247)]
    counting = CountingClient(batch)
    found = make_adapter(counting).describe(known[:2] + unknown + known[2:] + known[:1])
    assert [len(ids) for ids in counting.described] == [100, 100, 50]
    assert sorted(d.batch_job_id for d in found) == sorted(known)
    detail = next(d for d in found if d.batch_job_id == known[0])
    assert detail.jobName == f"{PREFIX}-job-0"
    assert (detail.run_id, detail.job_id, detail.attempt) == ("run-1", "call-hello", 0)
    assert make_adapter(counting).describe([]) == []


# ---- array jobs (core/arrays.py) ------------------------------------------------------------


def test_an_array_submission_is_one_job_with_that_many_children(batch: Any, queue: str) -> None:
    adapter = make_adapter(batch)
    parent = submit(adapter, queue, "run-1-call-t-0_3-array", array_size=3)
    described = describe(batch, parent)
    assert described["arrayProperties"]["size"] == 3
    children = batch.list_jobs(arrayJobId=parent)["jobSummaryList"]
    assert sorted(c["jobId"] for c in children) == [f"{parent}:{i}" for i in range(3)]
    child = describe(batch, f"{parent}:1")
    assert child["jobName"] == "run-1-call-t-0_3-array"  # the parent's name
    assert adapter.find("run-1-call-t-0_3-array", queue) == parent  # found by its name


def test_a_single_submission_has_no_array_properties(batch: Any, queue: str) -> None:
    job = submit(make_adapter(batch), queue, "run-1-call-t-0-try1")
    assert "arrayProperties" not in describe(batch, job)
    assert batch.list_jobs(arrayJobId=job)["jobSummaryList"] == []
