"""The run and job records the store keeps, in the controller's words (plain values)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from miniwdl_serverless.core.store_rules import shard_tally

# Job statuses. A completion with more targets than one transaction holds passes through
# "completing-1", "completing-2", ... (see the store port's ``complete``).
WAITING, CLAIMED, RUNNING, DONE, FAILED = "waiting", "claimed", "running", "done", "failed"
COMPLETING = "completing"
# Run statuses
RUN_PLANNING, RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED = "planning", "running", "succeeded", "failed"
RUN_ENDED = (RUN_SUCCEEDED, RUN_FAILED)
# Counters kept on the run item for progress displays (best effort, not transactional)
RUN_COUNTERS = (
    "jobs_total",
    "jobs_done",
    "calls_submitted",
    "calls_running",
    "calls_succeeded",
    "calls_failed",
    "calls_retried",
    "calls_cached",
)


@dataclass
class Run:
    """One workflow run (one Step Functions execution)."""

    run_id: str
    status: str = RUN_PLANNING
    workflow_name: str | None = None
    run_dir: str | None = None
    run_dir_created: bool | None = None  # whether this run made run_dir (delete_after: only then)
    execution_arn: str | None = None
    task_token: str | None = None
    options: Any = None  # the execution input as given
    bundle_path: str | None = None
    bundle_digest: str | None = None
    inputs: Any = None  # stored value (inline or spill pointer)
    outputs: Any = None
    error: dict[str, Any] | None = None
    created_at: float | None = None
    finished_at: float | None = None
    expires_at: int | None = None
    jobs_total: int = 0
    jobs_done: int = 0
    calls_submitted: int = 0
    calls_running: int = 0
    calls_succeeded: int = 0
    calls_failed: int = 0
    calls_retried: int = 0
    calls_cached: int = 0  # calls completed from the call cache, with no Batch job
    # The answer the Start task's token is owed, from the write that ended the run until it
    # is sent: {"output": {...}} or {"error": name} (the cause is ``error``). See decisions.py.
    answer_due: dict[str, Any] | None = None
    uploaded_to: str | None = None  # the s3upload folder, once every output is uploaded there

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Job:
    """One job of the expanded workflow graph. ``job_id`` is always the graph job id (miniwdl's
    job id, prefixed with the sub-workflow call's id and '/' inside sub-workflows); the AWS
    Batch job running one attempt of a call is ``batch_job_id``."""

    run_id: str
    job_id: str
    node_id: str = ""
    scope: str = ""  # "" or the sub-workflow call's job id
    call_path: list[str] = field(default_factory=list)  # call node ids down to the scope
    deps: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    # A scatter's gather lists no shard in ``deps`` (its item would grow with the width): it
    # holds their description instead, ``{"of": scatter job, "node": shard node id, "prefix":
    # shard job id prefix, "count": N}``, and ``pending`` starts at N (see ``is_shard``).
    shards: dict[str, Any] | None = None
    # A scatter's shard: where its completion is counted into its gather instead of
    # decrementing it in the completion's transaction (``store_rules.shard_tally``: the
    # gather's id, the shard's index, its bucket and the bucket's size). Set when the shard is
    # created with its gather; the gather stays in ``dependents`` but is no ``target``.
    tally: dict[str, Any] | None = None
    # A gather: the buckets of shards counted into ``pending`` so far (each once).
    tallied: list[int] | None = None
    waiters: list[str] | None = None  # later jobs that registered to be decremented
    waiters_version: int | None = None
    pending: int = 0
    # Outside dependencies counted in ``pending`` when the job was created and not given back
    # by ``stop_awaiting`` (each is given back at most once, keyed by its id).
    awaiting: list[str] | None = None
    status: str = WAITING
    claimed_by: str | None = None
    scatter_stack: list[Any] = field(default_factory=list)
    outputs: Any = None
    call_inputs: Any = None
    task_state: Any = None
    runtime: dict[str, Any] | None = None
    attempt: int = 0
    interruptions: int = 0
    batch_job_id: str | None = None
    batch_job_name: str | None = None
    queue: str | None = None
    log_stream: str | None = None
    submitted_at: float | None = None
    lease_until: float | None = None  # the submitter's lease on an attempt without a Batch job
    lease_holder: str | None = None  # the work item whose submitter took that lease
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    cached_from: str | None = None  # a call cache hit: the call directory its outputs are in
    expires_at: int | None = None  # the jobs table's TTL, set when the job is created

    @property
    def local_id(self) -> str:
        """The id within its scope (what miniwdl calls the job)."""
        return self.job_id[len(self.scope) + 1 :] if self.scope else self.job_id

    @property
    def completing(self) -> bool:
        """Done, or part-way through a multi-transaction completion."""
        return self.status == DONE or self.status.startswith(COMPLETING)

    def targets(self) -> list[str]:
        """The jobs this one's completion decrements (in its transaction): its dependents and
        waiters, but for the gather a shard is tallied into (``tally``) and groups of waiters
        (``waiter_groups``: released in parts after the completion)."""
        gather = self.tally["gather"] if self.tally else None
        waiters = [w for w in self.waiters or [] if not w.startswith(WAITER_GROUP)]
        return [d for d in self.dependents if d != gather] + waiters

    def group_tokens(self) -> list[str]:
        """Its waiters that stand for groups (what a completion reports with its targets)."""
        return [w for w in self.waiters or [] if w.startswith(WAITER_GROUP)]

    def waiter_groups(self) -> list[str]:
        """The work-table keys of the groups of jobs waiting for this one (many shards of a
        section waiting for one outside job: one waiter each would grow its item)."""
        return [w[len(WAITER_GROUP) :] for w in self.waiters or [] if w.startswith(WAITER_GROUP)]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


WAITER_GROUP = "@"  # a waiter that stands for a group of jobs (no job id begins with it)


def is_shard(gather: Job, job: Job) -> bool:
    """Whether ``job`` is one of the shards ``gather`` gathers: a job of its shard node, in
    its scope, whose id begins with the prefix and whose scatter indices are the gather's plus
    one (a sub-workflow shard's children, in another scope, share the prefix but are not)."""
    shards = gather.shards
    if not shards:
        return False
    outer = [entry[0] for entry in gather.scatter_stack]
    return (
        job.scope == gather.scope
        and job.node_id == shards["node"]
        and job.job_id.startswith(shards["prefix"])
        and [entry[0] for entry in job.scatter_stack[:-1]] == outer
        and len(job.scatter_stack) == len(outer) + 1
    )


def tally_of(gather: Job, job: Job) -> dict[str, Any] | None:
    """Where ``job``, a shard of ``gather`` created with it, is counted into it; None for any
    other job (or a shard whose index is not a number: it decrements the gather in its
    completion's transaction, as every dependent is)."""
    shards = gather.shards
    if not shards or not is_shard(gather, job) or gather.job_id not in job.dependents:
        return None
    index = str(job.scatter_stack[-1][0])
    if not index.isdigit():
        return None
    return shard_tally(gather.job_id, int(index), int(shards["count"]))


JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))
RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(Run))
READINESS_FIELDS = (
    "run_id",
    "job_id",
    "pending",
    "status",
    "claimed_by",
    "node_id",
    "batch_job_id",
)


def completing_step(status: str) -> int:
    """How many completion transactions a job in ``status`` has committed (0 before any)."""
    return int(status.split("-")[1]) if status.startswith(COMPLETING + "-") else 0
