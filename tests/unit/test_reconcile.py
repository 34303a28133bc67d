"""The reconciler (controller/reconcile.py) on in-memory ports: an event lost between AWS
Batch and the advance function (SUCCEEDED, FAILED, RUNNING), a submission lost with its
submitter, an answer never given to Step Functions, a quiet run left half-way by a dead
invocation, a run nothing will advance, and the dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from miniwdl_serverless.adapters.memory import SubmittedJob
from miniwdl_serverless.controller import end
from miniwdl_serverless.core.records import DONE, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED, RUNNING

from .harness import Harness
from .test_controller import CHAIN
from .test_recovery import Clock


class LambdaDied(BaseException):
    """A Lambda killed mid-invocation, whose event is never delivered again."""


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    import time

    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake


def dies_once(monkeypatch, owner: Any, name: str, when: Any) -> list:
    real = getattr(owner, name)
    died: list = []

    def method(*args: Any, **kwargs: Any) -> Any:
        if not died and when(*args):
            died.append(args)
            raise LambdaDied()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, method)
    return died


def actions(report) -> list[str]:
    return [str(item) for item in report.done]


def batch_event(job: SubmittedJob) -> dict[str, Any]:
    """The EventBridge event for the job's current state, as a dead-letter queue keeps it."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": [f"arn:aws:batch:us-east-1:123456789012:job/{job.batch_job_id}"],
        "detail": job.detail().model_dump(exclude_none=True),
    }


# ---- lost Batch events ----------------------------------------------------------------------


def test_a_lost_succeeded_event_is_replayed_and_the_run_finishes(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.event(first, "RUNNING")
    harness.lose(first, "SUCCEEDED", 0)
    assert harness.reconcile(later=0).done == []  # its event may still be on the way
    report = harness.reconcile()
    assert actions(report) == [f"call-first: replaying SUCCEEDED of Batch job {first.batch_job_id}"]
    assert harness.job("call-first").status == DONE
    assert harness.job("call-second").batch_job_id is not None
    assert harness.metrics.counts["ReconciledTransitions"] == 1
    assert harness.reconcile().done == []  # nothing twice
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_lost_failed_event_is_replayed_and_the_call_retried(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.event(first, "RUNNING")
    harness.lose(first, "FAILED", 3, "Essential container in task exited")
    report = harness.reconcile()
    assert [str(a) for a in report.done] == [
        f"call-first: replaying FAILED of Batch job {first.batch_job_id}"
    ]
    job = harness.job("call-first")
    assert (job.status, job.attempt) == (RUNNING, 1)  # maxRetries: 1
    retry = harness.batch_job_of("call-first")
    assert retry.batch_job_id != first.batch_job_id
    harness.event(retry, "RUNNING")
    harness.lose(retry, "FAILED", 3, "Essential container in task exited")
    harness.reconcile()
    assert harness.run().status == RUN_FAILED
    assert harness.answer()[0] == "failure"


def test_a_lost_running_event_is_replayed_once(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.lose(first, "RUNNING")
    assert harness.job("call-first").started_at is None
    assert actions(harness.reconcile()) == [
        f"call-first: replaying RUNNING of Batch job {first.batch_job_id}"
    ]
    job = harness.job("call-first")
    assert job.started_at is not None and job.log_stream == f"default/{first.batch_job_id}"
    assert harness.reconcile().done == []
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_describe_is_asked_once_per_run_for_the_running_calls(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.reconcile()
    assert harness.batch.describe_calls == [[first.batch_job_id]]


def test_a_submission_whose_submitter_died_is_submitted_by_the_streams_redelivery(
    harness, monkeypatch, clock
):
    harness.start(CHAIN)
    second = f"{harness.run_id}-call-second-try1"
    died = dies_once(monkeypatch, harness.batch, "submit", lambda s: s.name == second)
    with pytest.raises(LambdaDied):
        harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    assert died and harness.job("call-second").batch_job_id is None
    clock.advance(60)
    assert harness.reconcile(later=0).done == []  # the stream delivers the item again
    assert harness.job("call-second").batch_job_id is not None
    assert len(harness.batch.jobs) == 2
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_submission_lost_with_its_submitter_is_resubmitted(harness, monkeypatch, clock):
    harness.start(CHAIN)
    died = dies_once(monkeypatch, harness.work, "put", lambda items: items[0].kind == "submit")
    with pytest.raises(LambdaDied):  # prepared, marked running, never handed to the submitter
        harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    assert died and harness.job("call-second").batch_job_id is None
    clock.advance(60)
    assert harness.reconcile(later=0).done == []  # its lease, then Lambda's retries first
    clock.advance(600)
    assert actions(harness.reconcile(later=0)) == [
        "call-second: submission lost: marked running, no Batch job: resubmitted"
    ]
    assert harness.job("call-second").batch_job_id is not None
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


# ---- ended runs -----------------------------------------------------------------------------


def test_an_ended_run_whose_answer_is_owed_is_answered(harness, monkeypatch):
    harness.start(CHAIN)
    harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    real = harness.ports.orchestrator.send_success
    monkeypatch.setattr(harness.ports.orchestrator, "send_success", lambda token, output: False)
    with pytest.raises(end.AnswerNotSent):
        harness.event(harness.batch_job_of("call-second"), "SUCCEEDED", 0)
    assert harness.run().status == RUN_SUCCEEDED and harness.run().answer_due
    assert harness.answer() is None
    monkeypatch.setattr(harness.ports.orchestrator, "send_success", real)
    assert actions(harness.reconcile(later=0)) == ["sent the answer it owed (succeeded)"]
    assert harness.answer() == ("success", {"run_id": harness.run_id, "dir": harness.run().run_dir})
    assert harness.run().answer_due is None
    assert harness.metrics.counts["OwedAnswersSent"] == 1
    assert harness.reconcile().runs == 0  # answered: Step Functions has moved on


# ---- quiet runs -----------------------------------------------------------------------------


def test_a_ready_job_a_dead_invocation_never_claimed_is_picked_up(harness, monkeypatch):
    harness.start(CHAIN)
    dies_once(
        monkeypatch, harness.store, "claim", lambda run_id, job_id, c: job_id == "call-second"
    )
    with pytest.raises(LambdaDied):
        harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    assert harness.job("call-second").pending == 0 and harness.open_jobs() == []
    assert harness.reconcile(later=600).done == []  # not quiet long enough
    report = harness.reconcile()
    assert actions(report) == ["picking up what was left: call-second"]
    assert harness.run().status == RUN_RUNNING
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_run_nothing_will_advance_fails_naming_what_it_waits_for(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.lose(first, "SUCCEEDED", 0)
    # a completion lost its decrement: call-first done, call-second still counting it
    harness.store.update_job(harness.run_id, "call-first", status=DONE, outputs={"y": 6})
    assert harness.reconcile(later=600).done == []
    report = harness.reconcile()
    (done,) = actions(report)
    assert done.startswith("failing: RunStuck: no call is running or ready")
    assert "call-second waits for 1 completion(s) never counted" in done
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["error"] == "RunStuck"
    assert "call-second" in run.error["message"]
    error, cause = harness.answer()[1]
    assert harness.answer()[0] == "failure" and error == "RunStuck"
    assert json.loads(cause)["left"] == run.error["left"]
    assert harness.metrics.counts["StuckRunsFailed"] == 1
    assert harness.files.is_file(run.run_dir + "/error.json")


def test_a_call_whose_batch_job_batch_forgot_fails_the_run(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    first.forgotten = True
    assert harness.reconcile(later=600).done == []  # DescribeJobs may lag behind SubmitJob
    (done,) = actions(harness.reconcile(later=7200))
    assert f"call-first runs as Batch job {first.batch_job_id}, which AWS Batch does not" in done
    assert harness.run().status == RUN_FAILED


def test_a_run_with_a_call_in_batch_is_never_stuck(harness):
    harness.start(CHAIN)
    harness.event(harness.batch_job_of("call-first"), "RUNNING")
    assert harness.reconcile(later=30 * 24 * 3600).done == []
    assert harness.run().status == RUN_RUNNING


# ---- the dead-letter queue ------------------------------------------------------------------


def test_a_dead_lettered_batch_event_is_replayed_and_deleted(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.lose(first, "SUCCEEDED", 0)
    message = harness.dead_letters.put(
        json.dumps(batch_event(first)), ERROR_CODE="SDK_CLIENT_ERROR", ERROR_MESSAGE="throttled"
    )
    report = harness.reconcile(later=0)  # the calls' own replay waits; the letter goes now
    replaying = f"replaying SUCCEEDED of Batch job {first.batch_job_id}"
    assert report.replayed == [f"{message}: Batch Job State Change: {replaying}"]
    assert harness.dead_letters.messages == {}
    assert harness.job("call-first").status == DONE
    assert harness.metrics.counts["DeadLettersReplayed"] == 1
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_dead_lettered_execution_end_stops_the_run(harness):
    harness.start(CHAIN)
    event = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"name": harness.run_id, "status": "ABORTED"},
    }
    harness.dead_letters.put(json.dumps(event), RequestID="r-1", ErrorCode="200")
    report = harness.reconcile(later=0)
    assert len(report.replayed) == 1 and "1 Batch jobs terminated" in report.replayed[0]
    assert harness.run().error["error"] == "RunStopped"
    assert harness.batch_job_of("call-first").terminated


def test_dead_letters_that_cannot_be_replayed_are_kept_and_reported(harness):
    harness.start(CHAIN)
    letters = harness.dead_letters
    junk = letters.put("not json", ErrorCode="200", ErrorMessage="Task timed out")
    drop = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "submit/x.json"}},
    }
    submission = letters.put(json.dumps(drop))
    bad = batch_event(harness.batch_job_of("call-first"))
    bad["detail"]["status"] = "EXPLODED"
    broken = letters.put(json.dumps(bad))
    report = harness.reconcile(later=0)
    assert report.replayed == []
    assert report.kept[0] == (
        f"{junk}: the body is not JSON (dead-lettered after: 200: Task timed out)"
    )
    assert report.kept[1] == (
        f"{submission}: a submission (s3://b/submit/x.json) is not replayed: upload it again"
    )
    assert report.kept[2].startswith(f"{broken}: replay failed: ValidationError")
    assert set(letters.messages) == {junk, submission, broken}  # none lost
    assert harness.metrics.counts["DeadLettersKept"] == 3
    assert harness.reconcile(later=0).kept == []  # hidden until the visibility timeout
    letters.reappear()
    assert len(harness.reconcile(later=0).kept) == 3


def test_a_run_that_cannot_be_reconciled_does_not_stop_the_others(harness, monkeypatch):
    harness.start(CHAIN)
    broken = harness.run_id
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.lose(first, "SUCCEEDED", 0)
    real = harness.store.query_jobs

    def query_jobs(run_id, statuses=None):
        if run_id == broken:
            raise RuntimeError("the store is down")
        return real(run_id, statuses)

    monkeypatch.setattr(harness.store, "query_jobs", query_jobs)
    report = harness.reconcile()
    assert report.runs == 2
    assert report.problems == {broken: "RuntimeError: the store is down"}
    assert harness.job("call-first").status == DONE
