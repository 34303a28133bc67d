"""Work one invocation hands on to another, as items of the work table (its stream delivers
them): a prepared Batch submission for the paced submitter, and the part of a run's graph
work that an invocation left when it reached its budget (no invocation does work that grows
with a scatter's width or a run's size)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.resources import Resources, TaskSubmission

SUBMIT = "submit"  # a Batch job to submit (the submitter's, outside the VPC)
OFFERS = "offers"  # jobs to offer again: claim and evaluate what is ready (the work function's)
EXPAND = "expand"  # a range of a scatter's shards to create (the work function's)
REFUSED = "refused"  # Batch refused a submission: the attempt failed (the work function's)
ARRAY = "array"  # an array job's children, by index (read by the advance function; no one's)
WAITERS = "waiters"  # jobs waiting for one outside job (a record, read when it completes)
RELEASE = "release"  # that job completed: give each waiting job its count back, offer it
# The in-VPC functions reach only DynamoDB and S3: what they would ask Batch or Step Functions
# goes to the submitter (outside the VPC) as one of these.
TERMINATE = "terminate"  # TerminateJob
ANSWER = "answer"  # SendTaskSuccess / SendTaskFailure for a Start task's token
LOOKUP = "lookup"  # a resubmission: find the attempt's Batch job by name before preparing it
DESCRIBE = "describe"  # DescribeJobs of download jobs whose end may be lost: replay the ended
# ...and what the functions outside (the submitter, the reconciler) hand to the work function:
RESUBMIT = "resubmit"  # prepare and submit an attempt again (no Batch job of its name exists)
REPLAY = "replay"  # a Batch job's state change to take through the advance path
SETTLE = "settle"  # a quiet run: pick up what dead invocations left, or fail it (RunStuck)
OUTSIDE_KINDS = (SUBMIT, TERMINATE, ANSWER, LOOKUP, DESCRIBE)  # the submitter's
GRAPH_KINDS = (OFFERS, EXPAND, REFUSED, RELEASE, RESUBMIT, REPLAY, SETTLE)  # the work function's
DELIVERED_KINDS = (*OUTSIDE_KINDS, *GRAPH_KINDS)  # what the stream's filters hand on (not ARRAY)

# The invocation's remaining time in seconds (the handlers set it from the Lambda context).
remaining_seconds: ContextVar[Callable[[], float]] = ContextVar(
    "remaining_seconds", default=lambda: math.inf
)
WORK_TTL_SECONDS = 7 * 24 * 3600  # an item is kept a week, for the record (then TTL deletes it)


@dataclass(frozen=True)
class WorkItem:
    kind: str
    run_id: str
    key: str  # the item's key: putting the same item twice hands it on once
    body: dict[str, Any]

    def to_item(self, now: float) -> dict[str, Any]:
        """The work table's item (plain attributes; the body as JSON)."""
        return {
            "key": self.key,
            "kind": self.kind,
            "run_id": self.run_id,
            "body": json.dumps(self.body, sort_keys=True, separators=(",", ":")),
            "expires_at": int(now + WORK_TTL_SECONDS),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WorkItem:
        """An item read back (from the table or its stream's new image); ValueError if it is not
        one of ours."""
        kind, run_id, key, body = (item.get(k) for k in ("kind", "run_id", "key", "body"))
        if kind not in (ARRAY, WAITERS, *DELIVERED_KINDS) or not isinstance(run_id, str):
            raise ValueError(f"not a work item: kind {kind!r}")
        try:
            data = json.loads(body) if isinstance(body, str) else None
        except json.JSONDecodeError as error:
            raise ValueError(f"work item {key!r}: its body is not JSON ({error})") from None
        if not isinstance(key, str) or not isinstance(data, dict):
            raise ValueError(f"work item {key!r} has no body")
        return cls(str(kind), run_id, key, data)


# -- submissions --
@dataclass(frozen=True)
class QueuedSubmission:
    """A Batch job to submit, and where its id goes: a call's attempt (held under ``lease``),
    or a download cache entry (claimed by ``claimant``)."""

    submission: TaskSubmission
    run_id: str
    job_id: str | None = None  # a call's attempt
    attempt: int = 0
    lease: float = 0.0
    entry: str | None = None  # a download's cache entry
    claimant: str | None = None
    entry_data: dict[str, Any] = field(default_factory=dict)
    call_dir: str = ""  # a call's: where an array job's child runs it
    array_ok: bool = False  # may run as a child of an array job with others of its shape
    # what preparing the attempt computed (task_state, queue, runtime), written on the call's
    # job item by the submitter's take of the lease: one write, not one more of its own
    prepared: dict[str, Any] = field(default_factory=dict)


WRITE_BATCH = 25  # items a BatchWriteItem takes: submissions handed on together, so many


def submit_item(queued: QueuedSubmission) -> WorkItem:
    body = asdict(queued)
    body["submission"]["resources"] = asdict(queued.submission.resources)
    # one item per lease taken on the attempt: a resubmission after a lost one is a new item
    key = f"{SUBMIT}#{queued.submission.name}#{queued.lease:.6f}"
    return WorkItem(SUBMIT, queued.run_id, key, body)


def queued_submission(item: WorkItem) -> QueuedSubmission:
    body = dict(item.body)
    submission = dict(body.pop("submission"))
    submission["resources"] = Resources(**submission["resources"])
    return QueuedSubmission(TaskSubmission(**submission), **body)


def array_key(name: str) -> str:
    return f"{ARRAY}#{name}"


def array_item(run_id: str, name: str, children: list[str]) -> WorkItem:
    """Which call each child of the array job ``name`` runs (its index in ``children``)."""
    return WorkItem(ARRAY, run_id, array_key(name), {"children": children})


def waiters_item(run_id: str, dependency: str, jobs: list[str]) -> WorkItem:
    """A group of jobs waiting for ``dependency`` (the key: a digest of both: the same jobs
    may wait for several)."""
    digest = hashlib.sha256("\n".join([dependency, *sorted(jobs)]).encode()).hexdigest()[:24]
    body = {"dependency": dependency, "jobs": sorted(jobs)}
    return WorkItem(WAITERS, run_id, f"{WAITERS}#{run_id}#{digest}", body)


def release_item(run_id: str, group: str) -> WorkItem:
    """The group's dependency completed: release its jobs (the work function's)."""
    return WorkItem(RELEASE, run_id, f"{RELEASE}#{group}", {"group": group})


def refused_item(item: WorkItem, error: str) -> WorkItem:
    """Batch refused the item's submission (not throttling: access, a bad queue or image)."""
    body = {**item.body, "error": error}
    return WorkItem(REFUSED, item.run_id, f"{REFUSED}#{item.key}", body)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def terminate_item(batch_job_id: str, reason: str) -> WorkItem:
    """Stop a Batch job (terminating one twice is harmless: one item per job is enough)."""
    body = {"batch_job_id": batch_job_id, "reason": reason}
    return WorkItem(TERMINATE, "", f"{TERMINATE}#{batch_job_id}", body)


def answer_item(token: str, answer: dict[str, Any]) -> WorkItem:
    """Answer a Start task's token: ``{"output": ...}`` or ``{"error": ..., "cause": ...}``.
    A token takes one answer, so one item per token (keyed by its digest: tokens are long)."""
    return WorkItem(ANSWER, "", f"{ANSWER}#{_digest(token)}", {"token": token, **answer})


@dataclass(frozen=True)
class Lookup:
    """An attempt taken for resubmission under ``lease``: is a Batch job of ``name`` in one of
    ``queues`` already (adopt it), or must it be prepared and submitted again?"""

    job_id: str
    attempt: int
    lease: float
    name: str
    queues: list[str]
    reconciling: bool = False


def lookup_item(run_id: str, lookup: Lookup) -> WorkItem:
    key = f"{LOOKUP}#{lookup.name}#{lookup.lease:.6f}"  # one per lease taken on the attempt
    return WorkItem(LOOKUP, run_id, key, asdict(lookup))


def looked_up(item: WorkItem) -> Lookup:
    body = item.body
    queues = [str(q) for q in body["queues"]]
    return Lookup(
        str(body["job_id"]),
        int(body["attempt"]),
        float(body["lease"]),
        str(body["name"]),
        queues,
        bool(body.get("reconciling")),
    )


def describe_item(batch_job_ids: list[str], now: float) -> WorkItem:
    """Ask Batch how these jobs are; those that ended come back as ``replay`` items. Keyed by
    the second it was asked: a later round asks again."""
    ids = sorted(batch_job_ids)
    key = f"{DESCRIBE}#{_digest(*ids)}#{int(now)}"
    return WorkItem(DESCRIBE, "", key, {"batch_job_ids": ids})


@dataclass(frozen=True)
class Resubmission:
    """Prepare and submit ``attempt`` of ``job_id`` again: ``held`` is the lease a lookup found
    no Batch job under (None: take the attempt over first, and look it up)."""

    job_id: str
    attempt: int
    held: float | None = None
    reconciling: bool = False


def resubmit_item(run_id: str, resubmission: Resubmission, origin: str) -> WorkItem:
    """``origin``: what makes it unique (the lookup's key, or the reconciler's round)."""
    key = f"{RESUBMIT}#{run_id}#{resubmission.job_id}#{resubmission.attempt}#{_digest(origin)}"
    return WorkItem(RESUBMIT, run_id, key, asdict(resubmission))


@dataclass(frozen=True)
class Replay:
    """A Batch job's state change (DescribeJobs' job, or a dead-lettered event's detail)."""

    detail: BatchJobDetail


def replay_item(run_id: str, detail: dict[str, Any], origin: str) -> WorkItem:
    """``origin``: what makes it unique (a reconciler's round, a dead letter's id)."""
    name = f"{detail.get('jobId')}#{detail.get('status')}"
    return WorkItem(REPLAY, run_id, f"{REPLAY}#{name}#{_digest(origin)}", {"detail": detail})


@dataclass(frozen=True)
class Settle:
    """The reconciler found the run quiet for ``quiet_after`` seconds at ``now``."""

    quiet_after: float
    now: float


def settle_item(run_id: str, settle: Settle) -> WorkItem:
    return WorkItem(SETTLE, run_id, f"{SETTLE}#{run_id}#{int(settle.now)}", asdict(settle))


# -- graph work --
@dataclass(frozen=True)
class Offers:
    """Jobs to offer again, each with the claimant that may have made it ready."""

    offers: list[tuple[str, str]]


@dataclass(frozen=True)
class ExpandRange:
    """Shards ``start``..``stop`` (exclusive) of the scatter that ``section`` evaluated."""

    section: str
    start: int
    stop: int


@dataclass(frozen=True)
class Release:
    """The waiters group (its work-table key) whose dependency completed."""

    group: str


@dataclass(frozen=True)
class Refused:
    """A submission Batch refused, and why."""

    queued: QueuedSubmission
    error: str


def _without(item: WorkItem, key: str) -> WorkItem:
    body = {k: v for k, v in item.body.items() if k != key}
    return WorkItem(item.kind, item.run_id, item.key, body)


def offers_items(run_id: str, offers: list[tuple[str, str]], chunk: int) -> list[WorkItem]:
    """The offers in items of ``chunk`` each; the key is the content's digest (an invocation
    redone hands on the same items)."""
    items = []
    for start in range(0, len(offers), chunk):
        part = sorted(offers[start : start + chunk])
        digest = hashlib.sha256(json.dumps(part).encode()).hexdigest()[:24]
        body = {"offers": [list(o) for o in part]}
        items.append(WorkItem(OFFERS, run_id, f"{OFFERS}#{run_id}#{digest}", body))
    return items


def expand_items(run_id: str, section: str, width: int, chunk: int) -> list[WorkItem]:
    """A scatter's shards after the first ``chunk``, in ranges of ``chunk``."""
    items = []
    for start in range(chunk, width, chunk):
        stop = min(start + chunk, width)
        body = {"section": section, "start": start, "stop": stop}
        key = f"{EXPAND}#{run_id}#{section}#{start}"
        items.append(WorkItem(EXPAND, run_id, key, body))
    return items


GraphWork = Offers | ExpandRange | Refused | Release | Resubmission | Replay | Settle


def graph_work(item: WorkItem) -> GraphWork:
    body = item.body
    if item.kind == RESUBMIT:
        held = body.get("held")
        return Resubmission(
            str(body["job_id"]),
            int(body["attempt"]),
            None if held is None else float(held),
            bool(body.get("reconciling")),
        )
    if item.kind == REPLAY:
        return Replay(BatchJobDetail.model_validate(body["detail"]))  # unreadable if not one
    if item.kind == SETTLE:
        return Settle(float(body["quiet_after"]), float(body["now"]))
    if item.kind == RELEASE:
        return Release(str(item.body["group"]))
    if item.kind == REFUSED:
        return Refused(queued_submission(_without(item, "error")), str(item.body["error"]))
    if item.kind == OFFERS:
        return Offers([(str(j), str(c)) for j, c in item.body["offers"]])
    return ExpandRange(str(body["section"]), int(body["start"]), int(body["stop"]))


def unreadable(item: WorkItem) -> str | None:
    """Why a delivered item cannot be handled (None: it can). Such an item is skipped and
    logged, never retried: the stream would otherwise hand the same batch back until the
    record expires, holding up every run's work behind it."""
    try:
        if item.kind == SUBMIT:
            queued_submission(item)
        elif item.kind == LOOKUP:
            looked_up(item)
        elif item.kind in OUTSIDE_KINDS:
            _outside_fields(item)
        elif item.kind in GRAPH_KINDS:
            graph_work(item)
        else:
            return f"kind {item.kind!r} is not delivered"
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _outside_fields(item: WorkItem) -> None:
    """The fields the submitter reads of a terminate, answer or describe item."""
    needs = {TERMINATE: ("batch_job_id",), ANSWER: ("token",), DESCRIBE: ("batch_job_ids",)}
    for name in needs[item.kind]:
        if not item.body.get(name):
            raise KeyError(name)
    if item.kind == ANSWER and "output" not in item.body and "error" not in item.body:
        raise KeyError("output")


# -- bounds --
@dataclass(frozen=True)
class Budget:
    """How much one invocation does before it hands the rest on: ``steps`` evaluations and
    submissions, and never past ``reserve`` seconds before its deadline."""

    steps: int = 100
    reserve_seconds: float = 120.0

    def spent(self, steps: int, remaining_seconds: float) -> bool:
        """Also near the deadline, an invocation takes one step: each makes progress."""
        return steps >= self.steps or (steps > 0 and remaining_seconds < self.reserve_seconds)


@dataclass
class Pacer:
    """A token bucket: at most ``rate`` calls a second, ``burst`` at once. ``delay(now)`` takes
    a token and says how long to wait before using it (pure: the caller sleeps)."""

    rate: float
    burst: float = 1.0
    tokens: float = 1.0
    updated: float = -math.inf

    def delay(self, now: float) -> float:
        if self.updated == -math.inf:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def submit_pace(rate: float, concurrency: int) -> Pacer:
    """Each of ``concurrency`` submitter invocations at its share of the account-wide rate."""
    share = rate / max(1, concurrency)
    return Pacer(rate=share, burst=max(1.0, share / 4))
