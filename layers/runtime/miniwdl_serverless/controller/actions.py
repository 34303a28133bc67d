"""The driver's worklist items: one small value per thing still to do (see drive.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from WDL import Env, Tree, Value

from miniwdl_serverless.core.records import Job


@dataclass(frozen=True)
class Plan:
    """Start: parse, typecheck and plan a new run, then evaluate what is ready."""

    execution_input: Any
    task_token: str
    execution_arn: str
    started_at: str | None
    run_id: str


@dataclass(frozen=True)
class Offer:
    """A job that may be ready: claim and evaluate it, resume it, or leave it to its owner."""

    job: Job
    claimant: str
    whole: bool = False  # ``job`` is its whole record as just read (not only readiness)


@dataclass(frozen=True)
class Evaluate:
    """A claimed job: evaluate it with miniwdl (a call is submitted, the rest completes)."""

    job: Job


@dataclass(frozen=True)
class Complete:
    """Record a job's outputs and decrement its dependents (one atomic store step)."""

    job: Job
    outputs: dict[str, Any]
    attempt: int | None = None  # a call's: a late event of an older attempt changes nothing
    counters: dict[str, int] = field(default_factory=dict)
    note: str | None = None  # workflow.log line once completed
    metric: str | None = None


@dataclass(frozen=True)
class ExpandShards:
    """Create (and offer) shards ``start``..``stop`` of the scatter that ``section`` evaluated:
    a part of its expansion the evaluating invocation handed on."""

    section: str
    start: int
    stop: int


@dataclass(frozen=True)
class ReleaseWaiters:
    """The dependency of the group of waiting jobs ``group`` (its work-table key) completed."""

    group: str


@dataclass(frozen=True)
class Resume:
    """A job already completed: finish what a crashed invocation left after its completion."""

    job: Job


@dataclass(frozen=True)
class EndScope:
    """A scope's outputs job completed: complete the sub-workflow call, or the run."""

    job: Job
    outputs: dict[str, Any]


@dataclass(frozen=True)
class StartSubworkflow:
    job: Job
    callee: Tree.Workflow
    inputs: Env.Bindings[Value.Base]


@dataclass(frozen=True)
class Submit:
    """Prepare the call directory for ``attempt`` and submit its Batch job, exactly once."""

    job: Job
    inputs: Env.Bindings[Value.Base] | None
    attempt: int
    resubmit: bool = False  # the previous submitter may have died before recording a Batch job
    reconciling: bool = False  # the reconciler's: may look up a download job's lost end
    interruptions: int | None = None  # a retry's count of interruptions, set with its mark
    held: float | None = None  # a resubmission looked up (no Batch job of its name): its lease


@dataclass(frozen=True)
class NoteStarted:
    job: Job
    log_stream: str | None
    batch_job_id: str = ""


@dataclass(frozen=True)
class Collect:
    """The call's Batch job ended with ``exit_code``: apply miniwdl's output rules."""

    job: Job
    exit_code: int


@dataclass(frozen=True)
class AttemptFailed:
    """An attempt failed (the command, its outputs, or the host): retry or fail the run."""

    job: Job
    error: BaseException
    interrupted: bool


Action = (
    Plan
    | Offer
    | Evaluate
    | Complete
    | ExpandShards
    | ReleaseWaiters
    | Resume
    | EndScope
    | StartSubworkflow
    | Submit
    | NoteStarted
    | Collect
    | AttemptFailed
)
