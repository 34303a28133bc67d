"""Recovery from a Lambda that died (or could not finish) at the worst moment: the real
controller on in-memory ports, a crash raised from a port method, then the event delivered
again as Lambda's retry of a failed invocation delivers it (a minute later, then two more).
Each ``test_defect_NN`` reproduces one defect of issue 9 (it fails without its fix)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from miniwdl_serverless.adapters.memory import SubmittedJob
from miniwdl_serverless.adapters.stepfunctions import StepFunctionsOrchestrator
from miniwdl_serverless.controller import end
from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    RUN_FAILED,
    RUN_SUCCEEDED,
    RUNNING,
)

from .harness import Harness

CHAIN = """
version 1.0
workflow chain {
  input { Int x = 3 }
  call double as first { input: x = x }
  call double as second { input: x = first.y }
  output { Int result = second.y }
}
task double {
  input { Int x }
  command {}
  output { Int y = x * 2 }
  runtime { maxRetries: 1 }
}
"""


class LambdaDied(BaseException):
    """Stands in for a Lambda killed mid-invocation (timeout, out of memory)."""


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


def redeliver(harness: Harness, job: SubmittedJob, status: str, exit_code: int | None = 0) -> str:
    harness.ended.discard(job.batch_job_id)
    return harness.event(job, status, exit_code)


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
    """Died after giving the counts back, before claiming: a redelivery must claim the body
    and must not give the counts back again (call-t would then not wait for decl-a)."""
    harness.start(AFTER_SLOW)
    died = dies_once(
        monkeypatch, harness.store, "claim", lambda run_id, job_id, _: job_id == "decl-a-0"
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
    assert died  # the body runs last first (LIFO): call-t-1 was submitted, call-t-0 not
    stuck = harness.job("call-t-0")
    assert (stuck.status, stuck.claimed_by) == (CLAIMED, "scatter-L5C3-i")
    assert redeliver(harness, first, "SUCCEEDED") == "resumed"
    assert {harness.job(f"call-t-{i}").status for i in range(2)} == {RUNNING}
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
    died = dies_once(monkeypatch, harness.orchestrator, "send_success", lambda *_: True)
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
    real_send = harness.orchestrator.send_failure
    refused: list[str] = []

    def throttled_once(token: str, error: str, cause: str) -> bool:
        if not refused:
            refused.append(error)
            return False  # e.g. ThrottlingException: Step Functions was not told
        return real_send(token, error, cause)

    monkeypatch.setattr(harness.orchestrator, "send_failure", throttled_once)
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
    died = dies_once(monkeypatch, harness.batch, "terminate", lambda *_: True)
    with pytest.raises(LambdaDied):
        harness.event(a, "FAILED", 1)
    assert died and harness.run().status == RUN_FAILED and harness.answer() is None
    assert b.terminated is None
    assert redeliver(harness, a, "FAILED", 1) == "answered: run ended"
    assert b.terminated is not None
    assert harness.answer()[0] == "failure"


def test_defect_10_a_retried_start_sends_the_answer_a_crash_left_owed(harness, monkeypatch):
    died = dies_once(monkeypatch, harness.orchestrator, "send_success", lambda *_: True)
    source = "version 1.0\nworkflow w { Int x = 1\n output { Int y = x } }"
    with pytest.raises(LambdaDied):
        harness.start(source)  # no calls: the run ends in the start Lambda
    assert died and harness.run().status == RUN_SUCCEEDED and harness.answer() is None
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{harness.run_id}"
    again = start_run({}, harness.token, arn, None, harness.ports)
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
