"""The call steps: submit an attempt as a Batch job, note it started, collect its outputs,
and retry or fail a failed attempt."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import WDL
from WDL import Env, Tree, Value

from miniwdl_serverless.controller import call_cache, task_call
from miniwdl_serverless.controller.actions import (
    Action,
    AttemptFailed,
    Collect,
    Complete,
    NoteStarted,
    Submit,
)
from miniwdl_serverless.controller.context import RunContext, scope_of, task_of
from miniwdl_serverless.controller.end import fail_run, write_json_best_effort
from miniwdl_serverless.controller.localize import fetch_missing, localized_inputs, provenance
from miniwdl_serverless.controller.ports import PortError, TransientError
from miniwdl_serverless.core import call_caching, work
from miniwdl_serverless.core.decisions import (
    CallAttempt,
    after_failed_attempt,
    job_failure,
    lease_renewal,
    mock_interruption_tags,
    queue_for,
    runtime_summary,
    submit_lease,
    task_submission,
)
from miniwdl_serverless.core.errors import RunError, describe_exception
from miniwdl_serverless.core.ids import batch_job_name
from miniwdl_serverless.core.records import Job
from miniwdl_serverless.core.resources import TaskSubmission, resources_for

log = logging.getLogger("miniwdl_serverless.controller")

if TYPE_CHECKING:
    from miniwdl_serverless.controller.drive import Driver


def submit(driver: Driver, action: Submit) -> list[Action]:
    """Submit one attempt of a call as one Batch job, exactly once.

    The attempt is marked running first, under a short lease (exclusively), so a duplicate
    invocation never prepares over the holder's files, and a short job's events may come
    before submit returns. A resubmission (the previous submitter may have died) has the
    submitter look the attempt's Batch job up by its deterministic name first, and adopt it if
    it exists: the files of an attempt whose Batch job may be running are never prepared
    again.
    """
    ctx, job, attempt = driver.context(), action.job, action.attempt
    task, _ = task_of(ctx, job)
    taken = _take(ctx, action, task)
    if taken is None:
        return []
    marked, inputs, until = taken
    lease = Lease(until)
    try:
        return _prepare_and_submit(ctx, action, task, (marked, inputs), lease)
    except TransientError:  # not submitted (or not known to be): a retry need not wait
        _give_back(ctx, job.job_id, attempt, lease)
        raise


@dataclass
class Lease:
    """When this invocation's submit lease on the attempt runs out (None: lost)."""

    until: float | None


def _prepare_and_submit(
    ctx: RunContext,
    action: Submit,
    task: Tree.Task,
    taken: tuple[Job, Env.Bindings[Value.Base]],
    lease: Lease,
) -> list[Action]:
    job, attempt = action.job, action.attempt
    marked, inputs = taken
    files, call_dir = ctx.ports.files, ctx.call_dir(job.job_id)
    localized = localized_inputs(ctx, task, inputs)
    key = call_caching.key_of(task, localized.inputs)
    hit = call_cache.lookup(ctx, task, key, job.job_id)
    if hit is not None:  # no Batch job, no download: the earlier call's outputs
        return [_cached(ctx, job, attempt, hit)]
    if fetch_missing(ctx, localized, job.job_id, attempt, action.reconciling):  # told later
        _give_back(ctx, job.job_id, attempt, lease)
        return []
    inputs = localized.inputs
    logger = logging.getLogger(f"wdl.{job.job_id}")
    prepared = task_call.prepare(ctx.cfg, task, inputs, job.job_id, call_dir, attempt, logger)
    prepared.state["cache"] = {"key": key, "inputs": WDL.values_to_json(inputs)}
    if not _hold(ctx, job.job_id, attempt, lease):
        return []
    files.prepare_call(
        call_dir, prepared.command, prepared.inputs, ctx.settings.copy_input_files, attempt
    )
    write_json_best_effort(files, os.path.join(call_dir, "inputs.json"), WDL.values_to_json(inputs))
    if localized.sources:  # where each downloaded input came from
        files.write_json(os.path.join(call_dir, "downloads.json"), provenance(localized.sources))
    runtime = prepared.runtime
    queue = queue_for(
        ctx.options.task_queue or ctx.ports.default_queue,
        ctx.options.task_queue_fallback or ctx.ports.default_fallback_queue,
        int(runtime.get("preemptible") or 0),
        marked.interruptions,
        resources_for(runtime, prepared.raw_runtime).gpus,
        ctx.ports.default_gpu_queue,
    )
    call = CallAttempt(
        ctx.run_id, job.job_id, attempt, runtime, prepared.raw_runtime, prepared.script
    )
    mock = mock_interruption_tags(ctx.settings, runtime, marked.interruptions)
    submission = task_submission(call, ctx.settings, queue, {**ctx.options.tags, **mock})
    state_dir = os.path.join(call_dir, ".state")
    state = files.store_value(prepared.state, state_dir, f"task_state-{attempt}")
    fields = {
        "task_state": state,
        "queue": queue,
        "runtime": runtime_summary(submission, runtime, prepared.raw_runtime),
    }
    _queue_submission(ctx, (job.job_id, attempt), submission, lease, fields)
    return []


def _queue_submission(
    ctx: RunContext,
    attempt_of: tuple[str, int],
    submission: TaskSubmission,
    lease: Lease,
    prepared: dict[str, Any],
) -> None:
    """Hand the submission to the paced submitter. It takes the attempt's lease from the value
    this invocation holds, however long it waited: a resubmission that took the attempt over
    meanwhile (the reconciler's, once the lease ran out) changed it, and the item then submits
    nothing. The take writes ``prepared`` on the job (before any SubmitJob: whoever collects or
    retries a Batch job of this attempt finds it there)."""
    job_id, attempt = attempt_of
    assert lease.until is not None
    array_ok = attempt == 0 and ctx.settings.array_jobs
    item = work.QueuedSubmission(
        submission,
        ctx.run_id,
        job_id,
        attempt,
        lease=lease.until,
        call_dir=ctx.call_dir(job_id),
        array_ok=array_ok,
        prepared=prepared,
    )
    ctx.hand_on(work.submit_item(item))
    ctx.log_call(
        job_id,
        f"submitting {job_id} attempt {attempt + 1} ({submission.image}, {submission.queue})",
    )


def _cached(ctx: RunContext, job: Job, attempt: int, hit: call_cache.Hit) -> Complete:
    """A call-cache hit completes the call with the outputs an earlier call left (by
    reference: the paths in that call's directory)."""
    _, call_name = task_of(ctx, job)
    ctx.ports.store.update_job(ctx.run_id, job.job_id, cached_from=hit.origin)
    data = WDL.values_to_json(hit.outputs.wrap_namespace(call_name))
    note = f"{job.job_id}: call cache hit, outputs of {hit.origin}"
    return Complete(job, data, attempt, {"calls_cached": 1}, note=note, metric="TasksCached")


def _give_back(ctx: RunContext, job_id: str, attempt: int, lease: Lease) -> None:
    """End the lease now, so that the redelivery resubmits at once (it looks the attempt's
    Batch job up by name first, in the submitter: a SubmitJob that did go through is adopted,
    not doubled)."""
    if lease.until is None:
        return
    try:
        ctx.ports.store.renew_lease(ctx.run_id, job_id, attempt, lease.until, 0.0)
    except PortError:  # the store is failing too: the lease runs out by itself
        log.warning("could not give back the submit lease of %s", job_id, exc_info=True)


def _take(
    ctx: RunContext, action: Submit, task: Tree.Task
) -> tuple[Job, Env.Bindings[Value.Base], float] | None:
    """Mark the attempt running under a lease: the record after the write, the call's inputs
    and when the lease runs out. None: another invocation has it, or (a resubmission) its
    Batch job was found and adopted."""
    store, job, attempt = ctx.ports.store, action.job, action.attempt
    lease = submit_lease(time.time())
    held = action.held  # looked up: nothing of its name; prepare it under the lease held
    if held is not None and store.renew_lease(ctx.run_id, job.job_id, attempt, held, lease):
        marked = store.get_job(ctx.run_id, job.job_id)
        if marked is None:
            return None
        data = ctx.load_value(marked.call_inputs)
        return marked, WDL.values_from_json(data, task.available_inputs), lease
    if action.resubmit:  # (or the held lease moved on: whoever took it may have died since)
        if store.mark_running(ctx.run_id, job.job_id, attempt, resubmit=True, lease_until=lease):
            _look_up_first(ctx, action, lease)
        return None  # prepared only once the submitter found no Batch job of its name
    inputs = action.inputs
    if inputs is None:
        inputs = WDL.values_from_json(ctx.load_value(job.call_inputs), task.available_inputs)
    state_dir = os.path.join(ctx.call_dir(job.job_id), ".state")
    call_inputs = ctx.ports.files.store_value(WDL.values_to_json(inputs), state_dir, "call_inputs")
    fields: dict[str, Any] = (
        {} if action.interruptions is None else {"interruptions": action.interruptions}
    )
    marked = store.mark_running(
        ctx.run_id,
        job.job_id,
        attempt,
        batch_job_name=batch_job_name(ctx.run_id, job.job_id, attempt),
        batch_job_id=None,
        call_inputs=call_inputs,
        submitted_at=time.time(),
        lease_until=lease,
        started_at=None,
        log_stream=None,
        **fields,
    )
    if marked is None:
        return None  # another invocation is submitting this attempt
    return marked, inputs, lease


def _queues(ctx: RunContext) -> list[str]:
    """The queues an attempt can be submitted to (queue_for picks one of them)."""
    queues = (
        ctx.options.task_queue or ctx.ports.default_queue,
        ctx.options.task_queue_fallback or ctx.ports.default_fallback_queue,
        ctx.ports.default_gpu_queue,
    )
    return list(dict.fromkeys(q for q in queues if q))


def _look_up_first(ctx: RunContext, action: Submit, lease: float) -> None:
    """A resubmission (its previous submitter may have died after SubmitJob): the submitter
    (outside the VPC: ListJobs) looks the attempt's Batch job up by its deterministic name,
    and adopts it, or hands the attempt back to be prepared and submitted (``Submit.held``)."""
    job_id, attempt = action.job.job_id, action.attempt
    name = batch_job_name(ctx.run_id, job_id, attempt)
    lookup = work.Lookup(job_id, attempt, lease, name, _queues(ctx), action.reconciling)
    ctx.ports.work.put([work.lookup_item(ctx.run_id, lookup)])
    ctx.log(f"{job_id} attempt {attempt + 1}: looking its Batch job up before resubmitting")


def _hold(ctx: RunContext, job_id: str, attempt: int, lease: Lease) -> bool:
    """The lease, renewed if it is about to run out (before writing the call directory, and
    before submitting); False if it was lost: a resubmission took over, leave it to that."""
    assert lease.until is not None
    renewal = lease_renewal(time.time(), lease.until)
    if renewal is None:
        return True
    if ctx.ports.store.renew_lease(ctx.run_id, job_id, attempt, lease.until, renewal):
        lease.until = renewal
        return True
    lease.until = None
    ctx.log(f"{job_id} attempt {attempt + 1}: another invocation took over its submission")
    return False


def started_line(job: Job, batch_job_id: str) -> str:
    return f"{job.job_id} attempt {job.attempt + 1} running as Batch job {batch_job_id}"


def note_started(driver: Driver, action: NoteStarted) -> list[Action]:
    ctx, job = driver.context(), action.job
    if job.started_at is None:
        fields = {"started_at": time.time(), "log_stream": action.log_stream or ""}
        ctx.ports.store.update_job(ctx.run_id, job.job_id, **fields)
        ctx.log_call(job.job_id, started_line(job, action.batch_job_id))
    return []


def collect(driver: Driver, action: Collect) -> list[Action]:
    """miniwdl's output rules on what the command left; any problem is the attempt's."""
    ctx, job = driver.context(), action.job
    task, call_name = task_of(ctx, job)
    logger = logging.getLogger(f"wdl.{job.job_id}")
    try:
        state = ctx.load_value(job.task_state)
        call_dir = ctx.call_dir(job.job_id)
        outputs = task_call.collect(
            ctx.cfg, ctx.ports.files, task, job.job_id, call_dir, state, action.exit_code, logger
        )
    except Exception as exn:
        return [AttemptFailed(job, exn, interrupted=False)]
    driver.outcome = "collected"
    if state.get("cache"):
        call_cache.remember(
            ctx, task, state["cache"]["key"], state["cache"]["inputs"], outputs, call_dir
        )
    data = WDL.values_to_json(outputs.wrap_namespace(call_name))
    own = WDL.values_to_json(outputs, namespace=task.name)  # miniwdl's task outputs.json
    write_json_best_effort(ctx.ports.files, os.path.join(call_dir, "outputs.json"), own)
    note = f"finished {job.job_id} (exit status {action.exit_code})"
    counters = {"calls_succeeded": 1}
    metric = "TasksSucceeded"
    return [Complete(job, data, job.attempt, counters, note=note, metric=metric)]


def attempt_failed(driver: Driver, action: AttemptFailed) -> list[Action]:
    ctx, job = driver.context(), action.job
    store = ctx.ports.store
    decision = after_failed_attempt(
        job.runtime or {}, job.attempt, job.interruptions, action.interrupted
    )
    if not decision.retry:
        if decision.interruptions != job.interruptions:
            store.update_job(ctx.run_id, job.job_id, interruptions=decision.interruptions)
        store.fail_job(ctx.run_id, job.job_id, describe_exception(action.error))
        store.count(ctx.run_id, calls_failed=1)
        ctx.ports.metrics.count("TasksFailed")
        driver.outcome = "failed"
        fail_run(ctx, call_failure(ctx, job, action.error))
        return []
    ctx.log_call(
        job.job_id, f"retrying {job.job_id} after attempt {job.attempt + 1}: {action.error}"
    )
    store.count(ctx.run_id, calls_retried=1)
    ctx.ports.metrics.count("TasksRetried")
    driver.outcome = "retried"
    # the interruptions are counted with the next attempt's mark, in one write: a redelivered
    # event of this attempt decides the same retry again, never counting twice
    return [Submit(job, None, job.attempt + 1, interruptions=decision.interruptions)]


def call_failure(ctx: RunContext, job: Job, exn: BaseException) -> RunError:
    """The run's error for a failure at ``job``, in miniwdl's nested error JSON."""
    cause = describe_exception(exn)
    try:
        task = _task_called(ctx, job)
    except Exception:  # noqa: BLE001 - the scope may be unreadable for the reason the run fails
        task = None
    if task is not None and "pos" not in cause:  # where the failed task is, as miniwdl says it
        cause["task"] = task.name
        cause["pos"] = {
            "source": task.pos.abspath,
            "line": task.pos.line,
            "column": task.pos.column,
        }
    return job_failure(ctx.target_info(), ctx.run_id, ctx.run_dir, job.job_id, cause)


def _task_called(ctx: RunContext, job: Job) -> Tree.Task | None:
    """The task a job calls (None for a declaration, a section or a sub-workflow call)."""
    scope = scope_of(ctx, job)
    if scope.is_task:
        return scope.target if isinstance(scope.target, Tree.Task) else None
    node = scope.nodes.get(job.node_id)
    if isinstance(node, Tree.Call) and isinstance(node.callee, Tree.Task):
        return node.callee
    return None
