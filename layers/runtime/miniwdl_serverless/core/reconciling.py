"""The reconciler's decisions as pure functions: what AWS Batch says of a call we hold
``running`` (replay a transition whose event was lost, resubmit a lost submission, or wait),
whether a run with nothing in motion is stuck (and the error that names what it waits for),
and what a dead-letter queue message is. Unit-tested in tests/unit/test_reconciling.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import call_tags
from miniwdl_serverless.core.records import (
    CLAIMED,
    COMPLETING,
    DONE,
    FAILED,
    RUN_RUNNING,
    RUNNING,
    WAITING,
    Job,
    Run,
)

DESCRIBE_LIMIT = 100  # DescribeJobs takes at most 100 job ids
ACTIVE_BATCH_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
STUCK_LISTED = 10  # jobs named in a RunStuck message


@dataclass(frozen=True)
class Rules:
    """How long the reconciler lets the normal paths act before it steps in (seconds).

    * ``replay_after``: a transition Batch reports this long ago whose event our records do
      not show yet (the event may still be on its way: EventBridge and Lambda deliver late).
    * ``resubmit_after``: past a submitter's lease, before its attempt (marked running, no
      Batch job) is submitted again (Lambda's own retries of the submitter come first).
    * ``lost_after``: a Batch job id that DescribeJobs does not know, this long after it was
      submitted, is gone (Batch forgets jobs days after they end).
    * ``quiet_after``: no write on the run for this long (longer than a Lambda invocation and
      its two retries) before "nothing running, nothing ready" fails it.
    """

    replay_after: float = 120.0
    resubmit_after: float = 600.0
    lost_after: float = 3600.0
    quiet_after: float = 1800.0


class Move(Enum):
    """What the reconciler does about one call we hold ``running``."""

    NONE = "none"  # in motion as our records say
    REPLAY = "replay"  # Batch moved on and we did not: replay its transition
    RESUBMIT = "resubmit"  # marked running, never submitted, its submitter gone
    LOST = "lost"  # Batch has no record of its job: nothing will ever come


@dataclass(frozen=True)
class CallVerdict:
    move: Move
    detail: BatchJobDetail | None = None  # the transition to replay
    note: str = ""

    @property
    def in_motion(self) -> bool:
        """Something will still happen for this call (or the reconciler just made it)."""
        return self.move is not Move.LOST


def describe_batches(batch_job_ids: Iterable[str]) -> list[list[str]]:
    """Distinct ids in DescribeJobs-sized batches (order kept)."""
    ids = list(dict.fromkeys(i for i in batch_job_ids if i))
    return [ids[i : i + DESCRIBE_LIMIT] for i in range(0, len(ids), DESCRIBE_LIMIT)]


def call_verdict(
    job: Job, described: BatchJobDetail | None, now: float, rules: Rules = Rules()
) -> CallVerdict:
    """A task call (``batch_job_name`` set) in ``running``, against its Batch job as
    DescribeJobs reports it (None: not found, or no Batch job id recorded)."""
    if not job.batch_job_id:
        held_until = job.lease_until or job.submitted_at or 0.0
        if now - held_until >= rules.resubmit_after:
            return CallVerdict(Move.RESUBMIT, note="submission lost: marked running, no Batch job")
        return CallVerdict(Move.NONE)
    if described is None:
        if now - (job.submitted_at or 0.0) >= rules.lost_after:
            return CallVerdict(Move.LOST, note=f"AWS Batch has no job {job.batch_job_id}")
        return CallVerdict(Move.NONE)
    moved_at = _moved_at(described)
    if moved_at is not None and now - moved_at < rules.replay_after:
        return CallVerdict(Move.NONE)  # its event is probably on the way
    if described.status in ("SUCCEEDED", "FAILED"):
        return CallVerdict(Move.REPLAY, replay_detail(job, described), described.status)
    if described.status in ("STARTING", "RUNNING") and job.started_at is None:
        return CallVerdict(Move.REPLAY, replay_detail(job, described), described.status)
    return CallVerdict(Move.NONE)


def _moved_at(described: BatchJobDetail) -> float | None:
    """When Batch's job reached its current status, as far as DescribeJobs says (seconds)."""
    millis = described.stoppedAt if described.status in ("SUCCEEDED", "FAILED") else None
    millis = millis or described.startedAt
    return millis / 1000.0 if millis else None


def replay_detail(job: Job, described: BatchJobDetail) -> BatchJobDetail:
    """DescribeJobs' job as the "Job State Change" detail it would have sent, named for our
    job (the tags name run, job and attempt; a job that lost its tags gets them back)."""
    tags = dict(described.tags)
    tags.update(call_tags(job.run_id, job.job_id, job.attempt))
    return described.model_copy(update={"tags": tags})


# ---- runs with nothing in motion -----------------------------------------------------------


def last_activity(run: Run, jobs: Iterable[Job]) -> float:
    """The latest moment the run's records show something happening."""
    moments = [run.created_at or 0.0]
    for job in jobs:
        moments += [job.submitted_at or 0.0, job.started_at or 0.0, job.finished_at or 0.0]
        moments.append(job.lease_until or 0.0)
    return max(moments)


def stuck_error(
    run: Run, jobs: list[Job], now: float, quiet_after: float = Rules.quiet_after
) -> RunError | None:
    """A running run none of whose calls is in motion (the caller checked Batch), quiet for
    ``quiet_after`` seconds, with jobs left undone: nothing will ever advance it. The error
    names what is left (up to STUCK_LISTED jobs)."""
    if run.status != RUN_RUNNING or now - last_activity(run, jobs) < quiet_after:
        return None
    by_id = {job.job_id: job for job in jobs}
    left = [line for job in jobs if (line := _why_left(job, by_id))]
    minutes = int((now - last_activity(run, jobs)) // 60)
    shown = "; ".join(left[:STUCK_LISTED]) + ("; ..." if len(left) > STUCK_LISTED else "")
    message = (
        f"no call is running or ready and nothing has happened for {minutes} min; "
        f"left: {shown or 'nothing (the workflow outputs were never collected)'}"
    )
    return RunError.of("RunStuck", message, run=run.run_id, left=left[:STUCK_LISTED])


RECONCILER = "reconcile"  # the claimant of a ready job nobody claimed


def resumable(jobs: list[Job]) -> list[tuple[Job, str]]:
    """Jobs a quiet run left where a dead invocation's re-delivery would have picked them up
    (the recovery markers), each with the claimant to offer it as: completions cut short, a
    scope's ``outputs`` done but its end not carried out, ready jobs nobody claimed, claimed
    jobs never evaluated, sub-workflow calls marked running whose graph was never created."""
    by_id = {job.job_id: job for job in jobs}
    scopes = {job.scope for job in jobs}
    found: list[tuple[Job, str]] = []
    for job in jobs:
        claimant = _resume_as(job, by_id, scopes)
        if claimant is not None:
            found.append((job, claimant))
    return found


def _resume_as(job: Job, by_id: dict[str, Job], scopes: set[str]) -> str | None:
    if job.status.startswith(COMPLETING + "-"):
        return job.job_id
    if job.status == DONE and job.local_id == "outputs":
        parent = by_id.get(job.scope) if job.scope else None
        return job.job_id if not job.scope or (parent and parent.status == RUNNING) else None
    if job.status == WAITING and job.pending <= 0:
        return RECONCILER
    if job.status == DONE and job.tally and _untallied(job, by_id):
        return job.job_id  # its tally may have been cut short: resumed, it is repeated
    if job.status == CLAIMED:
        return job.claimed_by or RECONCILER
    if job.status == RUNNING and not job.batch_job_name and job.job_id not in scopes:
        return job.claimed_by or RECONCILER  # a sub-workflow call whose children never came
    return None


def _untallied(shard: Job, by_id: dict[str, Job]) -> bool:
    """Whether the done ``shard``'s gather still waits for the shard's bucket."""
    assert shard.tally is not None
    gather = by_id.get(shard.tally["gather"])
    counted = gather is not None and shard.tally["bucket"] in (gather.tallied or [])
    return gather is not None and gather.status == WAITING and not counted


def _why_left(job: Job, by_id: dict[str, Job]) -> str | None:
    """What keeps one unfinished job from finishing, in words (None: nothing to say)."""
    if job.status == DONE:
        return None
    if job.status == FAILED:
        return f"{job.job_id} failed, but the run was not failed"
    if job.status.startswith(COMPLETING):
        return f"{job.job_id} stopped part-way through its completion ({job.status})"
    if job.status == CLAIMED:
        return f"{job.job_id} was claimed by {job.claimed_by} and never evaluated"
    if job.status == RUNNING:
        if not job.batch_job_name:
            return None  # a sub-workflow call: its children say what is left
        return f"{job.job_id} runs as Batch job {job.batch_job_id}, which AWS Batch does not know"
    if job.status == WAITING and job.pending <= 0:
        return f"{job.job_id} is ready but was never claimed"
    if job.shards:  # a scatter's gather: ``pending`` is its shards not yet completed
        count, prefix = job.shards["count"], job.shards["prefix"]
        return f"{job.job_id} waits for {job.pending} of its {count} shards ({prefix}*)"
    undone = [d for d in job.deps if d not in by_id or by_id[d].status != DONE]
    if undone:
        return f"{job.job_id} waits for {', '.join(undone)}"
    return f"{job.job_id} waits for {job.pending} completion(s) never counted"


# ---- the dead-letter queue ------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue. EventBridge rule targets dead-letter the event
    itself as the body (attributes ERROR_CODE, ERROR_MESSAGE, RULE_ARN, TARGET_ARN); Lambda's
    asynchronous invocations dead-letter the invocation's payload, for our functions the same
    event (attributes RequestID, ErrorCode, ErrorMessage)."""

    message_id: str
    body: str
    receipt: str
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def failure(self) -> str:
        """Why it was dead-lettered, as the attributes say."""
        code = self.attributes.get("ERROR_CODE") or self.attributes.get("ErrorCode") or ""
        message = self.attributes.get("ERROR_MESSAGE") or self.attributes.get("ErrorMessage")
        return ": ".join(str(part) for part in (code, message) if part)


class Letter(Enum):
    BATCH_EVENT = "Batch Job State Change"  # replayed through the advance path
    EXECUTION_ENDED = "Step Functions Execution Status Change"  # replayed through stop_run
    SUBMISSION = "S3 Object Created"  # not replayed: the object is uploaded again
    UNKNOWN = "unknown"  # not replayed


@dataclass(frozen=True)
class LetterVerdict:
    kind: Letter
    event: dict[str, Any] | None = None
    problem: str = ""

    @property
    def replayable(self) -> bool:
        return self.kind in (Letter.BATCH_EVENT, Letter.EXECUTION_ENDED)


def classify_letter(letter: DeadLetter) -> LetterVerdict:
    """What a dead-lettered message holds, and whether the reconciler can replay it."""
    try:
        event = json.loads(letter.body)
    except ValueError:
        return LetterVerdict(Letter.UNKNOWN, problem="the body is not JSON")
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return LetterVerdict(Letter.UNKNOWN, problem="not an EventBridge event")
    kinds = {
        ("aws.batch", "Batch Job State Change"): Letter.BATCH_EVENT,
        ("aws.states", "Step Functions Execution Status Change"): Letter.EXECUTION_ENDED,
        ("aws.s3", "Object Created"): Letter.SUBMISSION,
    }
    kind = kinds.get((str(event.get("source")), str(event.get("detail-type"))), Letter.UNKNOWN)
    if kind is Letter.SUBMISSION:
        detail = event["detail"]
        bucket = (detail.get("bucket") or {}).get("name")
        key = (detail.get("object") or {}).get("key")
        problem = f"a submission (s3://{bucket}/{key}) is not replayed: upload it again"
        return LetterVerdict(kind, event, problem)
    if kind is Letter.UNKNOWN:
        what = f"{event.get('source')} / {event.get('detail-type')}"
        return LetterVerdict(kind, event, f"not an event the reconciler replays ({what})")
    return LetterVerdict(kind, event)
