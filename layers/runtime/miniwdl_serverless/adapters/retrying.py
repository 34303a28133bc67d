"""Any port, retried: an adapter's transient failures (throttling, 5xx, conflicts, timeouts)
are retried with backoff; what still fails crosses the port as the port's own exception.

Every port method is safe to call again: store writes are conditional (a retried write whose
first try did land sees its own effect: a claim is re-entrant, a completion answers "done
before" and the caller re-reads), Batch submissions look the deterministic name up first, and
a token answered twice is refused harmlessly.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from miniwdl_serverless.controller.ports import PortError, Throttled, TransientError
from miniwdl_serverless.core.backoff import Backoff

log = logging.getLogger("miniwdl_serverless.retrying")


class Failure(Enum):
    TRANSIENT = "transient"  # retry; then TransientError
    THROTTLED = "throttled"  # retry; then Throttled if every try was refused so
    ERROR = "error"  # the SDK's error, as a PortError


# What an adapter says of an exception: a Failure, or None for exceptions that are not the
# SDK's (the port's own, or a bug) and cross unchanged.
Classify = Callable[[BaseException], Failure | None]


class Retrying:
    """Wraps a port adapter; its methods are called with retries (attributes pass through)."""

    def __init__(
        self,
        target: Any,
        classify: Classify,
        backoff: Backoff = Backoff(),  # noqa: B008 - a frozen value
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._target = target
        self._classify = classify
        self._backoff = backoff
        self._sleep = sleep

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value) or name.startswith("_"):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, value, args, kwargs)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)

    def _call(self, name: str, method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        delays: list[float] = []  # drawn at the first failure (a Random per call costs)
        refused = True  # every try so far throttled: nothing was done
        for attempt in range(self._backoff.attempts):
            try:
                return method(*args, **kwargs)
            except Exception as exn:
                failure = self._classify(exn)
                if failure is None or isinstance(exn, PortError):
                    raise
                if failure is Failure.ERROR:
                    raise PortError(f"{name}: {exn}") from exn
                refused = refused and failure is Failure.THROTTLED
                if attempt == self._backoff.attempts - 1:
                    error = Throttled if refused else TransientError
                    raise error(f"{name}: {exn} (after {attempt + 1} tries)") from exn
                log.warning("%s: transient failure, retrying: %s", name, exn)
                delays = delays or self._backoff.delays()
                self._sleep(delays[attempt])
        raise AssertionError("unreachable")
