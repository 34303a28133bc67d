"""Transient failures at the ports are retried with backoff; what outlasts the retries fails
the invocation (AWS delivers the event again), never the run (issue 9, defect 12)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pynamodb.exceptions import (
    CancellationReason,
    TransactWriteError,
    UpdateError,
    VerboseClientError,
)

from miniwdl_serverless.adapters import aws_errors
from miniwdl_serverless.adapters.retrying import Failure, Retrying
from miniwdl_serverless.controller.ports import MissingJob, PortError, TransientError
from miniwdl_serverless.core.backoff import Backoff
from miniwdl_serverless.core.records import RUN_RUNNING, RUN_SUCCEEDED

from .harness import Harness
from .test_controller import SCATTER


def client_error(code: str, status: int = 400, operation: str = "Op") -> ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def conflict() -> TransactWriteError:
    """What DynamoDB answers when shards' completions meet on the gather's item."""
    reasons = [None, CancellationReason(code="TransactionConflict", message="conflict")]
    response = {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}
    cause = VerboseClientError(response, "TransactWriteItems", cancellation_reasons=reasons)
    return TransactWriteError("transaction cancelled", cause=cause)


@pytest.mark.parametrize(
    "exn, expected",
    [
        (conflict(), Failure.TRANSIENT),
        (
            UpdateError("throttled", cause=client_error("ProvisionedThroughputExceededException")),
            Failure.TRANSIENT,
        ),
        (client_error("ThrottlingException"), Failure.THROTTLED),
        (client_error("TooManyRequestsException", 429), Failure.THROTTLED),
        (client_error("ServerException", 500), Failure.TRANSIENT),
        (client_error("Whatever", 503), Failure.TRANSIENT),
        (EndpointConnectionError(endpoint_url="https://batch"), Failure.TRANSIENT),
        (client_error("AccessDeniedException", 403), Failure.ERROR),
        (client_error("ClientException", 400), Failure.ERROR),
        (UpdateError("bad", cause=client_error("ValidationException")), Failure.ERROR),
        (MissingJob("a planning bug"), None),
        (ValueError("a bug"), None),
    ],
)
def test_which_aws_errors_are_transient(exn: BaseException, expected: Failure | None) -> None:
    assert aws_errors.classify(exn) is expected


class Faulty:
    """A port adapter that raises the given exceptions on its first calls of one method."""

    def __init__(self, target: Any, method: str, faults: list[BaseException]):
        self._target, self._method, self._faults = target, method, list(faults)
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name != self._method:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self._faults:
                raise self._faults.pop(0)
            return value(*args, **kwargs)

        return call


def no_sleep(_seconds: float) -> None:
    pass


def resilient(target: Any, attempts: int = 4) -> Retrying:
    return Retrying(target, aws_errors.classify, Backoff(attempts=attempts), sleep=no_sleep)


def with_faults(
    harness: Harness, port: str, method: str, faults: list[BaseException], attempts: int = 4
) -> Faulty:
    # Batch and Step Functions are the submitter's (the controller's ports hand calls on)
    owner: Any = harness if port in ("batch", "orchestrator") else harness.ports
    faulty = Faulty(getattr(owner, port), method, faults)
    setattr(owner, port, resilient(faulty, attempts))
    return faulty


def test_backoff_is_exponential_with_full_jitter() -> None:
    delays = Backoff(attempts=6, base_seconds=0.1, cap_seconds=1.0).delays(random.Random(7))
    assert len(delays) == 5
    assert all(0 <= d <= bound for d, bound in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0], strict=True))


def test_defect_12_a_transaction_conflict_on_the_gather_is_retried() -> None:
    harness = Harness()
    faulty = with_faults(harness, "store", "complete", [conflict(), conflict()])
    harness.start(SCATTER)
    harness.play()
    assert harness.run().status == RUN_SUCCEEDED
    assert harness.outputs() == {"fan.out": [0, 1, 2]}
    assert faulty.calls > 2  # the conflicts happened, and were retried


def test_defect_12_throttled_batch_submissions_are_retried() -> None:
    harness = Harness()
    throttled = [client_error("TooManyRequestsException", 429) for _ in range(3)]
    with_faults(harness, "batch", "submit", throttled)
    harness.start(SCATTER)
    assert len(harness.batch.jobs) == 3  # each submitted once, the throttling absorbed
    harness.play()
    assert harness.outputs() == {"fan.out": [0, 1, 2]}


def test_defect_12_a_failure_that_outlasts_the_retries_fails_the_invocation_not_the_run() -> None:
    harness = Harness()
    harness.start(SCATTER)
    store = harness.ports.store
    with_faults(harness, "store", "complete", [conflict() for _ in range(4)], attempts=4)
    job = harness.batch_job_of("call-work-0")
    with pytest.raises(TransientError):
        harness.event(job, "SUCCEEDED", 0)
    assert harness.run().status == RUN_RUNNING and harness.answer() is None
    harness.ports.store = store  # the conflict is over: EventBridge delivers the event again
    harness.ended.discard(job.batch_job_id)
    harness.play()
    assert harness.outputs() == {"fan.out": [0, 1, 2]}


def test_other_sdk_errors_cross_the_port_as_port_errors() -> None:
    harness = Harness()
    denied: list[BaseException] = [client_error("AccessDeniedException", 403)]
    with_faults(harness, "batch", "submit", denied)
    harness.start(SCATTER)
    run = harness.run()
    assert run.status == "failed" and "AccessDeniedException" in run.error["message"]


def test_the_wrapper_passes_attributes_through() -> None:
    class Target:
        limit = 3

        def double(self, x: int) -> int:
            return 2 * x

    wrapped = resilient(Target())
    assert wrapped.limit == 3 and wrapped.double(4) == 8
    wrapped.limit = 5
    assert wrapped._target.limit == 5
    calls: list[Callable[..., Any]] = []
    assert not calls
    with pytest.raises(PortError):
        Retrying(Target(), lambda _e: Failure.ERROR)._call("x", _raises, (), {})


def _raises() -> None:
    raise RuntimeError("an SDK error")
