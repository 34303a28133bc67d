"""In-memory adapters for every port, with the semantics of the real ones (conditional writes,
atomic completion, safe under threads): for unit tests of the real controller, and held to
the same contract tests as the DynamoDB store (tests/contract/)."""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from miniwdl_serverless.controller.ports import CacheEntry, LeaseTake, MissingJob, Started
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.reconciling import DeadLetter
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    FAILED,
    JOB_FIELDS,
    RUN_ENDED,
    RUN_FIELDS,
    RUNNING,
    WAITING,
    Job,
    Run,
    completing_step,
)
from miniwdl_serverless.core.resources import TaskSubmission
from miniwdl_serverless.core.store_rules import (
    BUCKET_COUNTERS,
    TRANSACTION_LIMIT,
    bucket_counts,
    chunks,
    ended_fields,
    tally_item_id,
)
from miniwdl_serverless.core.uploads import Transfer
from miniwdl_serverless.core.work import DELIVERED_KINDS, OUTSIDE_KINDS, WorkItem

T = TypeVar("T")


@dataclass
class Bucket:
    """A gather's bucket: the shards counted, and their share of the run's counters."""

    members: set[int] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    def copy(self) -> Bucket:
        return Bucket(set(self.members), Counter(self.counts))


class MemoryStore:
    """The RunStore port in a dict, one lock standing in for DynamoDB's item-level atomicity."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._jobs: dict[tuple[str, str], Job] = {}
        # waiters registered on a job that does not exist yet: (waiters, version)
        self._stubs: dict[tuple[str, str], tuple[list[str], int]] = {}
        # a gather's buckets (run id, tally_item_id): the shard indices counted in each, and
        # their share of the run's counters
        self._tallies: dict[tuple[str, str], Bucket] = {}
        self.writes = 0  # conditional and unconditional writes, for tests that count them

    # -- everything held, for the local state directory (local/memory_tables.py) --
    def all_runs(self) -> list[Run]:
        with self._lock:
            return [_copied(run) for run in self._runs.values()]

    def all_jobs(self) -> list[Job]:
        with self._lock:
            return [_copied(job) for job in self._jobs.values()]

    def all_stubs(self) -> dict[tuple[str, str], tuple[list[str], int]]:
        """Waiters registered on jobs not created yet: (run id, job id) → (waiters, version)."""
        with self._lock:
            return {
                key: (list(waiters), version) for key, (waiters, version) in self._stubs.items()
            }

    def all_buckets(self) -> dict[tuple[str, str], Bucket]:
        with self._lock:
            return {key: bucket.copy() for key, bucket in self._tallies.items()}

    def restore_bucket(self, run_id: str, bucket_id: str, bucket: Bucket) -> None:
        with self._lock:
            self._tallies[(run_id, bucket_id)] = bucket.copy()

    def restore_run(self, run: Run) -> None:
        """Put back a run as saved (its own ``created_at`` kept; not counted as a write)."""
        with self._lock:
            self._runs[run.run_id] = _copied(run)

    def restore_job(self, job: Job) -> None:
        with self._lock:
            self._jobs[(job.run_id, job.job_id)] = _copied(job)

    # -- runs --
    def create_run(self, run: Run) -> bool:
        with self._lock:
            self.writes += 1
            if run.run_id in self._runs:
                return False
            self._runs[run.run_id] = replace(run, created_at=run.created_at or time.time())
            return True

    def put_run(self, run: Run) -> None:
        with self._lock:
            self.writes += 1
            self._runs[run.run_id] = replace(run, created_at=run.created_at or time.time())

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            run = self._runs.get(run_id)
            return _copied(run) if run is not None else None

    def set_run_status(
        self, run_id: str, status: str, expected: Iterable[str], **fields: Any
    ) -> bool:
        _check_fields(fields, RUN_FIELDS)
        with self._lock:
            self.writes += 1
            run = self._runs.get(run_id)
            if run is None or run.status not in set(expected):
                return False
            changes = dict(fields, status=status)
            if status in RUN_ENDED:
                changes.update(ended_fields(time.time()))
            self._runs[run_id] = replace(run, **_copied(changes))
            return True

    def record_upload(self, run_id: str, folder: str) -> None:
        with self._lock:
            self.writes += 1
            run = self._runs.get(run_id)
            if run is not None:
                run.uploaded_to = folder

    def mark_answered(self, run_id: str) -> None:
        with self._lock:
            self.writes += 1
            run = self._runs.get(run_id)
            if run is not None:
                run.answer_due = None

    def count(self, run_id: str, **deltas: int) -> None:
        _check_fields(deltas, RUN_FIELDS)
        with self._lock:
            self.writes += 1
            run = self._runs.setdefault(run_id, Run(run_id))  # an update creates the item
            for name, delta in deltas.items():
                setattr(run, name, getattr(run, name) + delta)

    # -- jobs --
    def put_new_jobs(self, jobs: list[Job], *, expires_at: int) -> set[str]:
        created: set[str] = set()
        with self._lock:
            for job in jobs:
                self.writes += 1
                key = (job.run_id, job.job_id)
                if key in self._jobs:
                    continue
                waiters, version = self._stubs.pop(key, (None, None))
                self._jobs[key] = replace(
                    _copied(job),
                    waiters=waiters,
                    waiters_version=version,
                    expires_at=expires_at,
                    awaiting=sorted(set(job.awaiting)) if job.awaiting else None,
                )
                created.add(job.job_id)
        return created

    def register_waiter(
        self,
        run_id: str,
        job_id: str,
        waiter: str,
        *,
        expires_at: int,  # noqa: ARG002 - a stub here is no item: nothing in memory expires
    ) -> bool:
        with self._lock:
            self.writes += 1
            key = (run_id, job_id)
            job = self._jobs.get(key)
            if job is None:
                waiters, version = self._stubs.get(key, ([], 0))
                if waiter not in waiters:
                    self._stubs[key] = (waiters + [waiter], version + 1)
                return True
            if waiter in (job.waiters or []):
                return True
            if job.status not in (WAITING, CLAIMED, RUNNING):
                return False
            job.waiters = list(job.waiters or []) + [waiter]
            job.waiters_version = (job.waiters_version or 0) + 1
            return True

    def get_job(self, run_id: str, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get((run_id, job_id))
            return _copied(job) if job is not None else None

    def get_run_and_job(self, run_id: str, job_id: str) -> tuple[Run | None, Job | None]:
        with self._lock:
            return self.get_run(run_id), self.get_job(run_id, job_id)

    def get_jobs(
        self,
        run_id: str,
        job_ids: Iterable[str],
        readiness_only: bool = False,  # noqa: ARG002 - whole records hold those fields too
    ) -> dict[str, Job]:
        with self._lock:
            found = {}
            for job_id in set(job_ids):
                job = self._jobs.get((run_id, job_id))
                if job is not None:
                    found[job_id] = _copied(job)
            return found

    def query_jobs(
        self, run_id: str, statuses: Iterable[str] | None = None, *, prefix: str = ""
    ) -> Iterator[Job]:
        wanted = set(statuses) if statuses else None
        with self._lock:
            found = [
                _copied(job)
                for (owner, job_id), job in sorted(self._jobs.items())
                if owner == run_id
                and job_id.startswith(prefix)
                and (wanted is None or job.status in wanted)
            ]
        return iter(found)

    def claim(self, run_id: str, job_id: str, claimant: str) -> Job | None:
        def allowed(job: Job) -> bool:
            mine = job.status == CLAIMED and job.claimed_by == claimant
            return job.pending <= 0 and (job.status == WAITING or mine)

        return self._update_if(run_id, job_id, allowed, status=CLAIMED, claimed_by=claimant)

    def mark_running(
        self, run_id: str, job_id: str, attempt: int, resubmit: bool = False, **fields: Any
    ) -> Job | None:
        now = time.time()

        def allowed(job: Job) -> bool:
            if job.status == CLAIMED:
                return True
            if attempt > 0 and job.status == RUNNING and job.attempt == attempt - 1:
                return True
            lease_over = job.lease_until is None or job.lease_until < now
            return bool(
                resubmit
                and job.status == RUNNING
                and job.attempt == attempt
                and job.batch_job_id is None
                and lease_over
            )

        changes = dict(fields, status=RUNNING, attempt=attempt)
        return self._update_if(run_id, job_id, allowed, **changes)

    def renew_lease(  # noqa: PLR0913 - the port's signature
        self,
        run_id: str,
        job_id: str,
        attempt: int,
        held_until: float,
        until: float,
        holder: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        def allowed(job: Job) -> bool:
            return (
                job.status == RUNNING
                and job.attempt == attempt
                and job.batch_job_id is None
                and job.lease_until == held_until
            )

        changes: dict[str, Any] = {**(fields or {}), "lease_until": until}
        if holder is not None:
            changes["lease_holder"] = holder
        return self._update_if(run_id, job_id, allowed, **changes) is not None

    def take_leases(self, run_id: str, takes: list[LeaseTake]) -> set[str]:
        return {
            t.job_id
            for t in takes
            if self.renew_lease(
                run_id, t.job_id, t.attempt, t.held_until, t.until, t.holder, t.fields
            )
        }

    def record_batch_jobs(self, run_id: str, records: list[tuple[str, int, str]]) -> set[str]:
        return {
            job_id
            for job_id, attempt, batch_job_id in records
            if self.record_batch_job(run_id, job_id, attempt, batch_job_id)
        }

    def record_batch_job(self, run_id: str, job_id: str, attempt: int, batch_job_id: str) -> bool:
        def allowed(job: Job) -> bool:
            return job.attempt == attempt and job.batch_job_id is None

        return self._update_if(run_id, job_id, allowed, batch_job_id=batch_job_id) is not None

    def note_started(self, run_id: str, job_id: str, started: Started) -> Job | None:
        def allowed(job: Job) -> bool:
            return (
                job.status == RUNNING
                and job.attempt == started.attempt
                and job.batch_job_name == started.batch_job_name
                and job.batch_job_id in (None, started.batch_job_id)
                and job.started_at is None
            )

        fields = {"started_at": started.started_at, "log_stream": started.log_stream}
        return self._update_if(run_id, job_id, allowed, **fields)

    def stop_awaiting(self, run_id: str, job_id: str, dependency: str) -> Job | None:
        with self._lock:
            job = self._jobs.get((run_id, job_id))
            if job is None or dependency not in (job.awaiting or []):
                return None
            left = [d for d in job.awaiting or [] if d != dependency] or None
            return self._update_if(
                run_id, job_id, lambda _: True, awaiting=left, pending=job.pending - 1
            )

    def update_job(self, run_id: str, job_id: str, **fields: Any) -> Job:
        self._existing(run_id, job_id)
        return self._update_if(run_id, job_id, lambda _: True, **fields)  # type: ignore[return-value]

    def complete(
        self, job: Job, outputs: Any, expected_attempt: int | None = None
    ) -> list[str] | None:
        with self._lock:
            self.writes += 1
            current = self._jobs.get((job.run_id, job.job_id))
            if current is None or job.status == DONE:
                return None
            # a completion stopped between steps is continued, whoever started it
            step = completing_step(current.status)
            if step == 0:
                open_now = current.status in (CLAIMED, RUNNING)
                if not open_now or (
                    expected_attempt is not None and current.attempt != expected_attempt
                ):
                    return None
            # The waiters as they are now: DynamoDB's version check retries with the fresh
            # list, which here, under one lock, is the same thing.
            targets = current.targets()
            batches = list(chunks(targets, TRANSACTION_LIMIT - 1)) or [[]]
            for dependent in itertools.chain.from_iterable(batches[step:]):
                if (job.run_id, dependent) not in self._jobs:
                    raise MissingJob(f"{job.job_id}: dependent {dependent} does not exist")
            for dependent in itertools.chain.from_iterable(batches[step:]):
                self._jobs[(job.run_id, dependent)].pending -= 1
            current.status, current.outputs = DONE, _copied(outputs)
            current.finished_at = time.time()
            return targets + current.group_tokens()

    def tally_shard(self, job: Job, counts: Mapping[str, int]) -> bool:
        tally = _tally(job)
        index = int(tally["index"])
        with self._lock:
            self.writes += 1
            key = (job.run_id, tally_item_id(tally["gather"], tally["bucket"]))
            bucket = self._tallies.setdefault(key, Bucket())
            if index not in bucket.members:
                bucket.members.add(index)
                bucket.counts.update(bucket_counts(counts))
            return len(bucket.members) >= int(tally["size"])

    def tallied(self, run_id: str) -> dict[str, int]:
        totals = dict.fromkeys(BUCKET_COUNTERS, 0)
        with self._lock:
            for (run, _), bucket in self._tallies.items():
                if run == run_id:
                    for name in BUCKET_COUNTERS:
                        totals[name] += bucket.counts[name]
        return totals

    def tally_bucket(self, job: Job) -> Job | None:
        tally = _tally(job)
        bucket = int(tally["bucket"])
        with self._lock:
            self.writes += 1
            gather = self._jobs.get((job.run_id, tally["gather"]))
            if gather is None:
                return None
            if bucket not in (gather.tallied or []):
                gather.tallied = sorted({*(gather.tallied or []), bucket})
                gather.pending -= int(tally["size"])
            return _copied(gather)

    def fail_job(self, run_id: str, job_id: str, error: dict[str, Any]) -> bool:
        def allowed(job: Job) -> bool:
            return job.status in (CLAIMED, RUNNING)

        changes = {"status": FAILED, "error": error, "finished_at": time.time()}
        return self._update_if(run_id, job_id, allowed, **changes) is not None

    # -- helpers --
    def _existing(self, run_id: str, job_id: str) -> Job:
        job = self._jobs.get((run_id, job_id))
        if job is None:
            raise MissingJob(f"no job {job_id} in run {run_id}")
        return job

    def _update_if(self, run_id: str, job_id: str, allowed: Any, **fields: Any) -> Job | None:
        _check_fields(fields, JOB_FIELDS)
        with self._lock:
            self.writes += 1
            job = self._jobs.get((run_id, job_id))
            if job is None or not allowed(job):
                return None
            for name, value in _copied(fields).items():
                setattr(job, name, value)
            return _copied(job)


def _copied(value: T) -> T:
    """A deep copy, as a read from DynamoDB gives a record of its own: a pickle round trip
    (of plain records) costs about half of copy.deepcopy, which was most of a completion's
    store time."""
    return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # type: ignore[no-any-return]  # noqa: S301 (our own records)


def _tally(job: Job) -> dict[str, Any]:
    if not job.tally:
        raise ValueError(f"{job.job_id} is no tallied shard")
    return job.tally


def _check_fields(fields: dict[str, Any], known: frozenset[str]) -> None:
    unknown = set(fields) - known
    if unknown:
        raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")


@dataclass
class SubmittedJob:
    batch_job_id: str
    submission: TaskSubmission
    terminated: str | None = None  # the reason, once terminated
    # What DescribeJobs says of it (tests move it on, with or without sending the event)
    status: str = "SUBMITTED"
    exit_code: int | None = None
    reason: str | None = None
    started_at: float | None = None  # seconds
    stopped_at: float | None = None
    forgotten: bool = False  # Batch no longer knows it (DescribeJobs leaves it out)
    index: int | None = None  # an array job's child: its index (its id: "<parent>:<index>")
    size: int | None = None  # an array job's parent: how many children

    def moved(self, status: str, exit_code: int | None, reason: str | None, now: float) -> None:
        """Batch moved the job to ``status`` at ``now``."""
        self.status, self.exit_code, self.reason = status, exit_code, reason
        if status in ("STARTING", "RUNNING", "SUCCEEDED", "FAILED") and self.started_at is None:
            self.started_at = now
        if status in ("SUCCEEDED", "FAILED"):
            self.stopped_at = now

    def detail(self) -> BatchJobDetail:
        """The job as DescribeJobs (and its events) describe it."""
        return self.event_detail(self.status, self.exit_code, self.reason)

    def event_detail(
        self, status: str, exit_code: int | None, reason: str | None
    ) -> BatchJobDetail:
        """The job in ``status``, as its event says (an array's child with its index, the
        parent's name and tags)."""
        container: dict[str, Any] = {"logStreamName": f"default/{self.batch_job_id}"}
        if exit_code is not None:
            container["exitCode"] = exit_code
        array: dict[str, Any] = {}
        if self.index is not None:
            array["arrayProperties"] = {"index": self.index}
        elif self.size is not None:
            array["arrayProperties"] = {"size": self.size}
        return BatchJobDetail(
            **array,
            jobName=self.submission.name,
            jobId=self.batch_job_id,
            jobQueue=self.submission.queue,
            status=status,  # type: ignore[arg-type]
            statusReason=reason,
            container=container,
            tags=dict(self.submission.tags),
            startedAt=int(self.started_at * 1000) if self.started_at else None,
            stoppedAt=int(self.stopped_at * 1000) if self.stopped_at else None,
        )


@dataclass
class MemoryBatch:
    """The BatchJobs port: records submissions; tests decide what each job does."""

    jobs: dict[str, SubmittedJob] = field(default_factory=dict)
    describe_calls: list[list[str]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: Any = field(default_factory=threading.Lock)

    def find(self, name: str, queue: str) -> str | None:
        with self._lock:
            for job in self.jobs.values():
                if job.submission.name == name and job.submission.queue == queue:
                    return job.batch_job_id
        return None

    def submit(self, submission: TaskSubmission) -> str:
        """A new job each time, as SubmitJob (names are not unique in Batch); an array job's
        children are jobs of their own, ``<parent>:<index>``."""
        with self._lock:
            batch_job_id = f"batch-{next(self._ids):05d}"
            size = submission.array_size
            self.jobs[batch_job_id] = SubmittedJob(batch_job_id, submission, size=size)
            for index in range(size or 0):
                child = f"{batch_job_id}:{index}"
                self.jobs[child] = SubmittedJob(child, submission, index=index)
            return batch_job_id

    def children(self, parent: str) -> list[SubmittedJob]:
        return [j for j in self.jobs.values() if j.batch_job_id.startswith(parent + ":")]

    def terminate(self, batch_job_id: str, reason: str) -> None:
        with self._lock:
            for job in self.jobs.values():  # an array's parent: its children too
                if job.batch_job_id == batch_job_id or job.batch_job_id.startswith(
                    batch_job_id + ":"
                ):
                    job.terminated = job.terminated or reason

    def describe(self, batch_job_ids: list[str]) -> list[BatchJobDetail]:
        with self._lock:
            self.describe_calls.append(list(batch_job_ids))
            found = [self.jobs[i] for i in dict.fromkeys(batch_job_ids) if i in self.jobs]
            return [job.detail() for job in found if not job.forgotten]

    def by_name(self, name: str) -> SubmittedJob:
        return next(j for j in self.jobs.values() if j.submission.name == name)


@dataclass
class MemoryOrchestrator:
    """The Orchestrator port: the first answer per token counts, as in Step Functions."""

    answers: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def send_success(self, token: str, output: dict[str, Any]) -> bool:
        self.answers.setdefault(token, ("success", output))
        return True

    def send_failure(self, token: str, error: str, cause: str) -> bool:
        self.answers.setdefault(token, ("failure", (error, cause)))
        return True


@dataclass
class MemoryUploads:
    """The Uploads port as S3Uploads keeps it: an object with the file's content (its SHA-256)
    is not sent again. A path that is no real file (MemoryRunFiles' files) is always sent."""

    files: dict[str, str] = field(default_factory=dict)  # uri → local path
    objects: dict[str, Any] = field(default_factory=dict)  # uri → JSON data
    digests: dict[str, str] = field(default_factory=dict)  # uri → SHA-256 of what was sent
    sent: list[str] = field(default_factory=list)  # every upload not skipped, in order

    def upload_file(self, path: str, uri: str) -> Transfer:
        try:
            with open(path, "rb") as file:
                content = file.read()
        except OSError:
            content = None
        if content is not None:
            digest = hashlib.sha256(content).hexdigest()
            if self.digests.get(uri) == digest and uri in self.files:
                return Transfer(len(content), skipped=True)
            self.digests[uri] = digest
        self.files[uri] = path
        self.sent.append(uri)
        return Transfer(len(content or b""))

    def put_json(self, uri: str, data: Any) -> Transfer:
        size = len(json.dumps(data, indent=2).encode())
        if uri in self.objects and self.objects[uri] == data:
            return Transfer(size, skipped=True)
        self.objects[uri] = _copied(data)
        self.sent.append(uri)
        return Transfer(size)

    def get_json(self, uri: str) -> Any:
        return _copied(self.objects[uri])


class MemoryWork:
    """The WorkQueue port in memory: each new key queued once, in order, and handed to
    ``deliver`` by ``drain`` (which whoever plays the work table's stream calls after each
    invocation: one at a time, as a stream's shard delivers)."""

    def __init__(self, deliver: Callable[[list[WorkItem]], None] | None = None) -> None:
        self.deliver = deliver
        self.batch = 1  # submissions delivered together (the template's BatchSize is 100)
        self.items: dict[str, WorkItem] = {}  # every item put, by key
        self.queue: list[WorkItem] = []
        self._lock = threading.RLock()
        self._draining = threading.local()

    def put(self, items: list[WorkItem]) -> None:
        with self._lock:
            for item in items:
                if item.key not in self.items:
                    self.items[item.key] = item
                    if item.kind in DELIVERED_KINDS:  # as the stream's filters: not records
                        self.queue.append(item)

    def get(self, key: str) -> WorkItem | None:
        with self._lock:
            return self.items.get(key)

    def drain(self) -> int:
        """Deliver what is queued, and what that puts, until nothing is left; how many. Up to
        ``batch`` of the submitter's items in a row go together (a stream batch: it may make an
        array job of the submissions); the work function's one by one."""
        if getattr(self._draining, "active", False):
            return 0  # the outer drain delivers it
        self._draining.active = True
        delivered = 0
        try:
            while True:
                with self._lock:
                    if not self.queue or self.deliver is None:
                        return delivered
                    items = [self.queue.pop(0)]
                    while (
                        self.queue
                        and len(items) < self.batch
                        and items[0].kind in OUTSIDE_KINDS
                        and self.queue[0].kind in OUTSIDE_KINDS
                    ):
                        items.append(self.queue.pop(0))
                try:
                    self.deliver(items)
                except BaseException:  # as a stream does: the items come again
                    with self._lock:
                        self.queue[:0] = items
                    raise
                delivered += len(items)
        finally:
            self._draining.active = False


@dataclass
class MemoryMetrics:
    counts: Counter[str] = field(default_factory=Counter)

    def count(self, name: str, value: int = 1) -> None:
        self.counts[name] += value


@dataclass
class MemoryExecutions:
    """The LiveRuns port: executions started (``started``: run id → task token) that neither
    got their token's answer (Step Functions then runs Finish and ends) nor were stopped."""

    orchestrator: MemoryOrchestrator
    started: dict[str, str] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)

    def running(self) -> Iterator[str]:
        answered = self.orchestrator.answers
        for run_id, token in list(self.started.items()):
            if token not in answered and run_id not in self.stopped:
                yield run_id


@dataclass
class MemoryDeadLetters:
    """The DeadLetters port: a received message stays hidden until ``reappear`` (the
    visibility timeout passing) unless it was deleted."""

    messages: dict[str, DeadLetter] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def put(self, body: str, **attributes: str) -> str:
        message_id = f"message-{next(self._ids):04d}"
        self.messages[message_id] = DeadLetter(
            message_id, body, "receipt-" + message_id, attributes
        )
        return message_id

    def receive(self, limit: int) -> list[DeadLetter]:
        visible = [m for i, m in self.messages.items() if i not in self.hidden][:limit]
        self.hidden.update(m.message_id for m in visible)
        return visible

    def delete(self, letter: DeadLetter) -> None:
        self.messages.pop(letter.message_id, None)
        self.hidden.discard(letter.message_id)

    def reappear(self) -> None:
        self.hidden.clear()


class MemoryCache:
    """The CacheStore port in a dict, with the DynamoDB adapter's conditions
    (adapters/cache_table.py); ``calls`` counts each method's use."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def get_entry(self, key: str) -> CacheEntry | None:
        with self._lock:
            self.calls["get_entry"] += 1
            entry = self.entries.get(key)
            return _copied(entry) if entry is not None else None

    def claim_entry(  # noqa: PLR0913 - the port's signature
        self,
        key: str,
        claimant: str,
        lease_until: float,
        now: float,
        replacing: str | None,
        data: dict[str, Any],
    ) -> bool:
        with self._lock:
            self.calls["claim_entry"] += 1
            entry = self.entries.get(key)
            free = (
                entry is None
                or entry.status == "failed"
                or (entry.status == "downloading" and (entry.lease_until or 0) < now)
                or (entry.status == "downloading" and entry.claimant == claimant)
                or (
                    replacing is not None
                    and entry.status == "ready"
                    and entry.claimant == replacing
                )
            )
            if not free:
                return False
            waiters = entry.waiters if entry is not None else set()
            self.entries[key] = CacheEntry(
                key, "downloading", claimant, lease_until, waiters, _copied(data)
            )
            return True

    def add_waiter(self, key: str, waiter: str) -> bool:
        with self._lock:
            self.calls["add_waiter"] += 1
            entry = self.entries.get(key)
            if entry is None or entry.status != "downloading":
                return False
            entry.waiters.add(waiter)
            return True

    def settle_entry(
        self, key: str, claimant: str, status: str, data: dict[str, Any]
    ) -> set[str] | None:
        with self._lock:
            self.calls["settle_entry"] += 1
            entry = self.entries.get(key)
            if entry is None or entry.status != "downloading" or entry.claimant != claimant:
                return None
            waiters = set(entry.waiters)  # kept: a redelivered end tells them again
            self.entries[key] = CacheEntry(key, status, claimant, None, set(waiters), _copied(data))
            return waiters

    def put_entry(self, entry: CacheEntry) -> None:
        with self._lock:
            self.calls["put_entry"] += 1
            self.entries[entry.key] = _copied(entry)
