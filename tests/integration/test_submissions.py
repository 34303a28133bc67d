"""The S3 drop end to end on the embedded AWS: a PutObject under submit/ makes S3 emit the
EventBridge "Object Created" event, the rule from template.yaml delivers it to the submit
function, which starts one execution that runs to the end; bad submissions leave errors/."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import boto3
import pytest

from miniwdl_serverless.controller.submit import MAX_SUBMISSION_BYTES, error_key, execution_name
from miniwdl_serverless.local.embedded import LOCAL_BUCKET, FakeContext
from tests.polling import wait_for

HELLO = """
version 1.0
workflow hello {
  input { String who }
  call greet { input: who = who }
  output { String message = greet.message }
}
task greet {
  input { String who }
  command <<< echo "hello ~{who}" >>>
  output { String message = read_string(stdout()) }
}
"""


@pytest.fixture
def s3(embedded):
    return boto3.client("s3")


def executions(embedded) -> dict[str, str]:
    pages = embedded.sfn.get_paginator("list_executions").paginate(
        stateMachineArn=embedded.state_machine_arn
    )
    return {e["name"]: e["executionArn"] for page in pages for e in page["executions"]}


def put(s3, key: str, body: bytes) -> dict[str, Any]:
    return dict(s3.put_object(Bucket=LOCAL_BUCKET, Key=key, Body=body))


def name_for(key: str, response: dict[str, Any]) -> str:
    return execution_name(LOCAL_BUCKET, key, response.get("VersionId"), response["ETag"])


def created_event(embedded, key: str) -> dict[str, Any]:
    (event,) = [
        e
        for e in embedded.sent
        if e["detail-type"] == "Object Created" and e["detail"]["object"]["key"] == key
    ]
    return copy.deepcopy(event)


def submit_handler(embedded, event: dict[str, Any]) -> dict[str, Any]:
    return dict(
        embedded.handlers["SubmitFunction"](copy.deepcopy(event), FakeContext("SubmitFunction"))
    )


def read_error(s3, key: str) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=LOCAL_BUCKET, Key=error_key(key))["Body"].read()))


def test_a_dropped_submission_starts_one_execution_that_completes(embedded, s3, tmp_path):
    before = executions(embedded)
    key = "submit/hello.json"
    submission = {"workflow_source": HELLO, "inputs": {"who": "s3"}, "dir": str(tmp_path)}
    response = put(s3, key, json.dumps(submission).encode())
    name = name_for(key, response)
    arn = wait_for(lambda: executions(embedded).get(name))
    description = embedded.wait(arn)
    assert description["status"] == "SUCCEEDED", description
    assert json.loads(description["output"])["outputs"] == {"hello.message": "hello s3"}
    assert json.loads(description["input"]) == submission
    embedded.drain()
    assert set(executions(embedded)) - set(before) == {name}

    # the event is the one S3 sends to EventBridge
    event = created_event(embedded, key)
    assert event["source"] == "aws.s3" and event["resources"] == [f"arn:aws:s3:::{LOCAL_BUCKET}"]
    detail = event["detail"]
    assert detail["bucket"] == {"name": LOCAL_BUCKET} and detail["reason"] == "PutObject"
    assert detail["object"]["size"] == len(json.dumps(submission)) and detail["object"][
        "etag"
    ] == response["ETag"].strip('"')
    assert (
        detail["object"]["version-id"] == response["VersionId"]
    )  # the template's bucket is versioned

    # the same notification again, and twice at once: still that one execution
    assert submit_handler(embedded, event)["outcome"] == "duplicate"
    outcomes: list[str] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(submit_handler(embedded, event)["outcome"]))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["duplicate", "duplicate"]
    assert set(executions(embedded)) - set(before) == {name}
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=LOCAL_BUCKET, Key=error_key(key))


def test_a_new_version_of_the_same_key_is_a_new_run(embedded, s3, tmp_path):
    before = executions(embedded)
    key = "submit/again.json"
    submission = json.dumps(
        {"workflow_source": HELLO, "inputs": {"who": "again"}, "dir": str(tmp_path)}
    ).encode()
    first, second = put(s3, key, submission), put(s3, key, submission)
    names = {name_for(key, first), name_for(key, second)}
    assert len(names) == 2
    for name in names:
        assert (
            embedded.wait(wait_for(lambda name=name: executions(embedded).get(name)))["status"]
            == "SUCCEEDED"
        )
    embedded.drain()
    assert set(executions(embedded)) - set(before) == names


@pytest.mark.parametrize(
    "key, body, problem",
    [
        (
            "submit/broken.json",
            b'{"workflow_source": "version 1.0",',
            "the submission is not valid JSON: Expecting property name enclosed in double quotes",
        ),
        (
            "submit/team a/schema.json",
            b'{"workflow": "/w.wdl", "s3upload": "x"}',
            's3upload: must be an s3://bucket/prefix URI, got "x"',
        ),
        (
            "submit/two.json",
            b'{"workflow": "/w.wdl", "workflow_source": "version 1.0"}',
            "give exactly one of 'workflow' (URI or EFS path) or 'workflow_source'",
        ),
        (
            "submit/huge.json",
            b'{"workflow": "/w.wdl", "inputs": {"x": "' + b"a" * MAX_SUBMISSION_BYTES + b'"}}',
            "more than the limit of 258048 bytes",
        ),
    ],
)
def test_an_invalid_submission_starts_nothing_and_leaves_an_error(embedded, s3, key, body, problem):
    before = executions(embedded)
    response = put(s3, key, body)
    error = wait_for(lambda: _error_if_any(s3, key))
    embedded.drain()
    assert executions(embedded) == before
    assert error["submission"] == f"s3://{LOCAL_BUCKET}/{key}"
    assert error["version"] == response["VersionId"] and error["error"] == "InvalidSubmission"
    assert problem in error["message"] and error["started"] is False
    assert not any(isinstance(e, Exception) and key in str(e) for e in embedded.handler_errors)


def _error_if_any(s3, key: str) -> dict[str, Any] | None:
    try:
        return read_error(s3, key)
    except s3.exceptions.NoSuchKey:
        return None


def test_space_plus_unicode_and_url_encoded_keys(embedded, s3, tmp_path):
    before = executions(embedded)
    key = "submit/viral surveillance/batch 1+2 é.json"
    response = put(
        s3,
        key,
        json.dumps(
            {"workflow_source": HELLO, "inputs": {"who": "é"}, "dir": str(tmp_path)}
        ).encode(),
    )
    name = name_for(key, response)
    assert embedded.wait(wait_for(lambda: executions(embedded).get(name)))["status"] == "SUCCEEDED"
    embedded.drain()
    # the same object announced with the key URL-encoded (as S3 notification records carry it)
    event = created_event(embedded, key)
    event["detail"]["object"]["key"] = "submit/viral+surveillance/batch+1%2B2+%C3%A9.json"
    result = submit_handler(embedded, event)
    assert result["outcome"] == "duplicate" and result["execution_name"] == name
    assert result["submission"] == f"s3://{LOCAL_BUCKET}/{key}"
    assert set(executions(embedded)) - set(before) == {name}


def test_keys_outside_submit_are_ignored(embedded, s3):
    before = executions(embedded)
    body = json.dumps({"workflow": "/w.wdl"}).encode()
    for key in ("inbox/run.json", "errors/submit/x.json", "submit/folder/"):
        put(s3, key, body)
    embedded.drain()
    assert executions(embedded) == before
    # not delivered to the submit function by the rule; and ignored if delivered anyway
    outside = created_event(embedded, "inbox/run.json")
    assert outside not in embedded.delivered
    assert submit_handler(embedded, outside)["outcome"] == "ignored"
    assert (
        submit_handler(embedded, created_event(embedded, "submit/folder/"))["outcome"] == "ignored"
    )
    listed = s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="errors/inbox").get("KeyCount", 0)
    assert listed == 0
