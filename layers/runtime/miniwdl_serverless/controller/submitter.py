"""The paced submitter: every Batch job of every run is submitted here, from the submissions
the other functions put in the work table, at no more than the account-wide rate.

It holds no files and runs outside the VPC. For a call's attempt it takes the lease the
preparing invocation left on it (so a resubmission that took over meanwhile wins, and a
redelivered item submits nothing twice), submits, and records the Batch job id. It also makes
every other Batch and Step Functions call of the functions inside the VPC (which have no
route to them): terminations, a Start task's answer, a resubmission's look-up by name, and
DescribeJobs of download jobs whose end may have been lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

from miniwdl_serverless.controller.ports import (
    BatchJobs,
    CacheStore,
    LeaseTake,
    Metrics,
    Orchestrator,
    RunStore,
    Throttled,
    TransientError,
    WorkQueue,
)
from miniwdl_serverless.core import arrays
from miniwdl_serverless.core.decisions import lease_renewal, submit_lease
from miniwdl_serverless.core.errors import describe_exception
from miniwdl_serverless.core.ids import TAG_ARRAY, TAG_ATTEMPT, TAG_JOB
from miniwdl_serverless.core.localizing import JOB_LEASE_SECONDS
from miniwdl_serverless.core.records import RUN_RUNNING
from miniwdl_serverless.core.resources import TaskSubmission
from miniwdl_serverless.core.work import (
    ANSWER,
    DESCRIBE,
    LOOKUP,
    SUBMIT,
    TERMINATE,
    Pacer,
    QueuedSubmission,
    Resubmission,
    WorkItem,
    array_item,
    looked_up,
    queued_submission,
    refused_item,
    replay_item,
    resubmit_item,
)

log = logging.getLogger("miniwdl_serverless.submitter")

RESERVE_SECONDS = 10.0  # stop taking items this long before the invocation's deadline
ARRAY_HOLDER = "@array:"  # a lease an item took for an array job: "<key>@array:<name>:<index>"


@dataclass
class SubmitterPorts:
    store: RunStore
    batch: BatchJobs
    metrics: Metrics
    work: WorkQueue  # where a refused submission goes (the work function fails its attempt)
    cache: CacheStore | None = None
    orchestrator: Orchestrator | None = None  # the answers (None: a test that sends none)
    array_limit: int = arrays.ARRAY_SIZE_LIMIT  # children of one array job at most
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    outcomes: list[str] = field(default_factory=list)  # what each item led to (logs, tests)


def handle_items(
    items: list[WorkItem],
    ports: SubmitterPorts,
    pacer: Pacer,
    remaining_seconds: Callable[[], float],
) -> list[str]:
    """One stream batch: the submissions (paced, in order, array jobs made of them), then the
    other calls, each one by one. Returns the keys of the items to deliver again."""
    left = submit_queued([i for i in items if i.kind == SUBMIT], ports, pacer, remaining_seconds)
    others = [item for item in items if item.kind != SUBMIT]
    for index, item in enumerate(others):
        if remaining_seconds() < RESERVE_SECONDS:
            return left + [i.key for i in others[index:]]
        try:
            done = carry_out(item, ports)
        except TransientError:
            log.warning("%s failed; handed back", item.key, exc_info=True)
            done = False
        if not done:
            left.append(item.key)
    return left


def carry_out(item: WorkItem, ports: SubmitterPorts) -> bool:
    """A call the functions inside the VPC handed on; False: deliver it again. Each is safe
    to repeat: terminating a job twice, an answer a token already took, a look-up that finds
    what it recorded, a description replayed twice (the advance path changes nothing twice)."""
    body = item.body
    if item.kind == TERMINATE:
        _terminate(ports, str(body["batch_job_id"]), str(body["reason"]))
        ports.outcomes.append("terminated")
        return True
    if item.kind == ANSWER:
        return _answer(ports, body)
    if item.kind == LOOKUP:
        ports.outcomes.append(look_up(item, ports))
        return True
    if item.kind == DESCRIBE:
        ports.outcomes.append(_describe(item, ports))
        return True
    raise ValueError(f"not the submitter's: {item.kind}")


def _terminate(ports: SubmitterPorts, batch_job_id: str, reason: str) -> None:
    try:
        ports.batch.terminate(batch_job_id, reason)
    except TransientError:
        raise
    except Exception as exn:  # a job Batch does not know (expired) cannot be stopped: done
        log.warning("terminate %s: %s", batch_job_id, exn)


def _answer(ports: SubmitterPorts, body: dict) -> bool:
    assert ports.orchestrator is not None, "the submitter answers tokens"
    token = str(body["token"])
    if "output" in body:
        sent = ports.orchestrator.send_success(token, dict(body["output"]))
    else:
        sent = ports.orchestrator.send_failure(token, str(body["error"]), str(body["cause"]))
    ports.outcomes.append("answered" if sent else "answer not sent")
    return sent


def look_up(item: WorkItem, ports: SubmitterPorts) -> str:
    """A resubmission, before anything is prepared: the attempt's Batch job found by name is
    adopted (its call directory is the running job's: never written over); none found, the
    work function prepares and submits it again under the lease the look-up was made for."""
    lookup, run_id, store = looked_up(item), item.run_id, ports.store
    job = store.get_job(run_id, lookup.job_id)
    if (
        job is None
        or job.attempt != lookup.attempt
        or job.batch_job_id
        or job.lease_until != lookup.lease
    ):
        return "taken"  # recorded meanwhile, or another resubmission took it over
    for queue in lookup.queues:
        found = ports.batch.find(lookup.name, queue)
        if found:
            batch = _Batch(ports)
            outcome = _record_attempt(run_id, (lookup.job_id, lookup.attempt), ports, found)
            if outcome.batch_job_id:
                batch.submitted[run_id] = [found]
            batch.stop_what_ended()
            return "adopted" if outcome.batch_job_id else outcome.what
    again = Resubmission(lookup.job_id, lookup.attempt, lookup.lease, lookup.reconciling)
    ports.work.put([resubmit_item(run_id, again, item.key)])
    return "not found: resubmitting"


def _describe(item: WorkItem, ports: SubmitterPorts) -> str:
    """Download jobs whose end a reconciling resubmission wondered about: those that ended
    go to the work function as replays of their state change."""
    ids = [str(i) for i in item.body["batch_job_ids"]]
    ended = [d for d in ports.batch.describe(ids) if d.status in ("SUCCEEDED", "FAILED")]
    replays = [replay_item(d.run_id or "", d.model_dump(), item.key) for d in ended]
    if replays:
        ports.work.put(replays)
    return f"described: {len(replays)} ended"


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
    queued = [queued_submission(item) for item in items]
    groups = arrays.groups_of([_array_shape(q) for q in queued], ports.array_limit)
    singles = [(items[g[0]], queued[g[0]]) for g in groups if len(g) == 1]
    try:
        batch.take_leases(singles)
        for number, group in enumerate(groups):
            if remaining_seconds() < RESERVE_SECONDS or not _handle_group(
                [items[p] for p in group], [queued[p] for p in group], ports, pacer, batch
            ):
                left = sorted(p for g in groups[number:] for p in g)
                return [items[p].key for p in left]
        return []
    finally:
        batch.record_submitted()
        batch.give_back_unused()
        batch.stop_what_ended()


def _array_shape(queued: QueuedSubmission) -> Hashable | None:
    """What an array of this submission and others must share (None: it goes alone)."""
    if not queued.array_ok or queued.entry is not None or queued.attempt != 0:
        return None
    if not queued.call_dir or queued.job_id is None:
        return None
    return (queued.run_id, arrays.shape(queued.submission))


def _handle_group(
    items: list[WorkItem],
    queued: list[QueuedSubmission],
    ports: SubmitterPorts,
    pacer: Pacer,
    batch: _Batch,
) -> bool:
    if len(items) == 1:
        return _handle(items[0], ports, pacer, batch)
    if not batch.runs(queued[0].run_id):
        ports.outcomes.extend(["run ended"] * len(items))
        return True
    try:
        outcomes = submit_array(items, queued, ports, pacer)
    except TransientError:
        log.warning("submitting an array of %d failed; handed back", len(items), exc_info=True)
        return False
    if outcomes is None:  # not every call could be taken: each alone
        return all(_handle(item, ports, pacer, batch) for item in items)
    for outcome in outcomes:
        if outcome.batch_job_id:
            batch.submitted.setdefault(queued[0].run_id, []).append(outcome.batch_job_id)
        ports.outcomes.append(outcome.what)
    return True


@dataclass
class _Batch:
    """The runs one stream batch submits for: whether each still runs, what was submitted."""

    ports: SubmitterPorts
    running: dict[str, bool] = field(default_factory=dict)
    submitted: dict[str, list[str]] = field(default_factory=dict)
    # the calls' leases taken together, before their submissions (work item key → the lease
    # and the item); those submitted, to record together (their outcomes' places)
    taken: dict[str, tuple[float, QueuedSubmission]] = field(default_factory=dict)
    unrecorded: list[tuple[QueuedSubmission, str, int]] = field(default_factory=list)

    def runs(self, run_id: str) -> bool:
        if run_id not in self.running:
            run = self.ports.store.get_run(run_id)
            self.running[run_id] = run is not None and run.status == RUN_RUNNING
        return self.running[run_id]

    def take_leases(self, singles: list[tuple[WorkItem, QueuedSubmission]]) -> None:
        """The leases of the calls submitted alone, one request for each run's: taken as each
        would be alone (``_submit_one``), which does it itself for one not taken here."""
        until = submit_lease(time.time())
        by_run: dict[str, list[tuple[WorkItem, QueuedSubmission]]] = {}
        for item, call in singles:
            if call.entry is None and call.job_id is not None and self.runs(call.run_id):
                by_run.setdefault(call.run_id, []).append((item, call))
        for run_id, calls in by_run.items():
            takes = [
                LeaseTake(str(c.job_id), c.attempt, c.lease, until, i.key, c.prepared)
                for i, c in calls
            ]
            taken = self.ports.store.take_leases(run_id, takes)
            self.taken.update({i.key: (until, c) for i, c in calls if c.job_id in taken})

    def record_later(self, queued: QueuedSubmission, batch_job_id: str) -> None:
        """A call's Batch job, recorded with the others this batch submits (its events may
        come first: the advance path takes an attempt's job by name until its id is known)."""
        self.unrecorded.append((queued, batch_job_id, len(self.ports.outcomes)))

    def record_submitted(self) -> None:
        """The Batch jobs submitted, one request for each run's; one whose attempt has
        another recorded already is terminated (``_record_attempt``)."""
        by_run: dict[str, list[tuple[QueuedSubmission, str, int]]] = {}
        for entry in self.unrecorded:
            by_run.setdefault(entry[0].run_id, []).append(entry)
        self.unrecorded = []
        for run_id, entries in by_run.items():
            records = [(str(q.job_id), q.attempt, batch_job_id) for q, batch_job_id, _ in entries]
            recorded = self.ports.store.record_batch_jobs(run_id, records)
            for queued, batch_job_id, place in entries:
                if queued.job_id in recorded:
                    continue
                outcome = _record(queued, self.ports, batch_job_id, "submitted")
                self.ports.outcomes[place] = outcome.what
                if not outcome.batch_job_id:
                    self.submitted[run_id].remove(batch_job_id)

    def give_back_unused(self) -> None:
        """The leases taken for calls this batch did not reach: back to the preparing
        invocation's, so that their redelivery takes them as the first delivery would."""
        for key, (until, queued) in self.taken.items():
            assert queued.job_id is not None
            self.ports.store.renew_lease(
                queued.run_id, queued.job_id, queued.attempt, until, queued.lease, holder=key
            )
        self.taken = {}

    def stop_what_ended(self) -> None:
        """Each run's count of calls submitted, in one write; and if it ended while this batch
        submitted, what it submitted terminated (an array's children with their parent)."""
        for run_id, batch_job_ids in self.submitted.items():
            self.ports.store.count(run_id, calls_submitted=len(batch_job_ids))
            self.ports.metrics.count("TasksSubmitted", len(batch_job_ids))
            run = self.ports.store.get_run(run_id)
            if run is None or run.status != RUN_RUNNING:
                for batch_job_id in dict.fromkeys(i.split(":", 1)[0] for i in batch_job_ids):
                    self.ports.batch.terminate(batch_job_id, "miniwdl-serverless: run ended")


def _handle(item: WorkItem, ports: SubmitterPorts, pacer: Pacer, batch: _Batch) -> bool:
    """One item carried out (or refused); False: a transient failure, hand the rest back."""
    queued = queued_submission(item)
    call = queued.entry is None  # a download job serves every run waiting for it, not just one
    if call and not batch.runs(queued.run_id):
        ports.outcomes.append("run ended")
        return True
    try:
        submitted = _submit_one(item.key, queued, ports, pacer, batch.taken.pop(item.key, None))
    except TransientError:
        log.warning("submitting %s failed; handed back", queued.submission.name, exc_info=True)
        return False
    except Refusal as refusal:  # the attempt failed: its retries, or the run, decide
        log.warning("Batch refused %s: %s", queued.submission.name, refusal)
        ports.work.put([refused_item(item, str(refusal))])
        submitted = Outcome("refused")
    if call and submitted.batch_job_id:
        batch.submitted.setdefault(queued.run_id, []).append(submitted.batch_job_id)
        if submitted.what == UNRECORDED:
            batch.record_later(queued, submitted.batch_job_id)
            submitted = Outcome("submitted", submitted.batch_job_id)
    ports.outcomes.append(submitted.what)
    log.info("queued submission handled", extra={"job": queued.job_id, "outcome": submitted.what})
    return True


class Refusal(Exception):
    """Batch refused the submission (any error but a transient one)."""


@dataclass(frozen=True)
class Outcome:
    what: str
    batch_job_id: str | None = None  # a job this item submitted (or adopted)


UNRECORDED = "submitted, to record"  # an outcome the batch records with the others


def _submit_one(
    key: str,
    queued: QueuedSubmission,
    ports: SubmitterPorts,
    pacer: Pacer,
    taken: tuple[float, QueuedSubmission] | None = None,
) -> Outcome:
    """``taken``: the lease the batch took for this call (else it is taken here)."""
    if queued.entry is not None:
        return _submit_download(key, queued, ports, pacer)
    assert queued.job_id is not None
    store, run_id, job_id, attempt = ports.store, queued.run_id, queued.job_id, queued.attempt
    _pace(ports, pacer)
    until = submit_lease(time.time())  # as long as a preparing invocation's: SubmitJob's
    if taken is not None:
        kept = _kept(queued, ports, taken[0])
        if kept is None:
            return Outcome("taken")
        until = kept
    elif not store.renew_lease(
        run_id, job_id, attempt, queued.lease, until, holder=key, fields=queued.prepared
    ):
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
    return Outcome(UNRECORDED, batch_job_id)


def _kept(queued: QueuedSubmission, ports: SubmitterPorts, until: float) -> float | None:
    """The lease the batch took, renewed if pacing left it about to run out (None: lost)."""
    assert queued.job_id is not None
    renewal = lease_renewal(time.time(), until)
    if renewal is None:
        return until
    renewed = ports.store.renew_lease(queued.run_id, queued.job_id, queued.attempt, until, renewal)
    return renewal if renewed else None


def submit_array(
    items: list[WorkItem], queued: list[QueuedSubmission], ports: SubmitterPorts, pacer: Pacer
) -> list[Outcome] | None:
    """One array job for calls of one run and shape: every call's lease taken, held by the
    array (so a redelivery after a crash looks the array up by its name), its children's list
    written, one SubmitJob, each child's id recorded on its call. None if not every lease
    could be taken (the takes are given back: the caller submits each alone)."""
    store, run_id = ports.store, queued[0].run_id
    name = arrays.queued_array_name(run_id, [item.key for item in items])
    until = submit_lease(time.time())
    takes = [
        LeaseTake(str(c.job_id), 0, c.lease, until, f"{i.key}{ARRAY_HOLDER}{name}:{n}", c.prepared)
        for n, (i, c) in enumerate(zip(items, queued, strict=True))
    ]
    taken_ids = store.take_leases(run_id, takes)
    if len(taken_ids) < len(queued):
        taken = [(i, c) for i, c in zip(items, queued, strict=True) if c.job_id in taken_ids]
        _give_back(ports, taken, until)
        return None
    ports.work.put([array_item(run_id, name, [str(call.job_id) for call in queued])])
    submission = _array_submission(name, queued)
    _pace(ports, pacer)
    try:
        parent = _submit(QueuedSubmission(submission, run_id), ports)
    except Throttled:  # nothing submitted: the items' redelivery takes them again
        _give_back(ports, list(zip(items, queued, strict=True)), until)
        raise
    ports.metrics.count("ArrayJobsSubmitted")
    children = [(str(c.job_id), 0, f"{parent}:{n}") for n, c in enumerate(queued)]
    recorded = store.record_batch_jobs(run_id, children)
    return [
        Outcome("submitted in an array", child)
        if call.job_id in recorded
        else _record(call, ports, child, "submitted in an array")
        for call, (_, _, child) in zip(queued, children, strict=True)
    ]


def _array_submission(name: str, queued: list[QueuedSubmission]) -> TaskSubmission:
    first = queued[0].submission
    tags = {k: v for k, v in first.tags.items() if k not in (TAG_JOB, TAG_ATTEMPT)}
    return replace(
        first,
        name=name,
        tags={**tags, TAG_ARRAY: name},
        script=arrays.members_script([call.call_dir for call in queued]),
        command=None,
        array_size=len(queued),
    )


def _give_back(
    ports: SubmitterPorts, taken: list[tuple[WorkItem, QueuedSubmission]], until: float
) -> None:
    """The leases taken for an array, back as they were (each held by its own item)."""
    for item, call in taken:
        assert call.job_id is not None
        ports.store.renew_lease(call.run_id, call.job_id, 0, until, call.lease, holder=item.key)


def _own_take(
    key: str, queued: QueuedSubmission, ports: SubmitterPorts, until: float
) -> str | None:
    """The lease was not the one this item carries: if this item's own earlier delivery took
    it (and died), take it again and look the job up by name: its id ("" if none was
    submitted). None: another holder has it, or the attempt moved on."""
    assert queued.job_id is not None
    store, run_id, job_id, attempt = ports.store, queued.run_id, queued.job_id, queued.attempt
    current = store.get_job(run_id, job_id)
    holder = current.lease_holder if current is not None else None
    array = _array_holder(holder, key)
    mine = (
        current is not None
        and (holder == key or array is not None)
        and current.attempt == attempt
        and not current.batch_job_id
    )
    if not mine or current is None or current.lease_until is None:
        return None
    held = current.lease_until
    if not store.renew_lease(
        run_id, job_id, attempt, held, until, holder=key, fields=queued.prepared
    ):
        return None
    if array is not None:  # taken for an array that may have gone through
        parent = ports.batch.find(array[0], queued.submission.queue)
        return f"{parent}:{array[1]}" if parent else ""
    return ports.batch.find(queued.submission.name, queued.submission.queue) or ""


def _array_holder(holder: str | None, key: str) -> tuple[str, int] | None:
    """(the array's name, the call's index in it) of a lease this item took for an array."""
    mark = f"{key}{ARRAY_HOLDER}"
    if not holder or not holder.startswith(mark):
        return None
    name, _, index = holder[len(mark) :].rpartition(":")
    return (name, int(index)) if name and index.isdigit() else None


def _record(
    queued: QueuedSubmission, ports: SubmitterPorts, batch_job_id: str, how: str
) -> Outcome:
    assert queued.job_id is not None
    attempt = (queued.job_id, queued.attempt)
    return _record_attempt(queued.run_id, attempt, ports, batch_job_id, how)


def _record_attempt(
    run_id: str,
    attempt_of: tuple[str, int],
    ports: SubmitterPorts,
    batch_job_id: str,
    how: str = "adopted",
) -> Outcome:
    """The attempt's Batch job recorded; one recorded already is kept, and this one (a
    duplicate nobody follows) terminated."""
    store, (job_id, attempt) = ports.store, attempt_of
    if not store.record_batch_job(run_id, job_id, attempt, batch_job_id):
        current = store.get_job(run_id, job_id)
        if current is None or current.batch_job_id != batch_job_id:
            ports.batch.terminate(batch_job_id, "miniwdl-serverless: duplicate submission")
        return Outcome("duplicate")
    return Outcome(how, batch_job_id)  # counted with the batch's others (_Batch)


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
