"""DynamoDB's transaction conflicts, injected at the RunStore port (moto never produces them).

DynamoDB cancels a ``TransactWriteItems`` with ``TransactionConflict`` when one of its items is
part of another transaction still in progress, and refuses a plain ``UpdateItem`` of such an
item with ``TransactionConflictException``. ``Conflicting`` wraps a store and applies that rule
to the writes the controller's completion path makes, by the items each adapter call writes
(as ``adapters/dynamodb.py`` makes them): a call stays "in progress" for ``hold`` seconds plus
its own duration, so calls from threads that run at the same time overlap as on AWS. Wrap it in
``adapters/retrying.py:Retrying`` as ``handlers/wiring.py`` wraps the real store.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from miniwdl_serverless.core.records import Job
from miniwdl_serverless.core.store_rules import tally_item_id
from tests.chaos.faults import _conflict

# method → (whether the adapter writes in a transaction, the items it writes)
Writes = Callable[..., tuple[bool, set[str]]]


def _complete(job: Job, *_args: Any, **_kwargs: Any) -> tuple[bool, set[str]]:
    targets = job.targets()
    return bool(targets), {job.job_id, *targets}  # no target: one UpdateItem of the job


def _tally_shard(job: Job, *_args: Any) -> tuple[bool, set[str]]:
    assert job.tally is not None
    return False, {tally_item_id(job.tally["gather"], int(job.tally["bucket"]))}


def _tally_bucket(job: Job) -> tuple[bool, set[str]]:
    assert job.tally is not None
    return False, {job.tally["gather"]}


def _claim(_run_id: str, job_id: str, *_args: Any) -> tuple[bool, set[str]]:
    return False, {job_id}


WRITES: dict[str, Writes] = {
    "complete": _complete,
    "tally_shard": _tally_shard,
    "tally_bucket": _tally_bucket,
    "claim": _claim,
}


def _plain_conflict() -> UpdateError:
    response = {
        "Error": {"Code": "TransactionConflictException", "Message": "in a transaction"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return UpdateError("conflict", cause=ClientError(response, "UpdateItem"))  # type: ignore[arg-type]


class Conflicting:
    """A store whose completion-path writes meet DynamoDB's transaction conflicts."""

    def __init__(self, store: Any, hold: float = 0.002) -> None:
        self._store, self._hold = store, hold
        self._lock = threading.Lock()
        self._in_transactions: Counter[str] = Counter()  # item → transactions in progress
        self.conflicts: Counter[str] = Counter()  # by method
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name not in WRITES:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            transactional, items = WRITES[name](*args, **kwargs)
            self._begin(name, transactional, items)
            try:
                time.sleep(self._hold)
                return value(*args, **kwargs)
            finally:
                self._end(transactional, items)

        return call

    def _begin(self, name: str, transactional: bool, items: set[str]) -> None:
        with self._lock:
            self.calls[name] += 1
            if any(self._in_transactions[item] for item in items):
                self.conflicts[name] += 1
                raise _conflict() if transactional else _plain_conflict()
            if transactional:
                self._in_transactions.update(items)

    def _end(self, transactional: bool, items: set[str]) -> None:
        if transactional:
            with self._lock:
                self._in_transactions.subtract(items)
