"""The reconciler's own adapters on moto: the dead-letter queue on SQS (both dialects of
attributes, visibility, deletion) and the live runs on Step Functions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from miniwdl_serverless.adapters.sqs import SqsDeadLetters
from miniwdl_serverless.adapters.stepfunctions import StepFunctionsRuns
from tests.polling import wait_for

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def queue_url(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName=f"msls-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"])


def attributes(**values: str) -> dict[str, Any]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def test_dead_letters_are_received_with_their_attributes_and_deleted(sqs, queue_url):
    event = {"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {}}
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(event),
        MessageAttributes=attributes(ERROR_CODE="SDK_CLIENT_ERROR", ERROR_MESSAGE="throttled"),
    )
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody="{}",
        MessageAttributes=attributes(RequestID="r-1", ErrorCode="200", ErrorMessage="boom"),
    )
    letters = SqsDeadLetters(sqs, queue_url, visibility_seconds=0)
    received = letters.receive(100)
    assert len(received) == 2
    by_body = {letter.body: letter for letter in received}
    assert json.loads(next(b for b in by_body if b != "{}")) == event
    assert {letter.failure for letter in received} == {"SDK_CLIENT_ERROR: throttled", "200: boom"}
    letters.delete(by_body["{}"])
    (left,) = letters.receive(100)  # visibility 0: what was not deleted comes back at once
    assert left.body == json.dumps(event)


def test_received_dead_letters_stay_hidden_for_the_visibility_timeout(sqs, queue_url):
    for i in range(25):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"n": i}))
    letters = SqsDeadLetters(sqs, queue_url, visibility_seconds=300)
    first = letters.receive(12)
    assert len(first) == 12  # ReceiveMessage gives 10 at most: two calls
    rest = letters.receive(100)
    assert len(rest) == 13
    assert letters.receive(100) == []
    assert {json.loads(m.body)["n"] for m in first + rest} == set(range(25))


def test_live_runs_are_the_running_executions_of_the_state_machine(aws):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    name = f"sfn-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    # a long Wait: stays RUNNING even where moto executes state machines (the embedded AWS
    # of another test in this process turns that on)
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    suffix = uuid.uuid4().hex[:8]
    machines = [
        sfn.create_state_machine(
            name=f"{n}-{suffix}", definition=json.dumps(definition), roleArn=role
        )["stateMachineArn"]
        for n in ("ours", "theirs")
    ]
    for name in ("run-a", "run-b", "run-c"):
        sfn.start_execution(stateMachineArn=machines[0], name=name)
    sfn.start_execution(stateMachineArn=machines[1], name="other")
    stopped = machines[0].replace(":stateMachine:", ":execution:") + ":run-b"
    sfn.stop_execution(executionArn=stopped)
    # where moto executes state machines, the stop lands asynchronously
    wait_for(lambda: sfn.describe_execution(executionArn=stopped)["status"] != "RUNNING", 10)
    assert sorted(StepFunctionsRuns(sfn, machines[0]).running()) == ["run-a", "run-c"]
