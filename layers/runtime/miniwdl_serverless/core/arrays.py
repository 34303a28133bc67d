"""A scatter of one task call as AWS Batch array jobs: the plan, the index file, the child's
command and the decisions on its events. Pure: the controller carries them out.

One SubmitJob with ``arrayProperties.size`` N runs N children, jobs ``<parent>:<index>`` whose
``AWS_BATCH_JOB_ARRAY_INDEX`` is their index, all with the parent's command, resources and
environment (https://docs.aws.amazon.com/batch/latest/userguide/array_jobs.html; sizes 2 to
10,000). So:

* only shards submitted alike go in one array (``shape``): same queue, image, resources,
  environment and timeout; a lone shard, or one whose job id cannot be a record, goes as a
  single job;
* a child finds its shard in the array's **index file**, ``<run dir>/.arrays/<name>.idx``,
  written by the controller before the SubmitJob: record ``i`` (fixed width, so the controller
  reads one record, never the whole file, for an event) holds the job id of the shard child
  ``i`` runs, which is also its call directory relative to the run directory
  (``ids.call_dir``). Nothing on a store item grows with the array's width: the tags carry
  the array's id and the record width;
* the file lives on EFS, which every task can write (docs/architecture.md, rule 4): the
  child's prologue checks what it reads (a number, a record of safe characters, a directory
  under the run directory); the controller checks the record it reads as well, and then that
  the job it names is a shard it submitted in this array (its job item says so), and ignores
  the event otherwise;
* a child that failed is retried as a single job (attempt 1, ``after_failed_child``), with
  miniwdl's rules for retries and ``preemptible`` (``decisions.after_failed_attempt``,
  ``queue_for``): only first attempts run in arrays.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from miniwdl_serverless.core import call_files
from miniwdl_serverless.core.decisions import EventKind, after_failed_attempt, queue_for
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import (
    TAG_ARRAY,
    TAG_ARRAY_RECORD,
    TAG_ATTEMPT,
    TAG_RUN,
    array_job_name,
)
from miniwdl_serverless.core.resources import TaskSubmission

ARRAY_SIZE_LIMIT = 10_000  # AWS Batch: an array job has 2 to 10,000 children
ARRAY_SIZE_MIN = 2
INDEX_DIR = ".arrays"  # in the run directory
RECORD_LIMIT = 257  # a job id is at most a tag value (256 characters: decisions.task_submission)
# What a record may name: a graph job id that is also a relative path with no '.' or '..'
SAFE_JOB_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")
# What the child writes in its call directory once it found it: its index (the controller's
# proof that the command ran there: ``child_ran``)
CHILD_MARKER = "array-index"


def run_command(shell: str, attempt: int = 0) -> str:
    """The end of every job script: the task's command with its stdout and stderr kept (stderr
    also on the job's log), then its exit status. A pipeline, not a process substitution:
    bash waits for the ``tee`` too, which must have written the last lines of stderr.txt before
    the script exits and the container (or the local sandbox) ends and kills what is left.
    stderr.txt is opened before the command starts: the ``tee`` runs beside the command, and
    one that opened the path itself could find a FIFO the command put there and wait forever.
    A retry writes its own ``stdout2.txt``/``stderr2.txt``… (``core/call_files.py``); array
    children are first attempts."""
    stdout, stderr = call_files.streams(attempt)
    return (
        f"exec 3>> ../{stderr}\n"
        f"{shell} ../{call_files.COMMAND} 2>&1 >> ../{stdout} 3>&- | tee -a /dev/fd/3 >&2\n"
        'exit "${PIPESTATUS[0]}"\n'
    )


def recordable(job_id: str) -> bool:
    """Whether an index record can name this job (and its call directory)."""
    return (
        len(job_id) < RECORD_LIMIT
        and SAFE_JOB_ID.match(job_id) is not None
        and not any(part in (".", "..") for part in job_id.split("/"))
    )


@dataclass(frozen=True)
class ShardArray:
    """One array job: the shards its children run, child ``i`` the shard ``job_ids[i]``."""

    job_ids: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.job_ids)

    @property
    def array_id(self) -> str:
        """Deterministic (first shard, size): a repeated submission finds the same array, and
        no two arrays share one (a shard is in at most one array: its first attempt's)."""
        return f"{self.job_ids[0]}+{self.size}"

    @property
    def record(self) -> int:
        """Bytes of one record: the longest job id, then a newline."""
        return max(len(j) for j in self.job_ids) + 1

    def index_bytes(self) -> bytes:
        """The index file: one record per child, the job id padded with spaces."""
        width = self.record - 1
        return "".join(j.ljust(width) + "\n" for j in self.job_ids).encode("ascii")

    def name(self, run_id: str) -> str:
        return array_job_name(run_id, self.array_id)

    def index_path(self, run_id: str, run_dir: str) -> str:
        return os.path.join(run_dir, INDEX_DIR, self.name(run_id) + ".idx")

    def tags(self, run_id: str, run_tags: dict[str, str]) -> dict[str, str]:
        """The run's tags and ours: run, array, record width, attempt 0 (no job tag: a
        controller that knows no arrays takes their events for a foreign job's)."""
        tags = dict(run_tags)
        tags.update(
            {
                TAG_RUN: run_id,
                TAG_ARRAY: self.array_id,
                TAG_ARRAY_RECORD: str(self.record),
                TAG_ATTEMPT: "0",
            }
        )
        return tags


@dataclass(frozen=True)
class ArrayPlan:
    """A scatter's first attempts: these arrays, and these shards as single jobs."""

    arrays: tuple[ShardArray, ...]
    singles: tuple[str, ...]


def plan_arrays(shards: Sequence[tuple[str, Hashable]], limit: int = ARRAY_SIZE_LIMIT) -> ArrayPlan:
    """Shards (job id, shape) in the scatter's order, grouped by shape (in order of first
    appearance), each group split into as few arrays of at most ``limit`` as it takes, of
    near-equal sizes (10,001 shards: 5,001 and 5,000, never a lone remainder); a group of one
    shard, and shards no record can name, go as single jobs."""
    if not ARRAY_SIZE_MIN <= limit <= ARRAY_SIZE_LIMIT:
        raise ValueError(f"array size limit {limit} is not within 2..{ARRAY_SIZE_LIMIT}")
    groups: dict[Hashable, list[str]] = {}
    singles: list[str] = []
    for job_id, shape in shards:
        if recordable(job_id):
            groups.setdefault(shape, []).append(job_id)
        else:
            singles.append(job_id)
    arrays: list[ShardArray] = []
    for members in groups.values():
        if len(members) < ARRAY_SIZE_MIN:
            singles.extend(members)
            continue
        count = -(-len(members) // limit)  # ceiling
        base, extra = divmod(len(members), count)
        start = 0
        for n in range(count):
            size = base + (1 if n < extra else 0)
            arrays.append(ShardArray(tuple(members[start : start + size])))
            start += size
    return ArrayPlan(arrays=tuple(arrays), singles=tuple(singles))


def shape(submission: TaskSubmission) -> Hashable:
    """What children of one array must share: everything SubmitJob takes once for them all."""
    return (
        submission.queue,
        submission.image,
        submission.resources,
        tuple(sorted(submission.environment.items())),
        submission.timeout_seconds,
    )


# ---- the child's command --------------------------------------------------------------------


def array_script(run_dir: str, index_path: str, shell: str = "/bin/bash") -> str:
    """The children's bash script: find the call directory from ``AWS_BATCH_JOB_ARRAY_INDEX``
    and the index file, then what ``controller/task_call.py:job_script`` runs for one call.

    Only bash builtins (the image needs only bash: docs/architecture.md, rule 6). The index
    must be a number below 10,000, the record safe characters naming no '.' or '..', and its
    ``work`` directory, links resolved, inside the run directory; else the child exits 3
    having written nothing anywhere (no ``CHILD_MARKER``: ``child_ran`` is False).
    """
    return (
        f"run_dir={shlex.quote(run_dir)}\n"
        f"index={shlex.quote(index_path)}\n"
        'fail() { echo "miniwdl-serverless array child: $*" >&2; exit 3; }\n'
        "i=${AWS_BATCH_JOB_ARRAY_INDEX-}\n"
        'case $i in ""|*[!0-9]*) fail "no array index: \'$i\'";; esac\n'
        '[ "${#i}" -le 4 ] || fail "array index out of range: $i"\n'
        "i=$((10#$i))\n"
        '{ [ -f "$index" ] && [ ! -L "$index" ]; } || fail "no index file: $index"\n'
        'mapfile -t -s "$i" -n 1 record < "$index" || fail "cannot read $index"\n'
        'shard=${record[0]-}\nshard=${shard%"${shard##*[! ]}"}\n'
        'case $shard in ""|[./]*|*[!A-Za-z0-9_./-]*) fail "no call at index $i";; esac\n'
        'case /$shard/ in */./*|*/../*|*//*) fail "bad call at index $i: $shard";; esac\n'
        'root=$(cd -P -- "$run_dir" && pwd -P) || fail "no run directory"\n'
        'work=$(cd -P -- "$run_dir/$shard/work" && pwd -P) || fail "no directory for $shard"\n'
        'case $work in "$root"/*) ;; *) fail "$shard is outside the run directory";; esac\n'
        'cd -- "$work"\n'
        f"printf '%s\\n' \"$i\" > ../{CHILD_MARKER}\n"
        f"{run_command(shell)}"
    )


def array_submission(  # noqa: PLR0913 - the array, its first shard's submission, and where
    array: ShardArray,
    first: TaskSubmission,
    run_id: str,
    run_dir: str,
    run_tags: dict[str, str],
    shell: str = "/bin/bash",
) -> TaskSubmission:
    """The array job: the first shard's submission (every shard's, by ``shape``) with the
    array's name, tags, script and size."""
    return replace(
        first,
        name=array.name(run_id),
        tags=array.tags(run_id, run_tags),
        script=array_script(run_dir, array.index_path(run_id, run_dir), shell),
        command=None,
        array_size=array.size,
    )


# ---- a child's events -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChildRef:
    """Which array and index an event is of, and where its record lies in the index file."""

    run_id: str
    array_id: str
    parent_batch_id: str
    index: int
    record: int

    @property
    def offset(self) -> int:
        return self.index * self.record

    def shard(self, data: bytes) -> str | None:
        """The job id record ``index`` names (``data``: the ``record`` bytes read at
        ``offset``), or None if it is no record we write (the file is on EFS: rule 4)."""
        if len(data) != self.record or not data.endswith(b"\n"):
            return None
        try:
            text = data[:-1].decode("ascii").rstrip(" ")
        except UnicodeDecodeError:
            return None
        return text if recordable(text) else None


def child_ref(detail: BatchJobDetail) -> ChildRef | None:
    """The array child an event is of (None: not one, or not one of ours). Its tags are the
    parent's; if an event came without them, DescribeJobs of the parent has them."""
    child = detail.array_child
    if child is None or not detail.run_id or not detail.array_id or not detail.array_record:
        return None
    parent, index = child
    return ChildRef(detail.run_id, detail.array_id, parent, index, detail.array_record)


def child_ran(marker: str | None, index: int) -> bool:
    """Whether the child's command ran in the call directory: the marker it writes there
    holds its index (``array_script``)."""
    return marker is not None and marker.strip() == str(index)


def classify_array_event(detail: BatchJobDetail, ran: bool) -> EventKind:
    """What an array job's event means: the parent's are ignored (the children's say it all);
    a child's as a single job's (``decisions.classify_job_event``), except that a child whose
    prologue found no call directory did not run its command, whatever its exit code."""
    if detail.is_array_parent:
        return EventKind.ARRAY_PARENT
    if detail.status in ("STARTING", "RUNNING"):
        return EventKind.STARTED
    if detail.status not in ("SUCCEEDED", "FAILED"):
        return EventKind.OTHER
    if detail.exit_code is None:
        if detail.status == "SUCCEEDED":
            return EventKind.OTHER  # Batch always reports a container's exit code
        return EventKind.INTERRUPTED if detail.interrupted else EventKind.FAILED_WITHOUT_EXIT
    if not ran:
        return EventKind.FAILED_WITHOUT_EXIT
    return EventKind.SUCCEEDED if detail.status == "SUCCEEDED" else EventKind.FAILED_WITH_EXIT


@dataclass(frozen=True)
class ChildRetry:
    """A failed child's shard again, as a single job: this attempt, on this queue."""

    attempt: int
    interruptions: int
    queue: str


def after_failed_child(
    runtime: dict[str, Any], interrupted: bool, queue: str | None, fallback: str | None
) -> ChildRetry | None:
    """A child is its shard's attempt 0: retried (as a single job, attempt 1) by the rules of
    any attempt, an interruption using up ``preemptible`` first; None: the shard failed."""
    after = after_failed_attempt(runtime, 0, 0, interrupted)
    if not after.retry:
        return None
    preemptible = int(runtime.get("preemptible") or 0)
    return ChildRetry(
        attempt=1,
        interruptions=after.interruptions,
        queue=queue_for(queue, fallback, preemptible, after.interruptions),
    )


# ---- arrays of queued submissions (the submitter's) ----------------------------------------


def members_script(call_dirs: Sequence[str], shell: str = "/bin/bash") -> str:
    """The children's bash script when the submission itself holds which call each index
    runs (nothing on EFS that a task could rewrite): a ``case`` on
    ``AWS_BATCH_JOB_ARRAY_INDEX``, then what ``controller/task_call.py:job_script`` runs for
    one call. An index without a call exits 3 having written nothing."""
    cases = "".join(f"  {i}) call={shlex.quote(d)};;\n" for i, d in enumerate(call_dirs))
    return (
        'fail() { echo "miniwdl-serverless array child: $*" >&2; exit 3; }\n'
        "case ${AWS_BATCH_JOB_ARRAY_INDEX-} in\n"
        f"{cases}"
        "  *) fail \"no call at index '${AWS_BATCH_JOB_ARRAY_INDEX-}'\";;\n"
        "esac\n"
        'cd -- "$call/work" || fail "no directory $call"\n'
        f"printf '%s\\n' \"$AWS_BATCH_JOB_ARRAY_INDEX\" > ../{CHILD_MARKER}\n"
        f"{run_command(shell)}"
    )


def queued_array_name(run_id: str, keys: Sequence[str]) -> str:
    """The array job of these queued submissions: named from their keys (a redelivery of the
    same items names the same array, and finds it by that name)."""
    digest = hashlib.sha256("\n".join(keys).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return array_job_name(run_id, f"q{digest}-{len(keys)}")


def groups_of(shapes: Sequence[Hashable | None], limit: int = ARRAY_SIZE_LIMIT) -> list[list[int]]:
    """Positions of the items that go together as one array job: the same shape (None: an
    item that goes alone), at least ARRAY_SIZE_MIN of them, at most ``limit``; the rest alone.
    Groups in the order of their first item."""
    by_shape: dict[Hashable, list[int]] = {}
    alone: list[list[int]] = []
    for position, found in enumerate(shapes):
        if found is None:
            alone.append([position])
        else:
            by_shape.setdefault(found, []).append(position)
    groups = list(alone)
    for members in by_shape.values():
        for start in range(0, len(members), limit):
            part = members[start : start + limit]
            groups += [part] if len(part) >= ARRAY_SIZE_MIN else [[p] for p in part]
    return sorted(groups, key=lambda g: g[0])
