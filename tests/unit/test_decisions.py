"""The controller's decisions as pure values (core/decisions.py)."""

from __future__ import annotations

import pytest

from miniwdl_serverless.core.decisions import (
    AfterFailure,
    Answer,
    CallAttempt,
    EventKind,
    Target,
    TaskSettings,
    after_failed_attempt,
    classify_job_event,
    classify_run_event,
    job_failure,
    lease_renewal,
    owed_answer,
    queue_for,
    run_dir_request,
    scope_end,
    submit_lease,
    task_submission,
)
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB, TAG_RUN
from miniwdl_serverless.core.records import (
    DONE,
    FAILED,
    RUN_FAILED,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
    WAITING,
    Job,
    Run,
)
from miniwdl_serverless.core.store_rules import LEASE_MARGIN_SECONDS, SUBMIT_LEASE_SECONDS

TAGS = {TAG_RUN: "r", TAG_JOB: "call-t", TAG_ATTEMPT: "1"}


def detail(
    status: str = "SUCCEEDED",
    exit_code: int | None = 0,
    reason: str | None = None,
    tags: dict[str, str] | None = None,
    job_id: str = "b-1",
    name: str = "r-call-t-try2",
) -> BatchJobDetail:
    container = {} if exit_code is None else {"exitCode": exit_code}
    return BatchJobDetail(
        jobName=name,
        jobId=job_id,
        status=status,
        statusReason=reason,
        container=container,
        tags=TAGS if tags is None else tags,
    )


def running(**fields) -> Job:
    values = {
        "status": RUNNING,
        "attempt": 1,
        "batch_job_name": "r-call-t-try2",
        "batch_job_id": "b-1",
        **fields,
    }
    return Job("r", "call-t", **values)


@pytest.mark.parametrize(
    "event, run, expected",
    [
        (detail(tags={}), Run("r", status=RUN_RUNNING), EventKind.FOREIGN),
        (detail("RUNNING"), Run("r", status=RUN_FAILED), EventKind.STRAGGLER),
        (detail("STARTING"), Run("r", status=RUN_FAILED), EventKind.STRAGGLER),
        (detail("SUCCEEDED"), Run("r", status=RUN_FAILED), EventKind.RUN_NOT_RUNNING),
        (detail(), Run("r", status=RUN_SUCCEEDED), EventKind.RUN_NOT_RUNNING),
        (detail(), None, EventKind.RUN_NOT_RUNNING),
        (detail(), Run("r", status=RUN_RUNNING), None),
    ],
)
def test_what_the_run_says_about_an_event(event, run, expected):
    assert classify_run_event(event, run) is expected


@pytest.mark.parametrize(
    "job, event, expected",
    [
        (running(status=DONE), detail(), EventKind.RESUME),
        (running(status="completing-2"), detail("RUNNING"), EventKind.RESUME),
        (running(status=WAITING), detail(), EventKind.STALE),
        (running(attempt=2), detail(), EventKind.STALE),  # an older attempt's event
        (running(batch_job_name="other"), detail(), EventKind.STALE),
        (running(), detail(job_id="b-2"), EventKind.STALE),  # another Batch job of that name
        (running(batch_job_id=None), detail(), EventKind.SUCCEEDED),  # before the id was saved
        (running(), detail("RUNNING", None), EventKind.STARTED),
        (running(), detail("STARTING", None), EventKind.STARTED),
        (running(), detail("SUCCEEDED"), EventKind.SUCCEEDED),
        (running(), detail("FAILED", 3), EventKind.FAILED_WITH_EXIT),
        (
            running(),
            detail("FAILED", None, "Host EC2 (instance i-1) terminated."),
            EventKind.INTERRUPTED,
        ),
        (
            running(),
            detail("FAILED", None, "CannotPullContainerError"),
            EventKind.FAILED_WITHOUT_EXIT,
        ),
        (running(), detail("RUNNABLE", None), EventKind.OTHER),
        # failed for good, its run not failed (the failing invocation died): fail the run
        (running(status=FAILED), detail("FAILED", 3), EventKind.FAIL_RUN),
        (running(status=FAILED), detail("SUCCEEDED"), EventKind.FAIL_RUN),
        (running(status=FAILED), detail("RUNNING", None), EventKind.STALE),
        (running(status=FAILED, attempt=2), detail("FAILED", 3), EventKind.STALE),
        (running(status=FAILED), detail("FAILED", 3, job_id="b-2"), EventKind.STALE),
    ],
)
def test_what_an_event_means_for_its_job(job, event, expected):
    assert classify_job_event(job, event) is expected


def retrying(**fields) -> Job:
    """Attempt 3 (``attempt=2``) marked running after attempt 2's end, no Batch job yet."""
    values = {"attempt": 2, "batch_job_name": "r-call-t-try3", "batch_job_id": None, **fields}
    return running(**values)


@pytest.mark.parametrize(
    "job, event, expected",
    [
        (retrying(), detail("FAILED", 1, job_id="b-1"), EventKind.RESUBMIT),
        (retrying(), detail("SUCCEEDED", 0), EventKind.RESUBMIT),  # its outputs failed
        (retrying(), detail("FAILED", None, "Host EC2 (i-1) terminated."), EventKind.RESUBMIT),
        (retrying(), detail("RUNNING", None), EventKind.STALE),  # late, not the end
        (retrying(batch_job_id="b-2"), detail("FAILED", 1), EventKind.STALE),  # submitted
        (retrying(attempt=3), detail("FAILED", 1), EventKind.STALE),  # two attempts on
        (retrying(), detail("FAILED", 1, name="r-call-t-other"), EventKind.STALE),
        (retrying(status=DONE), detail("FAILED", 1), EventKind.RESUME),
    ],
)
def test_the_end_of_the_previous_attempt_resumes_an_unsubmitted_retry(job, event, expected):
    assert classify_job_event(job, event) is expected


def test_the_submit_lease():
    assert submit_lease(1000.0) == 1000.0 + SUBMIT_LEASE_SECONDS
    assert SUBMIT_LEASE_SECONDS < 60  # Lambda retries a failed invocation after a minute
    held = submit_lease(1000.0)
    assert lease_renewal(1000.0, held) is None  # covers the next step: no write
    late = held - LEASE_MARGIN_SECONDS
    assert lease_renewal(late, held) == submit_lease(late)
    assert lease_renewal(held + 100, held) == submit_lease(held + 100)  # lapsed: try anyway


def test_what_an_ended_run_still_owes_its_token():
    error = RunError.of("CommandFailed", "call-t failed", node="call-t")
    success = Answer.success("r", "/runs/r")
    failure = Answer.failure(error)
    assert success == Answer(output={"run_id": "r", "dir": "/runs/r"})
    assert (failure.error, failure.cause) == ("CommandFailed", error.cause)

    def ended(status: str, due, **fields) -> Run:
        return Run("r", status=status, task_token="t", answer_due=due, **fields)

    assert owed_answer(ended(RUN_SUCCEEDED, success.due())) == success
    assert owed_answer(ended(RUN_FAILED, failure.due(), error=error.info)) == failure
    assert owed_answer(ended(RUN_FAILED, {"error": "X"})) == Answer.failure(
        RunError.of("X", "X")
    )  # no error recorded: the name says it
    assert owed_answer(ended(RUN_SUCCEEDED, None)) is None  # sent
    assert owed_answer(ended(RUN_RUNNING, success.due())) is None  # not ended
    assert owed_answer(Run("r", status=RUN_SUCCEEDED, answer_due=success.due())) is None


@pytest.mark.parametrize(
    "runtime, attempt, interruptions, interrupted, expected",
    [
        ({}, 0, 0, False, AfterFailure(False, 0)),
        ({"maxRetries": 2}, 0, 0, False, AfterFailure(True, 0)),
        ({"maxRetries": 2}, 2, 0, False, AfterFailure(False, 0)),
        ({"preemptible": 2}, 0, 0, True, AfterFailure(True, 1)),
        ({"preemptible": 2}, 1, 1, True, AfterFailure(True, 2)),
        ({"preemptible": 2}, 2, 2, True, AfterFailure(False, 2)),  # used up, no maxRetries
        ({"preemptible": 1, "maxRetries": 1}, 1, 1, True, AfterFailure(True, 1)),
        ({"preemptible": 1, "maxRetries": 1}, 2, 1, False, AfterFailure(False, 1)),
        ({"preemptible": 3}, 0, 0, False, AfterFailure(False, 0)),  # not an interruption
    ],
)
def test_retry_or_fail(runtime, attempt, interruptions, interrupted, expected):
    assert after_failed_attempt(runtime, attempt, interruptions, interrupted) == expected


def test_queue_choice():
    assert queue_for("spot", "ondemand", preemptible=2, interruptions=1) == "spot"
    assert queue_for("spot", "ondemand", preemptible=2, interruptions=2) == "ondemand"
    assert queue_for("spot", None, preemptible=2, interruptions=5) == "spot"
    assert queue_for("spot", "ondemand", preemptible=0, interruptions=3) == "spot"
    with pytest.raises(RunError, match="no task queue"):
        queue_for(None, None, 0, 0)


def test_a_task_that_asks_for_a_gpu_goes_to_the_gpu_queue_when_the_stack_has_one():
    assert queue_for("spot", "ondemand", 2, 0, gpus=1, gpu_queue="gpu") == "gpu"
    assert queue_for("spot", "ondemand", 2, 2, gpus=2, gpu_queue="gpu") == "gpu"
    assert queue_for("spot", "ondemand", 2, 0, gpus=1, gpu_queue=None) == "spot"
    assert queue_for("spot", "ondemand", 2, 0, gpus=0, gpu_queue="gpu") == "spot"


def test_submission_spec():
    call = CallAttempt(
        "run.1",
        "call-t-2",
        1,
        {"cpu": 4, "memory_reservation": 8 * 2**30, "env": {"A": 1}, "docker": "quay.io/x:1"},
        {},
        "bash ../command",
    )
    settings = TaskSettings(memory_delta_mib=-100, job_timeout_seconds=600)
    spec = task_submission(call, settings, "q", {"team": "genomics"})
    assert spec.name.startswith("run_1-call-t-2-try2-")  # '.' is replaced: a digest keeps it apart
    assert (spec.queue, spec.image, spec.timeout_seconds) == ("q", "quay.io/x:1", 600)
    assert (spec.resources.vcpus, spec.resources.memory_mib) == (4, 8192 - 100)
    assert spec.environment == {"A": "1"}
    assert spec.tags == {
        "team": "genomics",
        TAG_RUN: "run.1",
        TAG_JOB: "call-t-2",
        TAG_ATTEMPT: "1",
    }
    default = task_submission(CallAttempt("r", "call-t", 0, {}, {}, ""), TaskSettings(), "q", {})
    assert default.image == "ubuntu:22.04" and default.timeout_seconds == 86400


def test_settings_come_from_miniwdls_configuration():
    import logging
    import os

    import WDL.runtime

    overrides = {
        "aws": {"memory_delta": "-50", "job_timeout": "7200"},
        "file_io": {"copy_input_files": "true"},
    }
    arrays = os.environ.get("MINIWDL__SERVERLESS__ARRAY_JOBS", "true") == "true"  # the env's
    cfg = WDL.runtime.config.Loader(logging.getLogger("t"), overrides=overrides)
    assert TaskSettings.from_config(cfg) == TaskSettings(-50, 7200, True, arrays)
    plain = WDL.runtime.config.Loader(logging.getLogger("t"))
    assert TaskSettings.from_config(plain) == TaskSettings(array_jobs=arrays)
    off = WDL.runtime.config.Loader(
        logging.getLogger("t"), overrides={"serverless": {"array_jobs": "false"}}
    )
    assert TaskSettings.from_config(off).array_jobs is False


def test_what_a_scope_end_does():
    assert scope_end("", {"w.x": 1}, "t", is_task=True).outputs == {"w.x": 1}
    run = scope_end("", {"x": 1}, "wf", is_task=False)
    assert (run.parent, run.outputs) == (None, {"wf.x": 1})
    call = scope_end("call-sub-0", {"x": 1}, "sub", is_task=False)
    assert (call.parent, call.outputs) == ("call-sub-0", {"sub.x": 1})


def test_run_directory_names():
    assert run_dir_request("/efs/runs", "wf", "2026-12-01T10:00:00Z") == (
        "/efs/runs",
        "20261201_100000_wf",
    )
    assert run_dir_request("/efs/here/.", "wf", None) == ("/efs/here", None)


def test_a_call_failure_in_miniwdls_shape():
    target = Target("wf", False, "/w.wdl", 3, 1)
    cause = {"error": "CommandFailed", "message": "exit 2", "exit_status": 2}
    error = job_failure(target, "r", "/runs/r", "call-t", cause)
    assert error.name == "CommandFailed"
    assert error.info["error"] == "RunFailed" and error.info["workflow"] == "wf"
    assert error.info["message"] == "call-t command failed with exit status 2"
    assert (
        error.info["cause"]["dir"] == "/runs/r/call-t" and error.info["cause"]["node"] == "call-t"
    )
    assert error.info["pos"] == {"source": "/w.wdl", "line": 3, "column": 1}


def test_a_call_id_longer_than_a_batch_tag_value_is_a_clear_error():
    """Found by the hostile suite: a 300-character task name made a tag SubmitJob refuses
    with an unclear Batch error; events find calls by that tag, so it is never cut."""
    long_id = "call-" + "t" * 300
    with pytest.raises(RunError) as raised:
        task_submission(CallAttempt("r", long_id, 0, {}, {}, ""), TaskSettings(), "q", {})
    assert raised.value.name == "CallIdTooLong"
    assert "305 characters" in raised.value.info["message"]
    task_submission(CallAttempt("r", "call-" + "t" * 251, 0, {}, {}, ""), TaskSettings(), "q", {})
