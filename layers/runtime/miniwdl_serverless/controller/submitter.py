"""The paced submitter: every Batch job of every run is submitted here, from the submissions
the other functions put in the work table, at no more than the account-wide rate.

It holds no files and runs outside the VPC. For a call's attempt it takes the lease the
preparing invocation left on it (so a resubmission that took over meanwhile wins, and a
redelivered item submits nothing twice), submits, and records the Batch job id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from miniwdl_serverless.controller.ports import (
    BatchJobs,
    CacheStore,
    Metrics,
    RunStore,
    Throttled,
    TransientError,
    WorkQueue,
)
from miniwdl_serverless.core.decisions import submit_lease
from miniwdl_serverless.core.errors import describe_exception
from miniwdl_serverless.core.localizing import JOB_LEASE_SECONDS
from miniwdl_serverless.core.work import (
    Pacer,
    QueuedSubmission,
    WorkItem,
    queued_submission,
    refused_item,
)

log = logging.getLogger("miniwdl_serverless.submitter")

RESERVE_SECONDS = 10.0  # stop taking items this long before the invocation's deadline


@dataclass
class SubmitterPorts:
    store: RunStore
    batch: BatchJobs
    metrics: Metrics
    work: WorkQueue  # where a refused submission goes (the work function fails its attempt)
    cache: CacheStore | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    outcomes: list[str] = field(default_factory=list)  # what each item led to (logs, tests)


def submit_queued(
    items: list[WorkItem],
    ports: SubmitterPorts,
    pacer: Pacer,
    remaining_seconds: Callable[[], float],
) -> list[str]:
    """Submit each item's Batch job in order, paced; returns the keys of the items left for
    the stream to deliver again (out of time, or a transient failure from here on)."""
    for index, item in enumerate(items):
        if remaining_seconds() < RESERVE_SECONDS:
            return [i.key for i in items[index:]]
        queued = queued_submission(item)
        try:
            outcome = _submit_one(queued, ports, pacer)
        except TransientError:
            log.warning("submitting %s failed; handed back", queued.submission.name, exc_info=True)
            return [i.key for i in items[index:]]
        except Refusal as refusal:  # the attempt failed: its retries, or the run, decide
            log.warning("Batch refused %s: %s", queued.submission.name, refusal)
            ports.work.put([refused_item(item, str(refusal))])
            outcome = "refused"
        ports.outcomes.append(outcome)
        log.info("queued submission handled", extra={"job": queued.job_id, "outcome": outcome})
    return []


class Refusal(Exception):
    """Batch refused the submission (any error but a transient one)."""


def _submit_one(queued: QueuedSubmission, ports: SubmitterPorts, pacer: Pacer) -> str:
    if queued.entry is not None:
        return _submit_download(queued, ports, pacer)
    assert queued.job_id is not None
    store, run_id, job_id, attempt = ports.store, queued.run_id, queued.job_id, queued.attempt
    _pace(ports, pacer)
    until = submit_lease(time.time())  # as long as a preparing invocation's: SubmitJob's
    if not store.renew_lease(run_id, job_id, attempt, queued.lease, until):
        return "taken"  # submitted already, or a resubmission took the attempt over
    try:
        batch_job_id = _submit(queued, ports)
    except Throttled:  # refused, nothing submitted: the item's redelivery takes it again
        store.renew_lease(run_id, job_id, attempt, until, queued.lease)
        raise
    except TransientError:
        # it may have gone through: the reconciler resubmits at once, looking it up by name
        store.renew_lease(run_id, job_id, attempt, until, 0.0)
        raise
    if not store.record_batch_job(run_id, job_id, attempt, batch_job_id):
        current = store.get_job(run_id, job_id)
        if current is None or current.batch_job_id != batch_job_id:
            ports.batch.terminate(batch_job_id, "miniwdl-serverless: duplicate submission")
        return "duplicate"
    store.count(run_id, calls_submitted=1)
    ports.metrics.count("TasksSubmitted")
    return "submitted"


def _submit_download(queued: QueuedSubmission, ports: SubmitterPorts, pacer: Pacer) -> str:
    """A download job: submitted while its claimant still holds the entry, and named on it (a
    lost end is looked up by that id)."""
    cache, key, claimant = ports.cache, queued.entry, queued.claimant
    assert cache is not None and key is not None and claimant is not None
    entry = cache.get_entry(key)
    if entry is None or entry.status != "downloading" or entry.claimant != claimant:
        return "taken"
    if entry.data.get("batch_job_id"):
        return "submitted before"
    _pace(ports, pacer)
    batch_job_id = _submit(queued, ports)
    now = time.time()
    recorded = {**queued.entry_data, "batch_job_id": batch_job_id}
    cache.claim_entry(key, claimant, now + JOB_LEASE_SECONDS, now, None, recorded)
    ports.metrics.count("DownloadJobsSubmitted")
    return "submitted"


def _pace(ports: SubmitterPorts, pacer: Pacer) -> None:
    wait = pacer.delay(ports.clock())
    if wait > 0:
        ports.sleep(wait)


def _submit(queued: QueuedSubmission, ports: SubmitterPorts) -> str:
    try:
        return ports.batch.submit(queued.submission)
    except TransientError:
        raise
    except Exception as exn:
        raise Refusal(describe_exception(exn)["message"]) from exn
