"""Numbers every store adapter shares (so the in-memory and DynamoDB stores cannot drift)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
# A scatter's shards are counted into their gather in buckets of this many consecutive
# indices (docs/architecture.md, "the gather's tally"): a shard's completion adds its index to
# its bucket's set (an idempotent ADD, no transaction), and a full bucket is counted into the
# gather once (a conditional ADD). A bucket's item stays under 1 KB (one write unit) and the
# gather's set of counted buckets under ~1.5 KB at the widest scatter (100,000 shards).
TALLY_BUCKET = 200


def shard_tally(gather_id: str, index: int, count: int) -> dict[str, Any]:
    """Where shard ``index`` of ``count`` is counted: ``{"gather", "index", "bucket", "size"}``
    (``size``: how many shards its bucket holds, the last one fewer)."""
    bucket = index // TALLY_BUCKET
    size = min(TALLY_BUCKET, count - bucket * TALLY_BUCKET)
    return {"gather": gather_id, "index": index, "bucket": bucket, "size": size}


TALLY_PREFIX = "#tally/"
# The run's counters a shard adds to its bucket instead of the run item (one write a shard)
BUCKET_COUNTERS = ("jobs_done", "calls_succeeded", "calls_cached")


def tally_item_id(gather_id: str, bucket: int) -> str:
    """The jobs-table sort key of a gather's bucket: ``#`` sorts before any job id (none
    begins with it), so no job-id prefix range reads it; the item has no ``status``, so the
    store's reads treat it as no job, as they do a stub."""
    return f"{TALLY_PREFIX}{gather_id}/{bucket}"


def bucket_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """The part of a shard's counters its bucket keeps (the rest go to the run item)."""
    return {name: n for name, n in counts.items() if name in BUCKET_COUNTERS and n}


def completion_counts(job: Any) -> dict[str, int]:
    """The counters a done job's completion adds, told from the job as stored (for a
    completion resumed after a crash, which no longer knows what the first try counted): a
    call that took an earlier call's outputs is cached, one that was submitted succeeded."""
    if job.cached_from:
        return {"jobs_done": 1, "calls_cached": 1}
    if job.batch_job_name:
        return {"jobs_done": 1, "calls_succeeded": 1}
    return {"jobs_done": 1}


def run_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """The part of a shard's counters its bucket cannot keep."""
    return {name: n for name, n in counts.items() if name not in BUCKET_COUNTERS and n}


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
