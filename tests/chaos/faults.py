"""What the chaos world injects at the ports: a crash right after a write, an invocation
killed mid-way (a handler timeout), and the AWS errors a retry may cure (throttling, 5xx,
TransactionConflict), raised below ``adapters/retrying.py:Retrying`` as production wires it
(``handlers/wiring.py``)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import (
    CancellationReason,
    TransactWriteError,
    UpdateError,
    VerboseClientError,
)

from tests.chaos.points import is_write


class LambdaDied(BaseException):
    """The Lambda was killed mid-invocation (timeout, out of memory): no handler catches it."""


class Clock:
    """``time.time()`` for the whole world, moved on by the world (and by each port call's
    latency), never by the wall clock: leases and Lambda's retry delays are deterministic."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@contextmanager
def frozen_time(clock: Clock) -> Iterator[None]:
    """time.time() is the clock's; time.sleep() moves it on."""
    real, real_sleep = time.time, time.sleep
    time.time, time.sleep = clock, clock.advance  # type: ignore[assignment]
    try:
        yield
    finally:
        time.time, time.sleep = real, real_sleep  # type: ignore[assignment]


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Chaos")  # type: ignore[arg-type]


def _conflict() -> TransactWriteError:
    reasons = [None, CancellationReason(code="TransactionConflict", message="conflict")]
    response = {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}
    cause = VerboseClientError(response, "TransactWriteItems", cancellation_reasons=reasons)
    return TransactWriteError("transaction cancelled", cause=cause)


def transient_error(port: str, method: str, rng: random.Random) -> Exception:
    """An SDK error ``adapters/aws_errors.py:classify`` calls transient, as that port's
    service raises it."""
    if port == "store":
        if method == "complete" and rng.random() < 0.5:
            return _conflict()
        shapes = [
            lambda: UpdateError("throttled", cause=_client_error("ThrottlingException", 400)),
            lambda: _client_error("ProvisionedThroughputExceededException", 400),
            lambda: _client_error("InternalServerError", 500),
        ]
    else:
        shapes = [
            lambda: _client_error("TooManyRequestsException", 429),
            lambda: _client_error("ServerException", 500),
            lambda: _client_error("Whatever", 503),
        ]
    return rng.choice(shapes)()


@dataclass
class Faults:
    """One world's fault plan and what it saw (shared by every port's proxy)."""

    crash_after: tuple[str, str, int] | None = None  # (port, method, occurrence from 1)
    kill_at: int | None = None  # kill the invocation at this port call (from 1)
    transient: float = 0.0  # chance that a store, Batch or Step Functions call fails first
    latency: float = 0.0  # seconds each port call takes (moves the clock)
    seed: int = 0
    writes: list[tuple[str, str]] = field(default_factory=list)  # in order, as they landed
    calls: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: Any = field(default_factory=threading.RLock)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _note(self, what: str) -> None:
        self.injected[what] = self.injected.get(what, 0) + 1

    def before(self, port: str, method: str, clock: Clock) -> Exception | None:
        """Called before a port call: dies, returns an error to raise, or None."""
        with self._lock:
            self.calls += 1
            clock.advance(self.latency)
            if self.kill_at is not None and self.calls == self.kill_at:
                self._note("timeout")
                raise LambdaDied(f"killed at call {self.calls}: {port}.{method}")
            if port in ("store", "batch", "orchestrator") and self._rng.random() < self.transient:
                self._note("transient")
                return transient_error(port, method, self._rng)
            return None

    def after(self, port: str, method: str) -> None:
        """Called after a port call returned: records a write, dies right after the chosen one."""
        if not is_write(port, method):
            return
        with self._lock:
            self.writes.append((port, method))
            count = self._seen[(port, method)] = self._seen.get((port, method), 0) + 1
            if self.crash_after == (port, method, count):
                self._note("crash")
                raise LambdaDied(f"died after {port}.{method} #{count}")


class Faulty:
    """A port adapter seen through the fault plan: every method call passes ``before`` and
    ``after``; other attributes pass through. The orchestrator's transient failure is its
    adapter's own answer to throttling: False (not sent)."""

    def __init__(self, target: Any, port: str, faults: Faults, clock: Clock) -> None:
        self._target, self._port, self._faults, self._clock = target, port, faults, clock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or not callable(value):
            return value
        return self._wrap(name, value)

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            error = self._faults.before(self._port, name, self._clock)
            if error is not None:
                if self._port == "orchestrator":
                    return False
                raise error
            result = method(*args, **kwargs)
            self._faults.after(self._port, name)
            return result

        return call
