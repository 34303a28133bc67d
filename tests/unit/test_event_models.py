"""The event fixtures parse with the handlers' models, and the Batch detail model reads them
right."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from miniwdl_serverless.core.events import INTERRUPTION, BatchJobDetail
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB, TAG_RUN
from miniwdl_serverless.handlers.events import (
    BatchJobStateChange,
    EventBridgeDetail,
    FinishEvent,
    StartEvent,
)

EVENTS = Path(__file__).resolve().parent.parent / "events"
RUN = "6f1c2b7e-3d4a-4c59-9e8f-2a7b0c1d5e93"

# file → (status, graph job id, attempt, exit code, status reason)
EXPECTED: dict[str, tuple[str, str, int, int | None, str]] = {
    "batch_job_running.json": ("RUNNING", "call-fastqc-1", 0, None, ""),
    "batch_job_succeeded.json": (
        "SUCCEEDED",
        "call-fastqc-0",
        0,
        0,
        "Essential container in task exited",
    ),
    "batch_job_failed_exit.json": (
        "FAILED",
        "call-align-1",
        0,
        1,
        "Essential container in task exited",
    ),
    "batch_job_spot_interrupted.json": (
        "FAILED",
        "call-assemble/call-spades",
        1,
        None,
        "Host EC2 (instance i-0abc123def4567890) terminated.",
    ),
    "batch_job_cannot_pull.json": (
        "FAILED",
        "call-variants",
        0,
        None,
        "Task failed to start - CannotPullContainerError: pull image manifest has been retried "
        "5 time(s): failed to resolve ref quay.io/biocontainers/lofreq:2.1.5--no-such-tag: "
        "quay.io/biocontainers/lofreq:2.1.5--no-such-tag: not found",
    ),
}


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def test_every_batch_fixture_is_covered() -> None:
    assert sorted(p.name for p in EVENTS.glob("batch_job_*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_batch_fixture_parses(name: str) -> None:
    raw = load(name)
    event = BatchJobStateChange.model_validate(raw)
    assert event.source == "aws.batch"
    assert event.detail_type == "Batch Job State Change"
    assert event.account == "123456789012"
    assert event.region == "us-east-1"
    assert event.resources == [raw["detail"]["jobArn"]]
    assert event.time.tzinfo is not None
    assert event.detail.jobId == raw["detail"]["jobId"]
    assert event.detail.jobQueue is not None and ":job-queue/" in event.detail.jobQueue
    assert event.detail.tags[TAG_RUN] == RUN


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_batch_job_change_from_fixture(name: str) -> None:
    """The detail as functions/advance/app.py receives it (parsed once, in the envelope)."""
    status, graph_job_id, attempt, exit_code, reason = EXPECTED[name]
    event = BatchJobStateChange.model_validate(load(name))
    change = event.detail
    assert change.batch_job_id == event.detail.jobId
    assert change.status == status
    assert change.run_id == RUN
    assert change.job_id == graph_job_id
    assert change.attempt == attempt
    assert change.exit_code == exit_code
    assert change.status_reason == reason


def test_fixtures_are_consistent_with_their_tags() -> None:
    """Job names carry the attempt (1-based); the tag carries it 0-based."""
    for name in EXPECTED:
        detail = load(name)["detail"]
        attempt = int(detail["tags"][TAG_ATTEMPT])
        assert detail["jobName"].startswith(RUN + "-")
        assert f"-try{attempt + 1}" in detail["jobName"]
        assert detail["tags"][TAG_JOB]


def test_running_has_a_log_stream_and_no_attempts() -> None:
    event = BatchJobStateChange.model_validate(load("batch_job_running.json"))
    change = event.detail
    assert change.log_stream is not None and "/default/" in change.log_stream
    assert event.detail.attempts == []


def test_spot_interruption_is_recognised() -> None:
    change = BatchJobDetail.model_validate(load("batch_job_spot_interrupted.json")["detail"])
    assert INTERRUPTION.search(change.status_reason)
    for name in ("batch_job_failed_exit.json", "batch_job_cannot_pull.json"):
        other = BatchJobDetail.model_validate(load(name)["detail"])
        assert not INTERRUPTION.search(other.status_reason)


def test_cannot_pull_reason_is_in_the_container() -> None:
    """Batch says "Task failed to start"; the image problem is in container.reason."""
    event = BatchJobStateChange.model_validate(load("batch_job_cannot_pull.json"))
    assert event.detail.container["reason"].startswith("CannotPullContainerError: ")
    assert event.detail.attempts[0]["container"]["reason"].startswith("CannotPullContainerError")
    assert "exitCode" not in event.detail.container
    assert "startedAt" not in load("batch_job_cannot_pull.json")["detail"]


@pytest.mark.parametrize("status", ["DONE", "succeeded", "", "CANCELLED"])
def test_invalid_status_is_rejected(status: str) -> None:
    raw = load("batch_job_succeeded.json")
    raw["detail"]["status"] = status
    with pytest.raises(ValidationError):
        BatchJobStateChange.model_validate(raw)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("detail", "jobId"), None),
        (("detail-type",), None),
        (("time",), "not a time"),
        (("detail", "tags"), {"miniwdl-serverless:attempt": 1.5}),
    ],
)
def test_malformed_event_is_rejected(path: tuple[str, ...], value: Any) -> None:
    raw = changed(load("batch_job_succeeded.json"), path, value)
    with pytest.raises(ValidationError):
        BatchJobStateChange.model_validate(raw)


def changed(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of the event with the field at ``path`` set to ``value`` (None: removed)."""
    raw = copy.deepcopy(event)
    target = raw
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_eventbridge_envelope_gives_what_powertools_gives(name: str) -> None:
    """handlers/events.py:EventBridgeDetail stands in for powertools' EventBridgeEnvelope (whose
    package is not imported by the handlers): the same detail from the same event."""
    from aws_lambda_powertools.utilities.parser.envelopes import EventBridgeEnvelope

    raw = load(name)
    ours = EventBridgeDetail().parse(data=raw, model=BatchJobDetail)
    assert ours == EventBridgeEnvelope().parse(data=raw, model=BatchJobDetail)
    assert isinstance(ours, BatchJobDetail) and ours.jobId == raw["detail"]["jobId"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("detail", "jobId"), None),  # a bad detail
        (("detail", "status"), "DONE"),
        (("detail-type",), None),  # a bad envelope
        (("time",), "not a time"),
    ],
)
def test_the_eventbridge_envelope_refuses_what_powertools_refuses(
    path: tuple[str, ...], value: Any
) -> None:
    from aws_lambda_powertools.utilities.parser.envelopes import EventBridgeEnvelope

    raw = changed(load("batch_job_succeeded.json"), path, value)
    for envelope in (EventBridgeDetail, EventBridgeEnvelope):
        with pytest.raises(ValidationError):
            envelope().parse(data=raw, model=BatchJobDetail)


def test_attempt_tag_that_is_not_a_number() -> None:
    detail = load("batch_job_succeeded.json")["detail"]
    detail["tags"][TAG_ATTEMPT] = "first"
    assert BatchJobDetail.model_validate(detail).attempt is None


def test_foreign_job_has_no_run() -> None:
    detail = load("batch_job_succeeded.json")["detail"]
    detail["tags"] = {}
    change = BatchJobDetail.model_validate(detail)
    assert change.run_id is None and change.job_id is None and change.attempt is None


def test_start_payload_parses() -> None:
    event = StartEvent.model_validate(load("start_payload.json"))
    assert event.execution_arn.startswith("arn:aws:states:us-east-1:123456789012:execution:")
    assert event.execution_arn.rsplit(":", 1)[-1] == RUN
    assert event.task_token
    assert event.started_at == "2024-05-14T09:30:00.123Z"
    assert event.input["workflow"].startswith("s3://")
    assert event.input["timeout_seconds"] == 604800  # filled in by the Defaults states


def test_start_payload_input_is_a_valid_run() -> None:
    from miniwdl_serverless.core.options import parse_run_options

    options = parse_run_options(load("start_payload.json")["input"])
    assert options.s3upload == "s3://my-results-bucket/runs/"


def test_finish_payload_parses() -> None:
    event = FinishEvent.model_validate(load("finish_payload_failed.json"))
    assert event.execution_name == RUN
    error = event.state["error"]
    assert error["Error"] == "CommandFailed"
    cause = json.loads(error["Cause"])
    assert cause["error"] == "RunFailed"
    assert cause["cause"]["exit_status"] == 1
    assert "result" not in event.state


def test_the_work_tables_stream_record_parses_into_its_item() -> None:
    from miniwdl_serverless.core.work import SUBMIT, queued_submission
    from miniwdl_serverless.handlers.events import WorkStream, item_failures, stream_items

    event = WorkStream.model_validate(load("dynamodb_stream_work_submit.json"))
    ((sequence, item),) = stream_items(event, lambda *skipped: pytest.fail(str(skipped)))
    assert sequence == "111100000000012345678901"
    assert item.kind == SUBMIT and item.run_id == "run-20261201"
    queued = queued_submission(item)
    assert queued.job_id == "call-hello" and queued.attempt == 0
    assert queued.submission.resources.memory_mib == 2048
    assert item_failures([(sequence, item)], [item.key]) == {
        "batchItemFailures": [{"itemIdentifier": sequence}]
    }
    assert item_failures([(sequence, item)], []) == {"batchItemFailures": []}
