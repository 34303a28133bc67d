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
from miniwdl_serverless.core.records import RUN_RUNNING
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
    the stream to deliver again (out of time, or a transient failure from here on). A run that
    ended gets nothing more, and what this batch submitted for a run that ended meanwhile is
    terminated (its run read once before and once after)."""
    batch = _Batch(ports)
    try:
        for index, item in enumerate(items):
            if remaining_seconds() < RESERVE_SECONDS:
                return [i.key for i in items[index:]]
            if not _handle(item, ports, pacer, batch):
                return [i.key for i in items[index:]]
        return []
    finally:
        batch.stop_what_ended()


@dataclass
class _Batch:
    """The runs one stream batch submits for: whether each still runs, what was submitted."""

    ports: SubmitterPorts
    running: dict[str, bool] = field(default_factory=dict)
    submitted: dict[str, list[str]] = field(default_factory=dict)

    def runs(self, run_id: str) -> bool:
        if run_id not in self.running:
            run = self.ports.store.get_run(run_id)
            self.running[run_id] = run is not None and run.status == RUN_RUNNING
        return self.running[run_id]

    def stop_what_ended(self) -> None:
        for run_id, batch_job_ids in self.submitted.items():
            run = self.ports.store.get_run(run_id)
            if run is None or run.status != RUN_RUNNING:  # it ended while this batch submitted
                for batch_job_id in batch_job_ids:
                    self.ports.batch.terminate(batch_job_id, "miniwdl-serverless: run ended")


def _handle(item: WorkItem, ports: SubmitterPorts, pacer: Pacer, batch: _Batch) -> bool:
    """One item carried out (or refused); False: a transient failure, hand the rest back."""
    queued = queued_submission(item)
    call = queued.entry is None  # a download job serves every run waiting for it, not just one
    if call and not batch.runs(queued.run_id):
        ports.outcomes.append("run ended")
        return True
    try:
        submitted = _submit_one(item.key, queued, ports, pacer)
    except TransientError:
        log.warning("submitting %s failed; handed back", queued.submission.name, exc_info=True)
        return False
    except Refusal as refusal:  # the attempt failed: its retries, or the run, decide
        log.warning("Batch refused %s: %s", queued.submission.name, refusal)
        ports.work.put([refused_item(item, str(refusal))])
        submitted = Outcome("refused")
    if call and submitted.batch_job_id:
        batch.submitted.setdefault(queued.run_id, []).append(submitted.batch_job_id)
    ports.outcomes.append(submitted.what)
    log.info("queued submission handled", extra={"job": queued.job_id, "outcome": submitted.what})
    return True


class Refusal(Exception):
    """Batch refused the submission (any error but a transient one)."""


@dataclass(frozen=True)
class Outcome:
    what: str
    batch_job_id: str | None = None  # a job this item submitted (or adopted)


def _submit_one(key: str, queued: QueuedSubmission, ports: SubmitterPorts, pacer: Pacer) -> Outcome:
    if queued.entry is not None:
        return _submit_download(key, queued, ports, pacer)
    assert queued.job_id is not None
    store, run_id, job_id, attempt = ports.store, queued.run_id, queued.job_id, queued.attempt
    _pace(ports, pacer)
    until = submit_lease(time.time())  # as long as a preparing invocation's: SubmitJob's
    if not store.renew_lease(run_id, job_id, attempt, queued.lease, until, holder=key):
        found = _own_take(key, queued, ports, until)
        if found is None:
            return Outcome("taken")  # submitted already, or a resubmission took it over
        if found:  # an earlier delivery of this item submitted it, and died before recording
            return _record(queued, ports, found, "adopted")
    try:
        batch_job_id = _submit(queued, ports)
    except Throttled:  # refused, nothing submitted: the item's redelivery takes it again
        store.renew_lease(run_id, job_id, attempt, until, queued.lease)
        raise
    except TransientError:
        # it may have gone through: the reconciler resubmits at once, looking it up by name
        store.renew_lease(run_id, job_id, attempt, until, 0.0)
        raise
    return _record(queued, ports, batch_job_id, "submitted")


def _own_take(
    key: str, queued: QueuedSubmission, ports: SubmitterPorts, until: float
) -> str | None:
    """The lease was not the one this item carries: if this item's own earlier delivery took
    it (and died), take it again and look the job up by name: its id ("" if none was
    submitted). None: another holder has it, or the attempt moved on."""
    assert queued.job_id is not None
    store, run_id, job_id, attempt = ports.store, queued.run_id, queued.job_id, queued.attempt
    current = store.get_job(run_id, job_id)
    mine = (
        current is not None
        and current.lease_holder == key
        and current.attempt == attempt
        and not current.batch_job_id
        and current.lease_until is not None
    )
    if not mine or current is None or current.lease_until is None:
        return None
    if not store.renew_lease(run_id, job_id, attempt, current.lease_until, until, holder=key):
        return None
    return ports.batch.find(queued.submission.name, queued.submission.queue) or ""


def _record(
    queued: QueuedSubmission, ports: SubmitterPorts, batch_job_id: str, how: str
) -> Outcome:
    store, run_id, job_id = ports.store, queued.run_id, queued.job_id
    assert job_id is not None
    if not store.record_batch_job(run_id, job_id, queued.attempt, batch_job_id):
        current = store.get_job(run_id, job_id)
        if current is None or current.batch_job_id != batch_job_id:
            ports.batch.terminate(batch_job_id, "miniwdl-serverless: duplicate submission")
        return Outcome("duplicate")
    store.count(run_id, calls_submitted=1)
    ports.metrics.count("TasksSubmitted")
    return Outcome(how, batch_job_id)


def _submit_download(
    key: str, queued: QueuedSubmission, ports: SubmitterPorts, pacer: Pacer
) -> Outcome:
    """A download job: submitted while its claimant still holds the entry, and named on it (a
    lost end is looked up by that id). The entry says which item is submitting it, so that
    this item's redelivery after a crash looks the job up by name before submitting again."""
    cache, entry_key, claimant = ports.cache, queued.entry, queued.claimant
    assert cache is not None and entry_key is not None and claimant is not None
    entry = cache.get_entry(entry_key)
    if entry is None or entry.status != "downloading" or entry.claimant != claimant:
        return Outcome("taken")
    if entry.data.get("batch_job_id"):
        return Outcome("submitted before")
    now = time.time()
    lease = now + JOB_LEASE_SECONDS
    found = None
    if entry.data.get("submitting") == key:
        found = ports.batch.find(queued.submission.name, queued.submission.queue)
    else:
        marked = {**queued.entry_data, "submitting": key}
        if not cache.claim_entry(entry_key, claimant, lease, now, None, marked):
            return Outcome("taken")
    if not found:
        _pace(ports, pacer)
        found = _submit(queued, ports)
    recorded = {**queued.entry_data, "submitting": key, "batch_job_id": found}
    cache.claim_entry(entry_key, claimant, lease, now, None, recorded)
    ports.metrics.count("DownloadJobsSubmitted")
    return Outcome("submitted", found)


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
