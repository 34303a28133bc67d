"""Numbers every store adapter shares (so the in-memory and DynamoDB stores cannot drift)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TRANSACTION_LIMIT = 100  # DynamoDB TransactWriteItems: at most 100 actions
FINISHED_RUN_TTL_SECONDS = 90 * 24 * 3600
# A submitter's lease on an attempt it is preparing: shorter than the minute Lambda waits
# before retrying a failed asynchronous invocation, so the retry of a dead submitter's event
# finds the lease run out; a live submitter renews it (conditionally) before it writes the
# call directory and before it submits, once less than LEASE_MARGIN_SECONDS is left.
SUBMIT_LEASE_SECONDS = 45
LEASE_MARGIN_SECONDS = 30
FINISH_MARGIN_SECONDS = 900  # a run that timed out is ended by Finish, one Lambda invocation


def job_expiry(created_at: float, timeout_seconds: int) -> int:
    """When a job item may be deleted (the jobs table's TTL attribute, ``expires_at``), set
    once when the job is created: its run ends by the run's timeout (and the Finish state that
    records it), and the run's item goes FINISHED_RUN_TTL_SECONDS after that, so its jobs stay
    at least as long. Ending a run writes none of its jobs, however many it has."""
    return int(created_at) + timeout_seconds + FINISH_MARGIN_SECONDS + FINISHED_RUN_TTL_SECONDS


def ended_fields(now: float) -> dict[str, float | int]:
    """What a run gets when it ends: when, and when its item may go (the runs table's TTL)."""
    return {"finished_at": now, "expires_at": int(now) + FINISHED_RUN_TTL_SECONDS}


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
