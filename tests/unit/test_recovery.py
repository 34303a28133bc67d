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
    RUN_FAILED,
    RUN_SUCCEEDED,
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
