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

from miniwdl_serverless.core.resources import Resources, TaskSubmission

SUBMIT = "submit"  # a Batch job to submit (the submitter's, outside the VPC)
OFFERS = "offers"  # jobs to offer again: claim and evaluate what is ready (the work function's)
EXPAND = "expand"  # a range of a scatter's shards to create (the work function's)
REFUSED = "refused"  # Batch refused a submission: the attempt failed (the work function's)
ARRAY = "array"  # an array job's children, by index (read by the advance function; no one's)
WAITERS = "waiters"  # jobs waiting for one outside job (a record, read when it completes)
RELEASE = "release"  # that job completed: give each waiting job its count back, offer it
GRAPH_KINDS = (OFFERS, EXPAND, REFUSED, RELEASE)
DELIVERED_KINDS = (SUBMIT, *GRAPH_KINDS)  # what the stream's filters hand on (not ARRAY)

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
        if kind not in (SUBMIT, ARRAY, WAITERS, *GRAPH_KINDS) or not isinstance(run_id, str):
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


def graph_work(item: WorkItem) -> Offers | ExpandRange | Refused | Release:
    if item.kind == RELEASE:
        return Release(str(item.body["group"]))
    if item.kind == REFUSED:
        return Refused(queued_submission(_without(item, "error")), str(item.body["error"]))
    if item.kind == OFFERS:
        return Offers([(str(j), str(c)) for j, c in item.body["offers"]])
    body = item.body
    return ExpandRange(str(body["section"]), int(body["start"]), int(body["stop"]))


def unreadable(item: WorkItem) -> str | None:
    """Why a delivered item cannot be handled (None: it can). Such an item is skipped and
    logged, never retried: the stream would otherwise hand the same batch back until the
    record expires, holding up every run's work behind it."""
    try:
        if item.kind == SUBMIT:
            queued_submission(item)
        elif item.kind in GRAPH_KINDS:
            graph_work(item)
        else:
            return f"kind {item.kind!r} is not delivered"
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


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
