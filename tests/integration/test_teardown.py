"""`miniwdl-serverless teardown` on moto: a stack whose versioned bucket holds more than 1,000
object versions and delete markers is emptied, then deleted (what `sam delete` cannot do);
live runs are refused; nothing is deleted without confirmation."""

from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

import boto3
import pytest
from moto import mock_aws

from miniwdl_serverless.cli import stack as stack_module
from miniwdl_serverless.cli import teardown
from miniwdl_serverless.cli.main import main

ROLE = "arn:aws:iam::123456789012:role/local"


@pytest.fixture
def stack(monkeypatch) -> Any:
    """A stack name of this test's own: moto's state is not reset when a mock is nested in
    the test process's embedded AWS (a session fixture), so names must not repeat."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield f"msls-teardown-{uuid.uuid4().hex[:8]}"


def deployed(stack: str, objects: int) -> tuple[str, str]:
    """A stack with a versioned Bucket and a state machine; ``objects`` keys written twice,
    a third of them then deleted (a delete marker each). Returns (bucket, state machine)."""
    sfn = boto3.client("stepfunctions")
    definition = {
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}},
    }
    machine = sfn.create_state_machine(
        name=f"{stack}-RunWorkflow", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
            }
        },
        "Outputs": {
            "StateMachineArn": {"Value": machine},
            "BucketName": {"Value": {"Ref": "Bucket"}},
            "FileSystemId": {"Value": "fs-0123456789abcdef0"},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boto3.client("cloudformation").create_stack(
            StackName=stack, TemplateBody=json.dumps(template)
        )
    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    bucket = next(o["OutputValue"] for o in outputs["Outputs"] if o["OutputKey"] == "BucketName")
    s3 = boto3.client("s3")  # moto's CloudFormation does not apply VersioningConfiguration
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for number in range(objects):
        for version in (b"1", b"2"):
            s3.put_object(Bucket=bucket, Key=f"inputs/{number:05d}/reads.fq", Body=version)
        if number % 3 == 0:
            s3.delete_object(Bucket=bucket, Key=f"inputs/{number:05d}/reads.fq")
    return bucket, machine


def versions(bucket: str) -> int:
    pages = boto3.client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket)
    return sum(len(teardown.object_versions(page)) for page in pages)


def test_the_versioned_bucket_is_emptied_before_the_stack_is_deleted(stack, monkeypatch, capsys):
    bucket, _ = deployed(stack, objects=700)
    assert versions(bucket) == 700 * 2 + 234 > teardown.DELETE_LIMIT
    left_at_delete: list[int] = []
    real_client = stack_module.Clients.client

    def client(self: Any, service: str) -> Any:
        made = real_client(self, service)
        if service == "cloudformation":
            made.meta.events.register(
                "before-call.cloudformation.DeleteStack",
                lambda **_: left_at_delete.append(versions(bucket)),
                unique_id="left-at-delete",
            )
        return made

    monkeypatch.setattr(stack_module.Clients, "client", client)
    code = main(["teardown", "--stack", stack, "--yes"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # every version and delete marker was gone when the stack's deletion was asked for
    assert left_at_delete == [0]
    assert f"{700 * 2 + 234} object versions and delete markers deleted" in out
    assert f"deleted stack {stack}" in out
    assert "kept: EFS file system fs-0123456789abcdef0" in out
    stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    assert [s["StackStatus"] for s in stacks if s["StackName"] == stack] == ["DELETE_COMPLETE"]


def test_a_stack_with_runs_still_running_is_not_deleted(stack, capsys):
    bucket, machine = deployed(stack, objects=3)
    boto3.client("stepfunctions").start_execution(stateMachineArn=machine, name="run-1")
    assert main(["teardown", "--stack", stack, "--yes"]) == 2
    err = capsys.readouterr().err
    assert "1 runs still running (run-1)" in err and "--force" in err
    assert versions(bucket) == 3 * 2 + 1  # nothing deleted
    status = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    assert status["StackStatus"] == "CREATE_COMPLETE"


def test_without_yes_and_no_terminal_nothing_is_deleted(stack, monkeypatch, capsys):
    bucket, _ = deployed(stack, objects=2)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["teardown", "--stack", stack]) == 2
    assert "give --yes" in capsys.readouterr().err
    assert versions(bucket) == 2 * 2 + 1


def test_deletions_go_1000_keys_a_request() -> None:
    keys = [{"Key": f"k{i}", "VersionId": "v"} for i in range(2_345)]
    assert [len(c) for c in teardown.chunks(keys)] == [1_000, 1_000, 345]
    page = {
        "Versions": [{"Key": "a", "VersionId": "1", "IsLatest": True}],
        "DeleteMarkers": [{"Key": "b", "VersionId": "2"}],
    }
    assert teardown.object_versions(page) == [
        {"Key": "a", "VersionId": "1"},
        {"Key": "b", "VersionId": "2"},
    ]
