"""The S3 drop's pure parts and its flow, with in-memory adapters (no AWS)."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from miniwdl_serverless.adapters.memory import MemoryMetrics
from miniwdl_serverless.controller.submit import (
    MAX_SUBMISSION_BYTES,
    Rejected,
    SubmissionPorts,
    SubmittedObject,
    candidate_keys,
    error_key,
    execution_name,
    handle_submission,
    is_submission_key,
    key_from_notification_record,
    parse_submission,
)
from miniwdl_serverless.handlers.events import S3ObjectCreated
from miniwdl_serverless.local.project import Project, matches

EVENTS = Path(__file__).resolve().parent.parent / "events"
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
VALID = {"workflow": "s3://wdl-bucket/hello.wdl", "inputs": {"hello.who": "you"}}


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


class Store:
    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects
        self.errors: dict[str, dict[str, Any]] = {}
        self.reads: list[tuple[str, int]] = []

    def read(self, bucket: str, key: str, version_id: str | None, limit: int) -> bytes | None:
        self.reads.append((key, limit))
        body = self.objects.get(key)
        return None if body is None else body[:limit]

    def write_error(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        self.errors[key] = document


class Executions:
    """Step Functions' rule: one execution per name."""

    def __init__(self) -> None:
        self.started: dict[str, str] = {}
        self.lock = threading.Lock()

    def start(self, name: str, execution_input: str) -> tuple[str, bool]:
        with self.lock:
            if name in self.started:
                return f"arn:{name}", False
            self.started[name] = execution_input
            return f"arn:{name}", True


def submit(
    key: str,
    body: bytes | None,
    store: Store | None = None,
    executions: Executions | None = None,
    **kw: Any,
):
    store = store or Store({} if body is None else {key: body})
    executions = executions or Executions()
    obj = SubmittedObject(
        "bkt",
        key,
        kw.pop("size", len(body or b"")),
        kw.pop("etag", "abc"),
        kw.pop("version_id", "v1"),
    )
    ports = SubmissionPorts(store, executions, MemoryMetrics())
    return handle_submission(obj, ports, now=lambda: NOW, **kw), store, executions


# -- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "submit/a.json",
        "submit/viral surveillance/batch 1+2 é.json",
        "submit/" + "x" * 1000 + ".json",
        "submit/...json",
        "submit/%%%",
    ],
)
def test_execution_names_are_valid_step_functions_names(key):
    name = execution_name("bkt", key, "v1", "etag")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    assert name == execution_name("bkt", key, "v1", "etag")  # deterministic


def test_execution_name_is_readable_and_distinguishes_bucket_key_and_version():
    base = execution_name("bkt", "submit/viral run.json", "v1", "e1")
    assert base.startswith("viral-run-")
    others = {
        execution_name("other", "submit/viral run.json", "v1", "e1"),
        execution_name("bkt", "submit/viral_run.json", "v1", "e1"),
        execution_name("bkt", "submit/viral run.json", "v2", "e1"),
    }
    assert base not in others and len(others) == 3
    # the version id decides when there is one; the ETag only in an unversioned bucket
    assert execution_name("bkt", "submit/a.json", "v1", "e1") == execution_name(
        "bkt", "submit/a.json", "v1", "e2"
    )
    assert execution_name("bkt", "submit/a.json", None, "e1") != execution_name(
        "bkt", "submit/a.json", None, "e2"
    )
    assert execution_name("bkt", "submit/a.json", "null", '"e1"') == execution_name(
        "bkt", "submit/a.json", None, "e1"
    )


def test_keys():
    assert is_submission_key("submit/a.json") and is_submission_key("submit/x/y z.json")
    assert not any(
        is_submission_key(k)
        for k in ("submit/", "submit/dir/", "submitted/a.json", "errors/submit/a.json", "a.json")
    )
    assert error_key("submit/x/a b.json") == "errors/x/a b.json.error.json"
    assert candidate_keys("submit/a b.json") == ["submit/a b.json"]
    assert candidate_keys("submit/a+b%C3%A9.json") == ["submit/a+b%C3%A9.json", "submit/a bé.json"]
    assert (
        key_from_notification_record("submit%2Fmy+run%2B1+%C3%A9.json") == "submit/my run+1 é.json"
    )


# -- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, message",
    [
        (
            b'{"workflow": "s3://b/w.wdl",',
            "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 29",
        ),
        (b"", "the submission is empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "the execution input must be a JSON object"),
        (
            b'{"workflow": "w.wdl"}',
            'workflow: must be an s3://, https:// URI or an absolute path, got "w.wdl"',
        ),
        (b"{" + b" " * MAX_SUBMISSION_BYTES + b"}", "larger than 258048 bytes"),
    ],
)
def test_bad_submissions_are_named(body, message):
    with pytest.raises(Rejected) as caught:
        parse_submission(body)
    assert message in str(caught.value)


def test_a_byte_order_mark_is_fine():
    assert parse_submission(b"\xef\xbb\xbf" + json.dumps(VALID).encode()) == VALID


# -- the flow ----------------------------------------------------------------------------------
def test_valid_submission_starts_one_execution_and_duplicates_start_none():
    body = json.dumps(VALID).encode()
    result, store, executions = submit("submit/hello.json", body)
    assert result.outcome == "started" and result.execution_name == execution_name(
        "bkt", "submit/hello.json", "v1", "abc"
    )
    assert json.loads(executions.started[result.execution_name]) == VALID
    again, _, _ = submit("submit/hello.json", body, store, executions)
    assert again.outcome == "duplicate" and again.execution_arn == result.execution_arn
    assert len(executions.started) == 1 and not store.errors


def test_concurrent_deliveries_start_one_execution():
    body = json.dumps(VALID).encode()
    store, executions = Store({"submit/hello.json": body}), Executions()
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                submit("submit/hello.json", body, store, executions)[0].outcome
            )
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["duplicate"] * 7 + ["started"]
    assert len(executions.started) == 1


def test_invalid_submission_writes_a_readable_error_and_starts_nothing():
    result, store, executions = submit(
        "submit/team a/run.json", b'{"workflow": "/w.wdl", "s3upload": "x"}', version_id="v7"
    )
    assert result.outcome == "rejected" and not executions.started
    assert store.errors == {
        "errors/team a/run.json.error.json": {
            "submission": "s3://bkt/submit/team a/run.json",
            "version": "v7",
            "etag": "abc",
            "error": "InvalidSubmission",
            "message": 's3upload: must be an s3://bucket/prefix URI, got "x"',
            "time": "2026-11-26T14:00:00Z",
            "execution_name": execution_name("bkt", "submit/team a/run.json", "v7", "abc"),
            "started": False,
        }
    }


def test_oversized_submission_is_not_read():
    result, store, executions = submit("submit/big.json", None, size=MAX_SUBMISSION_BYTES + 1)
    assert result.outcome == "rejected" and store.reads == [] and not executions.started
    assert (
        "258049 bytes, more than the limit of 258048 bytes"
        in store.errors["errors/big.json.error.json"]["message"]
    )


def test_size_unknown_or_understated_reads_at_most_limit_plus_one():
    big = b"{" + b" " * (2 * MAX_SUBMISSION_BYTES) + b"}"
    result, store, _ = submit("submit/big.json", big, size=10)
    assert store.reads == [("submit/big.json", MAX_SUBMISSION_BYTES + 1)]
    assert result.outcome == "rejected" and "larger than 258048 bytes" in str(result.message)


def test_url_encoded_key_falls_back_to_the_decoded_key():
    body = json.dumps(VALID).encode()
    store = Store({"submit/my run+1 é.json": body})
    encoded, _, executions = submit("submit/my+run%2B1+%C3%A9.json", body, store)
    assert (
        store.reads[0][0] == "submit/my+run%2B1+%C3%A9.json"
        and store.reads[1][0] == "submit/my run+1 é.json"
    )
    assert encoded.outcome == "started" and encoded.submission == "s3://bkt/submit/my run+1 é.json"
    raw, _, _ = submit("submit/my run+1 é.json", body, store, executions)
    assert raw.outcome == "duplicate" and raw.execution_name == encoded.execution_name


def test_a_key_with_a_real_plus_is_read_as_is():
    body = json.dumps(VALID).encode()
    result, store, _ = submit(
        "submit/a+b.json", body, Store({"submit/a+b.json": body, "submit/a b.json": b"x"})
    )
    assert result.outcome == "started" and [k for k, _ in store.reads] == ["submit/a+b.json"]


@pytest.mark.parametrize(
    "key", ["results/out.json", "submit/", "submit/folder/", "errors/submit/x.json"]
)
def test_other_keys_are_ignored(key):
    result, store, executions = submit(key, json.dumps(VALID).encode())
    assert (
        result.outcome == "ignored"
        and not store.reads
        and not executions.started
        and not store.errors
    )


def test_a_vanished_object_starts_nothing():
    result, store, executions = submit("submit/gone.json", None, size=100)
    assert result.outcome == "gone" and not executions.started and not store.errors


# -- event fixtures and the rule ------------------------------------------------------------------
FIXTURES = [
    "s3_object_created_submit.json",
    "s3_object_created_submit_space_key.json",
    "s3_object_created_outside_submit.json",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_parse(name):
    event = S3ObjectCreated.model_validate(load(name))
    raw = load(name)["detail"]["object"]
    assert (
        event.detail.object.key == raw["key"]
        and event.detail.object.version_id == raw["version-id"]
    )
    assert event.detail.object.size == raw["size"] and event.detail.reason == "PutObject"


def test_other_s3_events_are_not_accepted():
    event = load("s3_object_created_submit.json")
    event["detail-type"] = "Object Deleted"
    with pytest.raises(ValueError):
        S3ObjectCreated.model_validate(event)


def test_the_template_rule_takes_only_submissions():
    (pattern,) = next(
        f for f in Project().functions() if f.logical_id == "SubmitFunction"
    ).event_patterns
    local = json.loads(
        json.dumps(pattern).replace('{"Ref": "Bucket"}', '"miniwdl-serverless-submissions"')
    )
    assert matches(local, load("s3_object_created_submit.json"))
    assert matches(local, load("s3_object_created_submit_space_key.json"))
    assert not matches(local, load("s3_object_created_outside_submit.json"))
    other_bucket = load("s3_object_created_submit.json")
    other_bucket["detail"]["bucket"]["name"] = "someone-else"
    assert not matches(local, other_bucket)


def test_matches_prefix_suffix_and_unevaluable_operators():
    event = {"detail": {"key": "submit/a.json", "n": 3}}
    assert matches({"detail": {"key": [{"prefix": "submit/"}]}}, event)
    assert not matches({"detail": {"key": [{"prefix": "errors/"}]}}, event)
    assert matches({"detail": {"key": [{"prefix": "errors/"}, "submit/a.json"]}}, event)
    assert matches({"detail": {"key": [{"suffix": ".json"}]}}, event)
    assert not matches({"detail": {"n": [{"prefix": "3"}]}}, event)
    assert matches({"detail": {"key": [{"anything-but": "x"}]}}, event)  # not evaluated: matches
    assert matches({"detail": {"key": [{"Ref": "Bucket"}, "other"]}}, event)


def test_the_execution_input_is_compact_and_keeps_unicode():
    body = b'{\n  "workflow": "/w.wdl",\n  "inputs": {"w.who": "\\u00e9 \xc3\xa9"}\n}'
    _, _, executions = submit("submit/u.json", body)
    (started,) = executions.started.values()
    assert started == '{"workflow":"/w.wdl","inputs":{"w.who":"\u00e9 \u00e9"}}'  # é é, not escaped


def test_step_functions_refusing_the_input_is_recorded():
    class Refusing(Executions):
        def start(self, name: str, execution_input: str) -> tuple[str, bool]:
            raise Rejected("Step Functions refused the execution input: too large")

    result, store, _ = submit("submit/a.json", json.dumps(VALID).encode(), executions=Refusing())
    assert result.outcome == "rejected"
    assert (
        store.errors["errors/a.json.error.json"]["message"]
        == "Step Functions refused the execution input: too large"
    )
