"""DynamoDB adapter (pynamodb): a runs table and a jobs table with one partition per run.

Concurrency rules (DESIGN.md principle 4):
- a job's completion and the decrements of its dependents' ``pending`` counters commit in one
  transaction, conditional on the job not being complete yet, so a repeated event cannot
  decrement twice;
- a ready job is claimed with a conditional write (``pending <= 0`` and still waiting, or
  already claimed by the same claimant, so a re-delivered event can resume its own work);
- a Batch submission is recorded with a conditional write on the job's claim and attempt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

# Job statuses
WAITING, CLAIMED, RUNNING, DONE, FAILED = "waiting", "claimed", "running", "done", "failed"
# Run statuses
RUN_PLANNING, RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED = "planning", "running", "succeeded", "failed"
TRANSACTION_LIMIT = 100
FINISHED_RUN_TTL_SECONDS = 90 * 24 * 3600


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class RunModel(Model):
    """One workflow run (one Step Functions execution)."""

    class Meta:
        table_name = os.environ.get("RUNS_TABLE", "miniwdl-serverless-runs")
        region = _region()

    run_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(default=RUN_PLANNING)
    workflow_name = UnicodeAttribute(null=True)
    run_dir = UnicodeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    task_token = UnicodeAttribute(null=True)
    options = JSONAttribute(null=True)
    bundle_path = UnicodeAttribute(null=True)
    bundle_digest = UnicodeAttribute(null=True)
    inputs = JSONAttribute(null=True)
    outputs = JSONAttribute(null=True)
    error = JSONAttribute(null=True)
    created_at = NumberAttribute(default=lambda: time.time())
    finished_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # TTL once finished
    jobs_total = NumberAttribute(default=0)
    jobs_done = NumberAttribute(default=0)
    calls_submitted = NumberAttribute(default=0)
    calls_running = NumberAttribute(default=0)
    calls_succeeded = NumberAttribute(default=0)
    calls_failed = NumberAttribute(default=0)
    calls_retried = NumberAttribute(default=0)


class JobModel(Model):
    """One job of the expanded workflow graph."""

    class Meta:
        table_name = os.environ.get("JOBS_TABLE", "miniwdl-serverless-jobs")
        region = _region()

    run_id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute(range_key=True)
    node_id = UnicodeAttribute()
    scope = UnicodeAttribute(default="")  # "" or the sub-workflow call's job id
    # call node ids from the document's workflow to the scope's (sub-)workflow
    call_path: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    deps: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    dependents: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    # registered by later jobs that wait on this one (see graph.JobSpec.external)
    waiters: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    waiters_version = NumberAttribute(null=True)
    pending = NumberAttribute(default=0)
    status = UnicodeAttribute(default=WAITING)
    claimed_by = UnicodeAttribute(null=True)
    scatter_stack = JSONAttribute(default=list)
    outputs = JSONAttribute(null=True)
    call_inputs = JSONAttribute(null=True)
    task_state = JSONAttribute(null=True)
    runtime = JSONAttribute(null=True)
    attempt = NumberAttribute(default=0)
    interruptions = NumberAttribute(default=0)
    batch_job_id = UnicodeAttribute(null=True)
    batch_job_name = UnicodeAttribute(null=True)
    queue = UnicodeAttribute(null=True)
    log_stream = UnicodeAttribute(null=True)
    submitted_at = NumberAttribute(null=True)
    started_at = NumberAttribute(null=True)
    finished_at = NumberAttribute(null=True)
    error = JSONAttribute(null=True)


def configure(runs_table: str, jobs_table: str) -> None:
    """Point the models at these tables (the Lambdas read them from the environment)."""
    RunModel.Meta.table_name = runs_table
    JobModel.Meta.table_name = jobs_table
    for model in (RunModel, JobModel):
        model.Meta.region = _region()
        model._connection = None


def create_tables() -> None:
    """For tests and the local mode: tables as template.yaml declares them (on-demand)."""
    for model in (RunModel, JobModel):
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)


# ---- runs --------------------------------------------------------------------------------


def create_run(run: RunModel) -> bool:
    """Create the run item; False if it already exists (a retried start)."""
    try:
        run.save(condition=RunModel.run_id.does_not_exist())
        return True
    except PutError as exn:
        if _is_conditional_failure(exn):
            return False
        raise


def get_run(run_id: str) -> RunModel:
    return RunModel.get(run_id, consistent_read=True)


def set_run_status(run: RunModel, status: str, expected: Iterable[str], **fields: Any) -> bool:
    """Move the run to ``status`` if it is in one of ``expected``; False if it was not."""
    actions = [RunModel.status.set(status)] + _assignments(RunModel, fields)
    if status in (RUN_SUCCEEDED, RUN_FAILED):
        now = time.time()
        actions += [RunModel.finished_at.set(now), RunModel.expires_at.set(int(now) + FINISHED_RUN_TTL_SECONDS)]
    try:
        run.update(actions=actions, condition=RunModel.status.is_in(*expected))
        return True
    except UpdateError as exn:
        if _is_conditional_failure(exn):
            return False
        raise


def count(run_id: str, **deltas: int) -> None:
    """Best-effort progress counters on the run item (not part of any transaction)."""
    actions = [getattr(RunModel, k).add(v) for k, v in deltas.items() if v]
    if actions:
        RunModel(run_id).update(actions=actions)


# ---- jobs --------------------------------------------------------------------------------


def put_new_jobs(jobs: list[JobModel]) -> set[str]:
    """Create jobs that do not exist yet (idempotent); returns the ids created by this call.

    Written as updates, not puts: a later job may already have registered as a waiter on one
    of these (a stub item holding only ``waiters``), and that registration must survive.
    """
    created: set[str] = set()
    for chunk in _chunks(jobs, TRANSACTION_LIMIT):
        try:
            with TransactWrite(connection=_connection(JobModel)) as transaction:
                for job in chunk:
                    transaction.update(job, actions=_creation(job), condition=JobModel.status.does_not_exist())
            created |= {job.job_id for job in chunk}
        except TransactWriteError:
            for job in chunk:  # some exist already: a resumed expansion
                try:
                    job.update(actions=_creation(job), condition=JobModel.status.does_not_exist())
                    created.add(job.job_id)
                except UpdateError as exn:
                    if not _is_conditional_failure(exn):
                        raise
    return created


def _creation(job: JobModel) -> list[Any]:
    keys = ("run_id", "job_id", "waiters", "waiters_version")
    return [
        getattr(JobModel, name).set(value)
        for name, value in job.attribute_values.items()
        if name not in keys and value is not None
    ]


def register_waiter(run_id: str, job_id: str, waiter: str) -> bool:
    """Ask to be decremented when ``job_id`` completes. False if it has completed already.

    Works before the job exists (the item starts as a stub with only ``waiters``).
    """
    target = JobModel(run_id, job_id)
    try:
        target.update(
            actions=[JobModel.waiters.set((JobModel.waiters | []).append([waiter])), JobModel.waiters_version.add(1)],
            condition=(JobModel.status.does_not_exist() | JobModel.status.is_in(WAITING, CLAIMED, RUNNING))
            & ~JobModel.waiters.contains(waiter),
        )
        return True
    except UpdateError as exn:
        if not _is_conditional_failure(exn):
            raise
    current = get_job(run_id, job_id)
    return current is not None and waiter in (current.waiters or [])


def get_job(run_id: str, job_id: str) -> JobModel | None:
    try:
        return JobModel.get(run_id, job_id, consistent_read=True)
    except JobModel.DoesNotExist:
        return None


READINESS = ["run_id", "job_id", "pending", "status", "claimed_by", "node_id"]


def get_jobs(run_id: str, job_ids: Iterable[str], attributes: list[str] | None = None) -> dict[str, JobModel]:
    """Read jobs in batches; ``attributes`` (e.g. READINESS) reads only those, so checking a
    gather with thousands of dependencies stays cheap."""
    keys = [(run_id, job_id) for job_id in sorted(set(job_ids))]
    found: dict[str, JobModel] = {}
    for chunk in _chunks(keys, 100):
        for job in JobModel.batch_get(chunk, consistent_read=True, attributes_to_get=attributes):
            found[job.job_id] = job
    return found


def query_jobs(run_id: str, statuses: Iterable[str] | None = None) -> Iterator[JobModel]:
    """All jobs of a run (optionally only in some statuses): for failure and cancel paths only."""
    condition = JobModel.status.is_in(*statuses) if statuses else None
    return JobModel.query(run_id, filter_condition=condition, consistent_read=True)


def claim(job: JobModel, claimant: str) -> bool:
    """Claim a ready job for evaluation. True if this claimant holds it now."""
    try:
        job.update(
            actions=[JobModel.status.set(CLAIMED), JobModel.claimed_by.set(claimant)],
            condition=(JobModel.pending <= 0)
            & ((JobModel.status == WAITING) | ((JobModel.status == CLAIMED) & (JobModel.claimed_by == claimant))),
        )
        return True
    except UpdateError as exn:
        if _is_conditional_failure(exn):
            return False
        raise


SUBMIT_LEASE_SECONDS = 900  # a Lambda invocation lives at most 15 minutes


def mark_running(job: JobModel, attempt: int, resubmit: bool = False, **fields: Any) -> bool:
    """Mark ``attempt`` as being submitted; False if another invocation holds it.

    Allowed from the claim or from the previous attempt (a retry). With ``resubmit``, also
    for the same attempt while its Batch job id is unknown and the previous submitter's lease
    has expired (it died; the Batch job name is looked up before submitting again).
    """
    now = time.time()
    actions: list[Action] = [JobModel.status.set(RUNNING), JobModel.attempt.set(attempt)]
    actions += _assignments(JobModel, fields)
    condition = JobModel.status == CLAIMED
    if attempt > 0:
        condition = condition | ((JobModel.status == RUNNING) & (JobModel.attempt == attempt - 1))
    if resubmit:
        condition = condition | (
            (JobModel.status == RUNNING) & (JobModel.attempt == attempt) & JobModel.batch_job_id.does_not_exist()
            & (JobModel.submitted_at < now - SUBMIT_LEASE_SECONDS)
        )
    try:
        job.update(actions=actions, condition=condition)
        return True
    except UpdateError as exn:
        if _is_conditional_failure(exn):
            return False
        raise


def record_batch_job(job: JobModel, attempt: int, batch_job_id: str) -> None:
    """The submitted job's id, unless the attempt moved on meanwhile."""
    try:
        job.update(
            actions=[JobModel.batch_job_id.set(batch_job_id)],
            condition=(JobModel.attempt == attempt) & JobModel.batch_job_id.does_not_exist(),
        )
    except UpdateError as exn:
        if not _is_conditional_failure(exn):
            raise


def add_pending(job: JobModel, delta: int) -> None:
    job.update(actions=[JobModel.pending.add(delta)])


def update_job(job: JobModel, **fields: Any) -> None:
    job.update(actions=_assignments(JobModel, fields))


def _assignments(model: type[Model], fields: dict[str, Any]) -> list[Action]:
    """SET for values, REMOVE for None."""
    return [getattr(model, k).remove() if v is None else getattr(model, k).set(v) for k, v in fields.items()]  # type: ignore[no-any-return]


def complete(job: JobModel, outputs: Any, expected_attempt: int | None = None) -> list[str] | None:
    """Mark the job done with its outputs and decrement its dependents and waiters, atomically.

    Returns the ids it decremented; None if the job was already completed (a repeated or late
    event): nothing changes then. A waiter registering meanwhile changes ``waiters_version``; the transaction is then
    retried with the new list, so no waiter is missed.
    """
    for _ in range(20):
        outcome = _complete_once(job, outputs, expected_attempt)
        if outcome is not True:
            return None if outcome is False else outcome
        fresh = get_job(job.run_id, job.job_id)
        if fresh is None:
            return None
        job = fresh
    raise RuntimeError(f"could not complete {job.job_id}: waiters kept changing")


def _complete_once(job: JobModel, outputs: Any, expected_attempt: int | None) -> list[str] | bool:
    """The targets decremented; False if already complete; True to retry (waiters changed)."""
    if job.status == DONE:
        return False
    condition = JobModel.status.is_in(CLAIMED, RUNNING)
    if expected_attempt is not None:
        condition = condition & (JobModel.attempt == expected_attempt)
    version = job.waiters_version
    condition = condition & (
        JobModel.waiters_version.does_not_exist() if version is None else JobModel.waiters_version == version
    )
    targets: list[str] = list(job.dependents) + list(job.waiters or [])
    chunks = list(_chunks(targets, TRANSACTION_LIMIT - 1)) or [[]]
    done_fields: list[Action] = [JobModel.status.set(DONE), JobModel.outputs.set(outputs), JobModel.finished_at.set(time.time())]
    # More than 99 to decrement: several transactions, each guarded by the job's progress marker
    # ("completing-1", "completing-2", ...), so a re-delivered event continues where one stopped.
    start = int(job.status.split("-")[1]) if job.status.startswith("completing-") else 0
    for index in range(start, len(chunks)):
        last = index == len(chunks) - 1
        guard = condition if index == 0 else JobModel.status == f"completing-{index}"
        progress: list[Action] = [JobModel.status.set(f"completing-{index + 1}"), JobModel.outputs.set(outputs)]
        actions = done_fields if last else progress
        try:
            with TransactWrite(connection=_connection(JobModel)) as transaction:
                transaction.update(job, actions=actions, condition=guard)
                _decrement(transaction, job.run_id, chunks[index])
        except TransactWriteError as exn:
            if not _first_condition_failed(exn):  # a dependent that does not exist: a bug, loudly
                raise
            if index > 0:
                return False
            fresh = get_job(job.run_id, job.job_id)
            still_open = fresh is not None and fresh.status in (CLAIMED, RUNNING) and (
                expected_attempt is None or fresh.attempt == expected_attempt
            )
            return bool(still_open and fresh is not None and fresh.waiters_version != version)
    return targets


def _decrement(transaction: TransactWrite, run_id: str, job_ids: list[str]) -> None:
    for dependent in job_ids:
        transaction.update(
            JobModel(run_id, dependent),
            actions=[JobModel.pending.add(-1)],
            condition=JobModel.job_id.exists(),
        )


def fail_job(job: JobModel, error: dict[str, Any]) -> bool:
    try:
        job.update(
            actions=[JobModel.status.set(FAILED), JobModel.error.set(error), JobModel.finished_at.set(time.time())],
            condition=JobModel.status.is_in(CLAIMED, RUNNING),
        )
        return True
    except UpdateError as exn:
        if _is_conditional_failure(exn):
            return False
        raise


# ---- helpers -----------------------------------------------------------------------------


def item_size(model: Model) -> int:
    """Approximate DynamoDB item size in bytes (attribute names + serialized values)."""
    import json

    size = 0
    for name, value in model.serialize().items():
        size += len(name.encode()) + len(json.dumps(value).encode())
    return size


def _connection(model: type[Model]) -> Connection:
    """The model's own (cached) low-level connection, so transactions reuse its client."""
    return model._get_connection().connection  # type: ignore[no-any-return]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_conditional_failure(exn: Exception) -> bool:
    cause = getattr(exn, "cause_response_code", None) or ""
    return "ConditionalCheckFailed" in str(cause) or "ConditionalCheckFailed" in str(exn)


def _first_condition_failed(exn: TransactWriteError) -> bool:
    """Whether the transaction was cancelled by the condition on its first item (the job)."""
    reasons = getattr(exn, "cancellation_reasons", None) or []
    return bool(reasons) and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed"
