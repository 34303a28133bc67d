"""What the controller needs from the world, in its own words. Adapters (``adapters/``) hold
every SDK detail; none of their exceptions crosses a port, only the ones defined here.

Conditional writes answer with the record as it is after the write, or ``None`` (or False)
when the store's state did not allow it: that is an expected outcome, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.localizing import Remote, Stamp
from miniwdl_serverless.core.reconciling import DeadLetter
from miniwdl_serverless.core.records import Job, Run
from miniwdl_serverless.core.resources import TaskSubmission
from miniwdl_serverless.core.safe_fs import UnsafePath
from miniwdl_serverless.core.uploads import Transfer
from miniwdl_serverless.core.work import Budget, WorkItem

__all__ = ["UnsafePath"]  # raised by RunFiles (core/safe_fs.py): an OSError


class PortError(Exception):
    """An adapter could not do what was asked (the SDK's own error is chained as the cause)."""


class TransientError(PortError):
    """Throttling, a 5xx, a conflict or a timeout that outlasted the adapter's retries: the
    invocation fails so that AWS delivers the event again; the run does not fail."""


class Throttled(TransientError):
    """A TransientError whose every try was refused by throttling: nothing was done (so a
    SubmitJob that was throttled can be tried again without looking the job up first)."""


class StoreError(PortError):
    """The store could not do what was asked (other than a condition not being met)."""


class MissingJob(StoreError):
    """A completion named a dependent that does not exist (a planning bug, never retried), or
    ``update_job`` named a job that does not exist."""


class Conflict(StoreError):
    """A write kept losing against concurrent writers."""


@dataclass(frozen=True)
class LeaseTake:
    """One ``renew_lease`` of ``RunStore.take_leases``."""

    job_id: str
    attempt: int
    held_until: float
    until: float
    holder: str | None = None
    fields: dict[str, Any] | None = None


@dataclass(frozen=True)
class Started:
    """A Batch job's RUNNING event, as ``RunStore.note_started`` checks and records it."""

    attempt: int
    batch_job_name: str
    batch_job_id: str
    log_stream: str
    started_at: float


class RunStore(Protocol):
    """The runs and jobs of every run; one partition (a run's jobs) per run."""

    def create_run(self, run: Run) -> bool:
        """Create the run; False if it exists already (a retried start)."""

    def put_run(self, run: Run) -> None:
        """Write the whole run record (re-planning a run that never got going)."""

    def get_run(self, run_id: str) -> Run | None: ...

    def set_run_status(
        self, run_id: str, status: str, expected: Iterable[str], **fields: Any
    ) -> bool:
        """Move the run to ``status`` if it is in one of ``expected`` (also sets ``fields``);
        an ended run gets ``finished_at`` and ``expires_at``."""

    def mark_answered(self, run_id: str) -> None:
        """The answer the run owed its token was sent: remove ``answer_due``."""

    def record_upload(self, run_id: str, folder: str) -> None:
        """Every output of the run is in ``folder`` (``s3upload``), with its outputs.json."""

    def count(self, run_id: str, **deltas: int) -> None:
        """Add to the run's progress counters (best effort, outside any transaction)."""

    def put_new_jobs(self, jobs: list[Job], *, expires_at: int) -> set[str]:
        """Create the jobs that do not exist yet, each expiring (the jobs table's TTL) at
        ``expires_at``; returns the ids this call created. A job that so far exists only as
        registered waiters keeps them. ``awaiting`` is a set."""

    def register_waiter(self, run_id: str, job_id: str, waiter: str, *, expires_at: int) -> bool:
        """Ask that ``waiter`` be decremented when ``job_id`` completes (even before that job
        exists: the waiters are then kept in a stub, which expires at ``expires_at`` unless
        the job is created). False if it has completed already."""

    def get_job(self, run_id: str, job_id: str) -> Job | None: ...

    def get_run_and_job(self, run_id: str, job_id: str) -> tuple[Run | None, Job | None]:
        """The run and one of its jobs, read together (one request: a Batch event's reads)."""

    def get_jobs(
        self, run_id: str, job_ids: Iterable[str], readiness_only: bool = False
    ) -> dict[str, Job]:
        """Several jobs at once; ``readiness_only`` reads only what readiness needs."""

    def query_jobs(
        self, run_id: str, statuses: Iterable[str] | None = None, *, prefix: str = ""
    ) -> Iterator[Job]:
        """Every job of a run (optionally in these statuses): failure and cancel paths only.
        With ``prefix``, only the jobs whose id begins with it, in id order (a range of the
        partition: a scatter's gather reads its shards so)."""

    def claim(self, run_id: str, job_id: str, claimant: str) -> Job | None:
        """Claim a ready job (nothing pending; waiting, or already this claimant's)."""

    def mark_running(
        self, run_id: str, job_id: str, attempt: int, resubmit: bool = False, **fields: Any
    ) -> Job | None:
        """Take ``attempt`` for submission: from the claim, from the previous attempt, or with
        ``resubmit`` from a submitter that may have died (``attempt`` running with no Batch
        job id, and its ``lease_until`` passed or absent)."""

    def renew_lease(  # noqa: PLR0913 - the attempt, the lease held, the new one and its holder
        self,
        run_id: str,
        job_id: str,
        attempt: int,
        held_until: float,
        until: float,
        holder: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Extend the lease on ``attempt`` to ``until`` if it is still the one held (its
        ``lease_until`` is ``held_until``) and no Batch job is recorded; False: lost.
        ``holder``: who holds it from now on (``lease_holder``: a submitter's work item);
        ``fields``: set with it (what preparing the attempt computed, in the same write)."""

    def take_leases(self, run_id: str, takes: list[LeaseTake]) -> set[str]:
        """``renew_lease`` of each (distinct jobs of one run), in as few requests as it can (a
        transaction of up to 100: a stream batch's submissions); the job ids taken."""

    def record_batch_job(self, run_id: str, job_id: str, attempt: int, batch_job_id: str) -> bool:
        """The Batch job of ``attempt``, unless one is recorded or the attempt moved on."""

    def record_batch_jobs(self, run_id: str, records: list[tuple[str, int, str]]) -> set[str]:
        """``record_batch_job`` of each (job id, attempt, Batch job id; distinct jobs of one
        run), in as few requests as it can; the job ids recorded."""

    def note_started(self, run_id: str, job_id: str, started: Started) -> Job | None:
        """When the Batch job of the attempt started and its log stream, in one conditional
        write and no read: only if the job runs that attempt as that Batch job (by name, and
        by id once recorded) and its start was not noted before. The job after the write;
        None if the condition failed (the caller then reads the job to see why)."""

    def stop_awaiting(self, run_id: str, job_id: str, dependency: str) -> Job | None:
        """Give back the count of an outside ``dependency`` that completed before the job
        could register as its waiter: remove it from ``awaiting`` and decrement ``pending``,
        once (None if it is not in ``awaiting``: given back before, or never counted)."""

    def update_job(self, run_id: str, job_id: str, **fields: Any) -> Job:
        """Set fields (None removes one); no condition."""

    def complete(
        self, job: Job, outputs: Any, expected_attempt: int | None = None
    ) -> list[str] | None:
        """Mark ``job`` (as read) done with ``outputs`` and decrement its dependents and
        waiters, as one atomic step (several guarded steps past one transaction's size).
        Returns what it decremented; None if it was completed before, or the attempt moved on.
        Raises MissingJob if a dependent does not exist (nothing changes then)."""

    def tally_shard(self, job: Job, counts: Mapping[str, int]) -> bool:
        """Count the completed shard ``job`` (``job.tally``) in its bucket, without a
        transaction and idempotently (a shard is counted once however often this is called:
        call it only once ``job`` is done), with its share of the run's counters (those of
        ``counts`` in ``BUCKET_COUNTERS``; ``store_rules.bucket_counts``), which the bucket
        keeps instead of the run item: one write a shard, not two. True if its bucket now
        holds all its shards."""

    def tallied(self, run_id: str) -> dict[str, int]:
        """The run's counters its buckets hold (``tally_shard``'s ``counts``), summed: added
        to the run item's own, they are the run's counts."""

    def tally_bucket(self, job: Job) -> Job | None:
        """Count the full bucket of the shard ``job`` into its gather's ``pending``, once per
        bucket (a conditional write on the gather, no transaction). Returns the gather as it
        is after this (readiness fields; counted by this call or before); None if the gather
        does not exist."""

    def fail_job(self, run_id: str, job_id: str, error: dict[str, Any]) -> bool: ...


class RunFiles(Protocol):
    """The run directories on the shared file system (EFS), which tasks can write too.

    Every path lies under ``root`` (the EFS mount; ``/`` in local mode) and is reached without
    following a symlink: a link (or a non-directory) at the path or on the way to it is refused
    with ``UnsafePath``, for reads and writes alike; nothing outside changes. Reads take regular
    files only, up to a limit. Writes replace a file through a unique temporary name created
    exclusively, so concurrent writers of one file never collide."""

    root: str

    def create_run_dir(self, root: str, name: str | None) -> tuple[str, bool]:
        """``root/name`` (``_2``, ``_3``, ... if taken), or ``root`` itself when name is None,
        and whether this call created it. ``root`` is resolved (its real path is returned) and
        must lie under the file system's root (UnsafePath otherwise)."""

    def inside_root(self, path: str) -> bool:
        """Whether the real path of ``path`` lies under the file system's root."""

    def make_dirs(self, path: str) -> None: ...

    def write_text(self, path: str, text: str) -> None:
        """Replace the file atomically."""

    def read_text(self, path: str, limit: int = ...) -> str:
        """A regular file's text, refused past ``limit`` bytes."""

    def write_json(self, path: str, data: Any) -> None:
        """Replace a JSON file atomically."""

    def store_value(self, value: Any, spill_dir: str, name: str) -> Any:
        """The value itself if it fits in a store item, else a pointer to a spill file with
        the value's digest."""

    def load_value(self, stored: Any) -> Any:
        """Inverse of ``store_value``; a spill file whose digest changed is refused."""

    def append_log(self, path: str, line: str) -> None: ...

    def prepare_call(
        self,
        call_dir: str,
        command: str,
        inputs: dict[str, str],
        copy_inputs: bool,
        attempt: int = 0,
    ) -> None:
        """Write ``command``, make the attempt's working directory (``work/``, a retry's
        ``work2/``…: ``core/call_files.py``), link (or copy) each input (host path → path in
        the call directory), and start the attempt's empty ``stdout.txt`` and ``stderr.txt``
        (``stdout2.txt``…). An earlier attempt's files are left where they are. What a task
        put at these names is never followed: a link, or anything of the wrong kind, is
        removed first, and the inputs' folder is made afresh; this attempt's own streams and
        working directory, there already (a resubmission), are kept: a Batch job of the
        attempt may be writing them. A copied input must be a regular file whose real path
        lies under the root."""

    def point_last(self, parent: str, name: str) -> None:
        """miniwdl's ``_LAST`` in ``parent``: a link to the run directory ``name``, replacing
        a link there (never a file or directory a task put there)."""

    def link_output(self, link: str, target: str, hard: bool) -> None:
        """An output's link under the run's ``out/`` (replacing one there): a symlink holding
        ``target``, or with ``hard`` a hard link to the regular file ``target`` (whose real
        path must lie under the root; nothing on the way is followed)."""

    def exists(self, path: str) -> bool:
        """Exists, and its real path lies under the root (so do ``is_dir`` and ``is_file``)."""

    def is_dir(self, path: str) -> bool: ...

    def is_file(self, path: str) -> bool: ...

    def is_own_file(self, path: str, root: str) -> bool:
        """A regular file, not a link, whose real path lies under ``root``."""

    def real_path(self, path: str) -> str: ...

    def file_size(self, path: str) -> int:
        """The size of a regular file whose real path lies under the root, 0 for anything
        else (an estimate: nothing is read)."""

    def list_files(self, path: str) -> list[str]:
        """The regular files under a directory, at any depth (absolute paths, sorted); a
        symlink (to a file or a directory) is not followed and not listed."""

    def open_new(self, path: str) -> BinaryIO:
        """A new file to write (a download), created exclusively, directories made on the way;
        never through a link."""

    def move(self, source: str, target: str) -> None:
        """Rename a file or directory into place (``target`` must not exist); no link followed
        on the way to either."""

    def stamp(self, path: str) -> Stamp | None:
        """Size, newest mtime and count of a regular file, or of the regular files of a
        directory (links are not followed); None if there is none."""

    def remove_tree(self, path: str) -> None:
        """Delete a directory under the root (never the root itself) and what it holds, following
        no link on the way or inside."""


class BatchJobs(Protocol):
    def find(self, name: str, queue: str) -> str | None:
        """The Batch job id of a job with this name in the queue, if one was submitted."""

    def submit(self, submission: TaskSubmission) -> str:
        """Submit, unless a job of that name exists already; returns its Batch job id."""

    def terminate(self, batch_job_id: str, reason: str) -> None: ...

    def describe(self, batch_job_ids: list[str]) -> list[BatchJobDetail]:
        """The jobs Batch knows of these ids, as "Job State Change" details (DescribeJobs,
        at most 100 ids a call); ids Batch does not know are left out."""


class LiveRuns(Protocol):
    """The stack's executions that are still running (one per run; the name is the run id)."""

    def running(self) -> Iterator[str]:
        """The run ids of the executions still running."""


class DeadLetters(Protocol):
    """The stack's dead-letter queue: events and invocations that failed after every retry."""

    def receive(self, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` messages, hidden from other readers for a while; one not deleted
        comes back later."""

    def delete(self, letter: DeadLetter) -> None:
        """The message was dealt with: remove it from the queue."""


class Orchestrator(Protocol):
    """The run's Step Functions execution, waiting on the Start task's token."""

    def send_success(self, token: str, output: dict[str, Any]) -> bool:
        """True once Step Functions has the answer, or the token no longer takes one (used,
        expired, timed out: not an error); False if it could not be told (throttled,
        unreachable), so the answer is still owed."""

    def send_failure(self, token: str, error: str, cause: str) -> bool:
        """As ``send_success``."""


class Uploads(Protocol):
    """The object store outputs are uploaded to (``s3upload``). An object already there with
    the same content (its SHA-256, kept as the object's metadata) is not sent again: the
    Transfer says ``skipped``."""

    def upload_file(self, path: str, uri: str) -> Transfer:
        """Upload a regular file under the root (read without following a link; OSError
        otherwise, or when it changed while it was sent: no object is left then)."""

    def put_json(self, uri: str, data: Any) -> Transfer: ...

    def get_json(self, uri: str) -> Any:
        """What ``put_json`` put there (a re-invoked Finish reads its earlier upload)."""


class WorkflowSources(Protocol):
    """Where submitted workflows are read from (EFS paths, https:// and s3:// URIs)."""

    def fetch(self, uri: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of the document."""


class Remotes(Protocol):
    """Where URI inputs are downloaded from (s3://, http(s)://, ftp://, gs://). Raises
    ``core/localizing.py:DownloadError`` naming the URI and why, for anything but a transient
    failure (``TransientError``)."""

    def probe(self, uri: str, directory: bool, requester_pays: bool) -> Remote:
        """The URI's current version and size (a prefix's objects for a Directory)."""

    def fetch(self, uri: str, remote: Remote, requester_pays: bool, out: BinaryIO) -> int:
        """Write one object's bytes to ``out``; the number written."""


@dataclass
class CacheEntry:
    """One item of the cache table: a download (``download:…``) or a call (``call:…``)."""

    key: str
    status: str  # downloading, ready, failed
    claimant: str | None = None
    lease_until: float | None = None
    waiters: set[str] = field(default_factory=set)
    data: dict[str, Any] = field(default_factory=dict)


class CacheStore(Protocol):
    """The cache table, shared by every run of the stack: downloads (claimed by one
    downloader, waited for by the others) and call-cache entries."""

    def get_entry(self, key: str) -> CacheEntry | None: ...

    def claim_entry(  # noqa: PLR0913 - the entry, who, until when, and what it is
        self,
        key: str,
        claimant: str,
        lease_until: float,
        now: float,
        replacing: str | None,
        data: dict[str, Any],
    ) -> bool:
        """Become the entry's downloader: it is absent, failed, its claim's lease ran out, it is
        already this claimant's, or (``replacing``) a ready entry of that claimant found stale.
        ``data`` says what is being downloaded."""

    def add_waiter(self, key: str, waiter: str) -> bool:
        """A run waits for the entry's download; False if it is no longer downloading."""

    def settle_entry(
        self, key: str, claimant: str, status: str, data: dict[str, Any]
    ) -> set[str] | None:
        """End the claimant's download as ``ready`` or ``failed`` with ``data``; returns the
        waiters to tell (the runs; kept on the entry), None if the claim is no longer this
        one's."""

    def put_entry(self, entry: CacheEntry) -> None:
        """A call-cache entry (the last writer wins: equal keys mean equal calls)."""


class WorkQueue(Protocol):
    """The work table: items handed on to the submitter and the work function (its stream
    delivers each new key once, at least once)."""

    def put(self, items: list[WorkItem]) -> None:
        """Store the items durably; an item whose key is stored already is not handed on again."""

    def get(self, key: str) -> WorkItem | None:
        """The item with this key, as stored (an array job's children: core/work.py)."""


class Metrics(Protocol):
    def count(self, name: str, value: int = 1) -> None: ...


@dataclass
class Ports:
    """Everything outside the controller, plus the stack's defaults and its bucket (whose
    control prefixes a run may not upload into, core/stack_bucket.py)."""

    store: RunStore
    files: RunFiles
    batch: BatchJobs
    orchestrator: Orchestrator
    uploads: Uploads
    metrics: Metrics
    sources: WorkflowSources
    work: WorkQueue
    default_queue: str | None = None
    default_fallback_queue: str | None = None
    default_gpu_queue: str | None = None  # the stack's queue of GPU instances, if it has one
    stack_bucket: str | None = None
    remotes: Remotes | None = None  # None: URI inputs are refused (a harness without them)
    cache: CacheStore | None = None
    budget: Budget = field(default_factory=Budget)  # how much one invocation does (core/work.py)
