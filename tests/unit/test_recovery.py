"""Recovery from a Lambda that died (or could not finish) at the worst moment: the real
controller on in-memory ports, a crash raised from a port method, then the event delivered
again as Lambda's retry of a failed invocation delivers it (a minute later, then two more).
Each ``test_defect_NN`` reproduces one defect of issue 9 (it fails without its fix)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from miniwdl_serverless.adapters.memory import SubmittedJob
from miniwdl_serverless.adapters.stepfunctions import StepFunctionsOrchestrator
from miniwdl_serverless.controller import end, task_call
from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.core.ids import batch_job_name
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    RUN_FAILED,
    RUN_SUCCEEDED,
    RUNNING,
)

from .harness import Harness
from .test_controller import CHAIN as CONTROLLER_CHAIN

LAMBDA_RETRY_SECONDS = 61  # Lambda retries a failed asynchronous invocation after a minute

# the chain of test_controller.py with only maxRetries in the runtime (no preemptible)
CHAIN = CONTROLLER_CHAIN.replace(
    'cpu: 2, memory: "4 GiB", maxRetries: 1, preemptible: 2', "maxRetries: 1"
)


class LambdaDied(BaseException):
    """Stands in for a Lambda killed mid-invocation (timeout, out of memory)."""


class Clock:
    """time.time(), moved on by the test (the store and the controller read it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake


@pytest.fixture
def harness() -> Harness:
    return Harness()


def dies_once(monkeypatch, owner: Any, name: str, when: Any, after: bool = False) -> list:
    """Make ``owner.name`` raise LambdaDied the first time ``when(*args)`` holds: before the
    real call, or ``after`` it returned (``when`` then also gets the result)."""
    real = getattr(owner, name)
    died: list = []

    def method(*args: Any, **kwargs: Any) -> Any:
        if not after and not died and when(*args):
            died.append(args)
            raise LambdaDied()
        result = real(*args, **kwargs)
        if after and not died and when(*args, result):
            died.append(args)
            raise LambdaDied()
        return result

    monkeypatch.setattr(owner, name, method)
    return died


def jobs_named(harness: Harness, name: str) -> list[SubmittedJob]:
    return [j for j in harness.batch.jobs.values() if j.submission.name == name]


def redeliver(harness: Harness, job: SubmittedJob, status: str, exit_code: int | None = 0) -> str:
    harness.ended.discard(job.batch_job_id)
    return harness.event(job, status, exit_code)


# ---- 8: a submitter that died between marking a call running and recording its Batch job ----


def test_defect_08_a_dead_submitter_is_resubmitted_by_lambdas_first_retry(
    harness, clock, monkeypatch
):
    harness.start(CHAIN)
    second = batch_job_name(harness.run_id, "call-second", 0)
    died = dies_once(monkeypatch, harness.batch, "submit", lambda s: s.name == second)
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)
    assert died and harness.job("call-second").status == RUNNING
    assert harness.job("call-second").batch_job_id is None  # no event will ever come for it
    clock.advance(LAMBDA_RETRY_SECONDS)
    assert redeliver(harness, first, "SUCCEEDED") == "resumed"
    assert harness.job("call-second").batch_job_id is not None
    assert len(jobs_named(harness, second)) == 1
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_defect_08_a_retry_whose_submitter_died_is_resumed_by_the_redelivered_failure(
    harness, clock, monkeypatch
):
    harness.start(CHAIN)
    retry = batch_job_name(harness.run_id, "call-first", 1)
    dies_once(monkeypatch, harness.batch, "submit", lambda s: s.name == retry)
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "FAILED", 1)  # maxRetries: 1, so attempt 2 is being submitted
    stuck = harness.job("call-first")
    assert (stuck.status, stuck.attempt, stuck.batch_job_id) == (RUNNING, 1, None)
    clock.advance(LAMBDA_RETRY_SECONDS)
    # the event of attempt 1 is older than the job's attempt, but nothing else will come
    assert redeliver(harness, first, "FAILED", 1) == "resumed submission"
    assert harness.job("call-first").batch_job_id == jobs_named(harness, retry)[0].batch_job_id
    assert len(jobs_named(harness, retry)) == 1
    call_dir = os.path.join(harness.run().run_dir, "call-first")
    assert harness.files.is_dir(os.path.join(call_dir, "work"))  # attempt 1's, where it was
    assert harness.files.is_dir(os.path.join(call_dir, "work2"))  # attempt 2's
    assert harness.files.exists(os.path.join(call_dir, "stdout2.txt"))
    assert harness.files.exists(os.path.join(call_dir, "command"))  # attempt 2's
    assert harness.event(first, "FAILED", 1) == "ignored: stale event"  # now it is stale
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_defect_08_a_batch_job_a_dead_submitter_submitted_is_adopted_at_once(harness, monkeypatch):
    harness.start(CHAIN)
    second = batch_job_name(harness.run_id, "call-second", 0)
    died = dies_once(
        monkeypatch, harness.batch, "submit", lambda s, _: s.name == second, after=True
    )
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)  # died after SubmitJob, before recording it
    assert died and harness.job("call-second").batch_job_id is None
    prepared: list[str] = []
    real_prepare = harness.files.prepare_call
    monkeypatch.setattr(
        harness.files,
        "prepare_call",
        lambda call_dir, *rest: prepared.append(call_dir) or real_prepare(call_dir, *rest),
    )
    # Lambda's retry, the lease may still hold: the job is found by its name, not waited for
    assert redeliver(harness, first, "SUCCEEDED") == "resumed"
    (submitted,) = jobs_named(harness, second)
    assert harness.job("call-second").batch_job_id == submitted.batch_job_id
    assert prepared == []  # its files were not prepared again
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_redelivery_while_the_submit_lease_holds_submits_once(harness, clock, monkeypatch):
    harness.start(CHAIN)
    second = batch_job_name(harness.run_id, "call-second", 0)
    dies_once(monkeypatch, harness.batch, "submit", lambda s: s.name == second)
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)
    assert redeliver(harness, first, "SUCCEEDED") == "resumed"  # a duplicate, right away
    assert len(jobs_named(harness, second)) == 1  # the stream's redelivery of the submission
    clock.advance(LAMBDA_RETRY_SECONDS)
    redeliver(harness, first, "SUCCEEDED")
    assert len(jobs_named(harness, second)) == 1


def test_a_submitter_that_lost_its_lease_writes_and_submits_nothing(harness, clock, monkeypatch):
    """A submitter slower than its lease: a resubmission takes over; the slow one notices
    when it renews its lease before writing the call directory, and leaves it all to it."""
    harness.start(CHAIN)
    second = batch_job_name(harness.run_id, "call-second", 0)
    first = harness.batch_job_of("call-first")
    real_prepare = task_call.prepare
    took_over: list[str] = []

    def slow_prepare(cfg, task, inputs, job_id, *rest):
        if job_id == "call-second" and not took_over:
            took_over.append(job_id)
            clock.advance(LAMBDA_RETRY_SECONDS)  # stuck this long: a redelivery takes over
            assert redeliver(harness, first, "SUCCEEDED") == "resumed"
        return real_prepare(cfg, task, inputs, job_id, *rest)

    monkeypatch.setattr(task_call, "prepare", slow_prepare)
    prepared: list[str] = []
    real_prepare_call = harness.files.prepare_call
    monkeypatch.setattr(
        harness.files,
        "prepare_call",
        lambda call_dir, *rest: prepared.append(call_dir) or real_prepare_call(call_dir, *rest),
    )
    harness.event(first, "SUCCEEDED", 0)
    assert took_over and len(prepared) == 1  # the successor's only
    (submitted,) = jobs_named(harness, second)
    assert harness.job("call-second").batch_job_id == submitted.batch_job_id
    assert submitted.terminated is None
    log = harness.files.read_text(harness.run().run_dir + "/workflow.log")
    assert "call-second attempt 1: another invocation took over its submission" in log
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_defect_08_a_hung_submitter_and_a_resubmission_submit_one_batch_job(
    harness, clock, monkeypatch
):
    """Batch's job list may lag behind a submission, and a submitter may hang in SubmitJob
    past its lease while a redelivery prepares the attempt again: the second submission finds
    the first one's job recorded and submits nothing (a duplicate that did get through is
    terminated: test_submitter.py)."""
    harness.start(CHAIN)
    second = batch_job_name(harness.run_id, "call-second", 0)
    first = harness.batch_job_of("call-first")
    monkeypatch.setattr(harness.batch, "find", lambda name, queue: None)  # not listed yet
    real_submit = harness.batch.submit
    overtaken: list[str] = []

    def slow_submit(submission):
        if submission.name == second and not overtaken:
            overtaken.append(submission.name)
            clock.advance(901)  # hung in SubmitJob past any lease: a redelivery takes over
            redeliver(harness, first, "SUCCEEDED")
        return real_submit(submission)

    monkeypatch.setattr(harness.batch, "submit", slow_submit)
    harness.event(first, "SUCCEEDED", 0)
    assert overtaken
    (submitted,) = jobs_named(harness, second)
    assert harness.job("call-second").batch_job_id == submitted.batch_job_id
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


# ---- 13: a resubmission must not truncate the output of a Batch job that may be running -----


def test_defect_13_a_resubmission_never_truncates_a_running_jobs_output(
    harness, clock, monkeypatch
):
    harness.start(CHAIN)
    second = batch_job_name(harness.run_id, "call-second", 0)
    dies_once(monkeypatch, harness.batch, "submit", lambda s, _: s.name == second, after=True)
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)
    call_dir = os.path.join(harness.run().run_dir, "call-second")
    stdout, stderr = os.path.join(call_dir, "stdout.txt"), os.path.join(call_dir, "stderr.txt")
    harness.files.files[stdout] = "half of the output\n"  # the Batch job is running
    harness.files.files[stderr] = "a warning\n"
    clock.advance(901)  # past any lease
    redeliver(harness, first, "SUCCEEDED")
    assert harness.files.read_text(stdout) == "half of the output\n"
    assert harness.files.read_text(stderr) == "a warning\n"
    (submitted,) = jobs_named(harness, second)
    assert harness.job("call-second").batch_job_id == submitted.batch_job_id
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


# ---- 9: jobs created in an invocation that died -------------------------------------------

AFTER_SLOW = """
version 1.0
workflow w {
  call t as slow { input: x = 1 }
  scatter (i in range(slow.y)) {
    Int a = i + 1
    call t { input: x = a + slow.y }
  }
  output { Array[Int] ys = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_defect_09_a_crash_before_giving_back_a_done_dependencys_count_is_recovered(
    harness, monkeypatch
):
    """The body's call counts its outside dependency (slow) in ``pending``; slow was done
    before the call could register as its waiter, so the count must be given back."""
    harness.start(AFTER_SLOW)
    died = dies_once(
        monkeypatch, harness.store, "register_waiter", lambda *_: not _[-1], after=True
    )
    slow = harness.batch_job_of("call-slow")
    with pytest.raises(LambdaDied):
        harness.event(slow, "SUCCEEDED", 0)
    assert died
    assert redeliver(harness, slow, "SUCCEEDED") == "resumed"
    harness.play()
    assert harness.outputs() == {"w.ys": [6, 8]}


def test_a_redelivery_gives_a_count_back_once(harness, monkeypatch):
    """Died after giving the counts back, before the body's first job (created claimed, as
    ready from the start) completed: a redelivery must evaluate the body and must not give
    the counts back again (call-t would then not wait for decl-a)."""
    harness.start(AFTER_SLOW)
    died = dies_once(
        monkeypatch, harness.store, "complete", lambda job, *_: job.job_id == "decl-a-0"
    )
    slow = harness.batch_job_of("call-slow")
    with pytest.raises(LambdaDied):
        harness.event(slow, "SUCCEEDED", 0)
    assert died and harness.job("call-t-0").pending == 1  # decl-a-0 still to come
    assert redeliver(harness, slow, "SUCCEEDED") == "resumed"
    assert all(j.pending >= 0 for j in harness.store.query_jobs(harness.run_id))
    harness.play()
    assert harness.outputs() == {"w.ys": [6, 8]}
    assert all(j.pending == 0 for j in harness.store.query_jobs(harness.run_id))


SECTION_AFTER_FIRST = """
version 1.0
workflow w {
  call t as first { input: x = 1 }
  scatter (i in range(first.y)) { call t { input: x = i } }
  output { Array[Int] ys = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_defect_09_a_section_body_left_claimed_by_a_crash_is_evaluated_on_redelivery(
    harness, monkeypatch
):
    harness.start(SECTION_AFTER_FIRST)
    died = dies_once(
        monkeypatch, harness.store, "mark_running", lambda run_id, job_id, *_: job_id == "call-t-0"
    )
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)
    # the body runs last first (LIFO): call-t-1 was prepared (its submission not yet handed
    # on: the crash lost it), call-t-0 not
    assert died
    stuck = harness.job("call-t-0")
    assert (stuck.status, stuck.claimed_by) == (CLAIMED, "scatter-L5C3-i")
    assert redeliver(harness, first, "SUCCEEDED") == "resumed"
    assert {harness.job(f"call-t-{i}").status for i in range(2)} == {RUNNING}
    harness.play()
    assert harness.answer() is None  # call-t-1's lease holds: the reconciler's, once it ends
    harness.store.update_job(harness.run_id, "call-t-1", lease_until=0)  # it ran out
    harness.reconcile()
    harness.play()
    assert harness.outputs() == {"w.ys": [0, 2]}


MAIN = """
version 1.0
import "sub.wdl" as sub
workflow main {
  call sub.t as first { input: x = 1 }
  call sub.inner { input: x = first.y }
  output { Int out = inner.out }
}
"""
INNER = """
version 1.0
workflow inner {
  input { Int x }
  Int a = x + 1
  call t { input: x = a }
  output { Int out = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_defect_09_a_sub_workflow_child_left_claimed_by_a_crash_is_evaluated_on_redelivery(
    harness, monkeypatch, tmp_path
):
    """The child call was made ready by another child (decl-a) completed in the invocation
    that died: starting the sub-workflow again must follow decl-a's completion to it."""
    (tmp_path / "main.wdl").write_text(MAIN)
    (tmp_path / "sub.wdl").write_text(INNER)
    harness.start("", workflow=str(tmp_path / "main.wdl"), workflow_source=None)
    died = dies_once(
        monkeypatch,
        harness.store,
        "mark_running",
        lambda run_id, job_id, *_: job_id == "call-inner/call-t",
    )
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)
    assert died and harness.job("call-inner/decl-a").status == DONE
    child = harness.job("call-inner/call-t")
    assert (child.status, child.claimed_by) == (CLAIMED, "call-inner/decl-a")
    assert redeliver(harness, first, "SUCCEEDED") == "resumed"
    assert harness.job("call-inner/call-t").status == RUNNING
    harness.play()
    assert harness.outputs() == {"main.out": 6}


# ---- 10: the run ended, but Step Functions was never told --------------------------------


def test_defect_10_a_crash_before_answering_success_is_answered_by_the_redelivery(
    harness, monkeypatch
):
    harness.start(CHAIN)
    died = dies_once(monkeypatch, harness.ports.orchestrator, "send_success", lambda *_: True)
    with pytest.raises(LambdaDied):
        harness.play()
    assert died and harness.run().status == RUN_SUCCEEDED and harness.answer() is None
    last = harness.batch_job_of("call-second")
    assert redeliver(harness, last, "SUCCEEDED") == "answered: run ended"
    assert harness.answer() == ("success", {"run_id": harness.run_id, "dir": harness.run().run_dir})
    assert harness.run().answer_due is None
    assert redeliver(harness, last, "SUCCEEDED") == "ignored: run not running"


def test_defect_10_an_answer_step_functions_did_not_take_is_sent_again(harness, monkeypatch):
    harness.start(CHAIN)
    real_send = harness.ports.orchestrator.send_failure
    refused: list[str] = []

    def throttled_once(token: str, error: str, cause: str) -> bool:
        if not refused:
            refused.append(error)
            return False  # e.g. ThrottlingException: Step Functions was not told
        return real_send(token, error, cause)

    monkeypatch.setattr(harness.ports.orchestrator, "send_failure", throttled_once)
    first = harness.batch_job_of("call-first")
    harness.event(first, "FAILED", 1)  # retried
    retry = harness.batch_job_of("call-first")
    # the invocation fails, so that Lambda delivers its event again
    with pytest.raises(end.AnswerNotSent):
        harness.event(retry, "FAILED", 1)
    assert refused and harness.run().status == RUN_FAILED and harness.answer() is None
    assert redeliver(harness, retry, "FAILED", 1) == "answered: run ended"
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure" and answer[1][0] == "CommandFailed"
    assert "call-first" in answer[1][1]


PAIR = """
version 1.0
workflow pair {
  call t as a { input: x = 1 }
  call t as b { input: x = 2 }
  output { Int y = a.y + b.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_defect_10_a_crash_while_failing_the_run_is_finished_by_the_redelivery(
    harness, monkeypatch
):
    """Died after the run was set failed, while terminating its other jobs: the redelivery
    terminates them and tells Step Functions."""
    harness.start(PAIR)
    a, b = harness.batch_job_of("call-a"), harness.batch_job_of("call-b")
    died = dies_once(monkeypatch, harness.ports.batch, "terminate", lambda *_: True)
    with pytest.raises(LambdaDied):
        harness.event(a, "FAILED", 1)
    assert died and harness.run().status == RUN_FAILED and harness.answer() is None
    assert b.terminated is None
    assert redeliver(harness, a, "FAILED", 1) == "answered: run ended"
    assert b.terminated is not None
    assert harness.answer()[0] == "failure"


def test_defect_10_a_retried_start_sends_the_answer_a_crash_left_owed(harness, monkeypatch):
    died = dies_once(monkeypatch, harness.ports.orchestrator, "send_success", lambda *_: True)
    source = "version 1.0\nworkflow w { Int x = 1\n output { Int y = x } }"
    with pytest.raises(LambdaDied):
        harness.start(source)  # no calls: the run ends in the start Lambda
    assert died and harness.run().status == RUN_SUCCEEDED and harness.answer() is None
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{harness.run_id}"
    again = start_run({}, harness.token, arn, None, harness.ports)
    harness.work.drain()
    assert again == {"run_id": harness.run_id, "resumed": True}
    assert harness.answer() == ("success", {"run_id": harness.run_id, "dir": harness.run().run_dir})


class Client:
    """A Step Functions client whose SendTaskSuccess/SendTaskFailure raise ``code``."""

    def __init__(self, code: str | None):
        self.code = code

    def _answer(self, **_: Any) -> None:
        if self.code:
            error = {"Error": {"Code": self.code, "Message": self.code}}
            raise ClientError(error, "SendTaskSuccess")  # type: ignore[arg-type]

    send_task_success = send_task_failure = _answer


@pytest.mark.parametrize(
    "code, sent",
    [
        (None, True),
        ("TaskTimedOut", True),  # a used token ("Provided task does not exist anymore")
        ("TaskDoesNotExist", True),
        ("InvalidToken", True),
        ("ThrottlingException", False),
        ("ServiceUnavailable", False),
    ],
)
def test_defect_10_step_functions_tells_a_used_token_from_an_answer_not_taken(code, sent):
    orchestrator = StepFunctionsOrchestrator(Client(code))
    assert orchestrator.send_success("token", {"run_id": "r"}) is sent
    assert orchestrator.send_failure("token", "RunFailed", "{}") is sent


# ---- a retried Start: Step Functions retries it with a new task token --------------------------

SCATTER = """
version 1.0
workflow w {
  scatter (i in [1, 2]) { call t { input: i = i } }
  output { Array[Int] out = t.out }
}
task t { input { Int i } command <<< true >>> output { Int out = i * 10 } }
"""


def retry_start(harness: Harness, token: str | None = None, source: str | None = None) -> dict:
    """Step Functions' Retry of the Start state: the same input, a new token (or the same)."""
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{harness.run_id}"
    execution_input = {"workflow_source": source, "dir": harness.root} if source else {}
    started_at = "2026-12-01T10:00:00Z" if source else None
    started = start_run(execution_input, token or harness.token, arn, started_at, harness.ports)
    harness.work.drain()  # the work table's stream: the submitter
    return started


def test_a_start_that_died_after_planning_is_finished_by_its_retry_which_gets_the_answer(
    harness, monkeypatch
):
    from miniwdl_serverless.controller.ports import Throttled, TransientError

    real_submit = harness.batch.submit
    calls: list[str] = []

    def throttled_once(submission: Any) -> str:
        calls.append(submission.name)
        if len(calls) == 1:
            raise Throttled("SubmitJob: TooManyRequestsException (retries ran out)")
        return real_submit(submission)

    monkeypatch.setattr(harness.batch, "submit", throttled_once)
    with pytest.raises(TransientError):  # the Start Lambda fails; its state retries it
        harness.start(SCATTER)
    assert harness.run().status == "running"
    retried = retry_start(harness, "token-second-attempt")
    assert retried["resumed"] and len(harness.batch.jobs) == 2  # each shard submitted once
    harness.play()
    assert harness.orchestrator.answers["token-second-attempt"] == (
        "success",
        {"run_id": harness.run_id, "dir": harness.run().run_dir},
    )
    assert harness.answer() is None  # the first attempt's token is gone with its attempt


def test_a_retried_start_of_an_ended_run_answers_the_new_token(harness):
    harness.start(SCATTER)
    harness.play()
    assert harness.answer() is not None
    assert retry_start(harness, "token-late-retry") == {"run_id": harness.run_id, "resumed": True}
    assert harness.orchestrator.answers["token-late-retry"][0] == "success"


def test_the_end_answers_a_token_a_retried_start_took_after_the_event_loaded_the_run(
    harness, monkeypatch
):
    harness.start(SCATTER)
    real = harness.store.set_run_status

    def retry_lands_first(run_id: str, status: str, expected: Any, **fields: Any) -> bool:
        if status == RUN_SUCCEEDED:  # the advance loaded the run (old token) before this
            real(run_id, "running", ["running"], task_token="token-retry")
        return real(run_id, status, expected, **fields)

    monkeypatch.setattr(harness.store, "set_run_status", retry_lands_first)
    harness.play()
    assert harness.orchestrator.answers["token-retry"][0] == "success"


# ---- found by the chaos harness (tests/chaos) ---------------------------------------------


def test_chaos_a_retried_start_submits_what_a_start_that_died_left_unsubmitted(
    harness, monkeypatch
):
    """Died right after the run went running, before its first jobs existed: the retried
    Start used to answer "resumed" and nothing would ever submit them."""
    died = dies_once(
        monkeypatch,
        harness.store,
        "set_run_status",
        lambda run_id, status, *_: status == "running",
        after=True,
    )
    with pytest.raises(LambdaDied):
        harness.start(CHAIN)
    assert died and harness.batch.jobs == {}
    assert retry_start(harness, source=CHAIN) == {"run_id": harness.run_id, "resumed": True}
    assert len(jobs_named(harness, batch_job_name(harness.run_id, "call-first", 0))) == 1
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_chaos_a_retried_start_resubmits_a_first_job_once_its_lease_ran_out(
    harness, clock, monkeypatch
):
    """The submitter died in SubmitJob, before it went through: the work table's stream
    delivers the item again, and the retried Start finds the call running (its item's)."""
    monkeypatch.setattr(time, "sleep", clock.advance)
    died = dies_once(monkeypatch, harness.batch, "submit", lambda *_: True)
    with pytest.raises(LambdaDied):
        harness.start(CHAIN)
    assert died and harness.job("call-first").status == RUNNING
    clock.advance(2)  # the Start state's Retry: IntervalSeconds 2
    retry_start(harness, source=CHAIN)
    (submitted,) = jobs_named(harness, batch_job_name(harness.run_id, "call-first", 0))
    assert harness.job("call-first").batch_job_id == submitted.batch_job_id
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_chaos_a_crash_after_failing_the_job_still_fails_the_run(harness, monkeypatch):
    """Died after the job was recorded failed, before the run was: the redelivered event
    used to be "stale" (the job is no longer running) and the run never ended."""
    harness.start(PAIR)
    a = harness.batch_job_of("call-a")
    died = dies_once(monkeypatch, harness.store, "fail_job", lambda *_: True, after=True)
    with pytest.raises(LambdaDied):
        harness.event(a, "FAILED", 1)
    assert died and harness.run().status == "running"
    assert redeliver(harness, a, "FAILED", 1) == "failed: resumed"
    assert harness.run().status == RUN_FAILED
    assert harness.batch_job_of("call-b").terminated is not None
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure" and "call-a" in answer[1][1]
