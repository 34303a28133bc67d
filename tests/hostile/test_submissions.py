"""Hostile S3 submissions (issue 9): object keys with traversal, unicode and lengths at S3's
limit; bodies of the wrong type, huge, not JSON, not UTF-8, lone surrogate escapes.

Property: ``handle_submission`` never raises; a bad submission starts nothing and leaves its
error document under ``errors/`` (a key S3 takes: at most 1024 bytes of UTF-8); a started one
carries an execution input the schema accepts, under a name Step Functions takes."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniwdl_serverless.adapters.memory import MemoryMetrics
from miniwdl_serverless.controller.submit import (
    MAX_SUBMISSION_BYTES,
    SubmissionPorts,
    SubmittedObject,
    handle_submission,
)
from miniwdl_serverless.core.options import schema_problem

from .strategies import hostile_text, json_values

S3_KEY_BYTES = 1024
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
VALID = {"workflow": "s3://wdl-bucket/hello.wdl", "inputs": {"hello.who": "you"}}


class Objects:
    """The bucket, as S3 holds it: keys of at most 1024 bytes of UTF-8."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects
        self.errors: dict[str, bytes] = {}

    def read(self, bucket: str, key: str, version_id: str | None, limit: int) -> bytes | None:
        body = self.objects.get(key)
        return None if body is None else body[:limit]

    def write_error(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        assert key.startswith("errors/"), key
        assert len(key.encode()) <= S3_KEY_BYTES, f"S3 refuses a key of {len(key.encode())} B"
        self.errors[key] = json.dumps(document, ensure_ascii=False).encode()  # as adapters/s3


class Executions:
    def __init__(self) -> None:
        self.started: dict[str, str] = {}

    def start(self, name: str, execution_input: str) -> tuple[str, bool]:
        assert EXECUTION_NAME.match(name), name
        execution_input.encode()  # Step Functions takes UTF-8 text only
        fresh = name not in self.started
        self.started.setdefault(name, execution_input)
        return f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{name}", fresh


KEY_PARTS = [
    "run.json",
    "../../errors/x.json",
    "../wdl/0000.zip",
    "a/../../b.json",
    "/abs.json",
    "é🎉\u202e.json",
    "sp ace+plus%20.json",
    "é" * 600 + ".json",  # 1200 bytes: past S3's limit as an error key
    "a" * 1010,
    "x/" * 300,
    "nul\x00.json",
    "",
]
keys = st.one_of(
    st.sampled_from(KEY_PARTS).map(lambda part: "submit/" + part),
    st.text(min_size=1, max_size=60).map(lambda text: "submit/" + text),
    st.sampled_from(["submit/", "submit//", "errors/x.json", "other/submit/x.json", "submit"]),
).filter(lambda key: len(key.encode("utf-8", "surrogatepass")) <= S3_KEY_BYTES)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # escapes: "\ud800" stays an escape in the body


BODIES: list[bytes] = [
    b"",
    b"   \n",
    b"null",
    b"[]",
    b'"just a string"',
    b"{",
    b"\xff\xfe{}",
    b"\xef\xbb\xbf" + _dumps(VALID),  # a BOM
    _dumps({**VALID, "name": "\\ud800"}).replace(b"\\\\ud800", b"\\ud800"),
    b'{"workflow_source": "\\udfff", "inputs": {}}',
    _dumps({**VALID, "dir": "/mnt/efs/../../etc"}),
    _dumps({**VALID, "inputs": {"hello.who": "x" * (MAX_SUBMISSION_BYTES - 100)}}),
    _dumps({**VALID, "inputs": {"hello.who": "é" * (MAX_SUBMISSION_BYTES // 2 - 60)}}),
    _dumps({**VALID, "inputs": {"hello.who": "\x01" * (MAX_SUBMISSION_BYTES // 6)}}),
    b"1" * (MAX_SUBMISSION_BYTES + 1),
    b"[" * 100_000,  # nesting deeper than the JSON parser recurses
    _dumps(VALID),
]
bodies = st.one_of(
    st.sampled_from(BODIES),
    json_values.map(_dumps),
    st.dictionaries(st.sampled_from(sorted(VALID) + ["dir", "s3upload", "x"]), json_values).map(
        lambda extra: _dumps({**VALID, **extra})
    ),
    st.binary(max_size=64),
)


def submit(key: str, body: bytes, size: int | None) -> tuple[Any, Objects, Executions]:
    objects, executions = Objects({key: body}), Executions()
    ports = SubmissionPorts(objects, executions, MemoryMetrics())
    obj = SubmittedObject("stack-bucket", key, size, '"etag"', "v1")
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return handle_submission(obj, ports, now=lambda: now), objects, executions


@given(keys, bodies, st.booleans())
def test_hostile_submissions(key, body, size_known):
    result, objects, executions = submit(key, body, len(body) if size_known else None)
    assert result.outcome in ("started", "rejected", "ignored", "gone", "duplicate")
    if result.outcome == "rejected":
        assert executions.started == {}
        (document,) = objects.errors.values()
        report = json.loads(document)
        assert report["started"] is False and report["error"] == "InvalidSubmission"
        assert report["message"] and "Traceback" not in report["message"]
    if result.outcome == "started":
        (started,) = executions.started.values()
        assert len(started.encode()) <= MAX_SUBMISSION_BYTES
        assert schema_problem(json.loads(started)) is None
        assert objects.errors == {}


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
@pytest.mark.parametrize("part", KEY_PARTS, ids=range(len(KEY_PARTS)))
def test_submission_corpus(part, body):
    test_hostile_submissions.hypothesis.inner_test("submit/" + part, body, True)


def test_found_2_a_lone_surrogate_escape_is_rejected_with_a_report():
    """Before: parse_submission raised UnicodeEncodeError (no report; EventBridge retried)."""
    result, objects, executions = submit(
        "submit/run.json", b'{"workflow": "s3://b/w.wdl", "name": "\\ud800"}', None
    )
    assert result.outcome == "rejected" and executions.started == {}
    assert "lone surrogate" in json.loads(objects.errors["errors/run.json.error.json"])["message"]


def test_found_3_the_error_report_of_a_long_key_is_a_key_s3_takes():
    """Before: errors/<key>.error.json of a 1,000-byte key was over S3's 1024 bytes."""
    long_key = "submit/" + "é" * 505 + ".json"
    result, objects, _ = submit(long_key, b"{", None)
    assert result.outcome == "rejected"
    (error_key,) = objects.errors
    assert len(error_key.encode()) <= S3_KEY_BYTES and error_key.endswith(".error.json")
    other, objects_2, _ = submit(long_key.replace(".json", "x.json"), b"{", None)
    assert list(objects_2.errors) != [error_key]  # cut the same, told apart by the digest


@given(hostile_text)
def test_hostile_text_in_every_string_field_is_rejected_or_started(text):
    for field in ("workflow", "dir", "s3upload", "task", "name", "task_queue"):
        body = json.dumps({**VALID, field: text}).encode()
        result, _, _ = submit("submit/field.json", body, len(body))
        assert result.outcome in ("started", "rejected")


def test_found_4_json_nested_too_deeply_is_rejected_with_a_report():
    """Before: json.loads raised RecursionError out of the submit function (no report)."""
    result, objects, executions = submit("submit/deep.json", b"[" * 100_000, None)
    assert result.outcome == "rejected" and executions.started == {}
    assert (
        "nested too deeply" in json.loads(objects.errors["errors/deep.json.error.json"])["message"]
    )
