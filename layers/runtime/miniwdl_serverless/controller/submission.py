"""The call steps: submit an attempt as a Batch job, note it started, collect its outputs,
and retry or fail a failed attempt."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import WDL

from miniwdl_serverless.controller import task_call
from miniwdl_serverless.controller.actions import (
    Action,
    AttemptFailed,
    Collect,
    Complete,
    NoteStarted,
    Submit,
)
from miniwdl_serverless.controller.context import RunContext, task_of
from miniwdl_serverless.controller.end import fail_run
from miniwdl_serverless.core.decisions import (
    CallAttempt,
    after_failed_attempt,
    job_failure,
    queue_for,
    runtime_summary,
    task_submission,
)
from miniwdl_serverless.core.errors import RunError, describe_exception
from miniwdl_serverless.core.ids import batch_job_name
from miniwdl_serverless.core.records import RUN_RUNNING, Job

if TYPE_CHECKING:
    from miniwdl_serverless.controller.drive import Driver


def submit(driver: Driver, action: Submit) -> list[Action]:
    """The attempt is marked running first (exclusively), so a duplicate invocation never
    prepares over the winner's files, and a short job's events may come before submit returns."""
    ctx, job, attempt = driver.context(), action.job, action.attempt
    store, files = ctx.ports.store, ctx.ports.files
    task, _ = task_of(ctx, job)
    call_dir = ctx.call_dir(job.job_id)
    state_dir = os.path.join(call_dir, ".state")
    inputs = action.inputs
    if inputs is None:
        inputs = WDL.values_from_json(ctx.load_value(job.call_inputs), task.available_inputs)
    call_inputs = files.store_value(WDL.values_to_json(inputs), state_dir, "call_inputs")
    marked = store.mark_running(
        ctx.run_id,
        job.job_id,
        attempt,
        resubmit=action.resubmit,
        batch_job_name=batch_job_name(ctx.run_id, job.job_id, attempt),
        batch_job_id=None,
        call_inputs=call_inputs,
        submitted_at=time.time(),
        started_at=None,
        log_stream=None,
    )
    if marked is None:
        return []  # another invocation is submitting this attempt
    if attempt > 0 and not action.resubmit:
        files.archive_attempt(call_dir, attempt - 1)
    logger = logging.getLogger(f"wdl.{job.job_id}")
    prepared = task_call.prepare(ctx.cfg, task, inputs, job.job_id, call_dir, attempt, logger)
    files.prepare_call(call_dir, prepared.command, prepared.inputs, ctx.settings.copy_input_files)
    runtime = prepared.runtime
    queue = queue_for(
        ctx.options.task_queue or ctx.ports.default_queue,
        ctx.options.task_queue_fallback or ctx.ports.default_fallback_queue,
        int(runtime.get("preemptible") or 0),
        marked.interruptions,
    )
    call = CallAttempt(
        ctx.run_id, job.job_id, attempt, runtime, prepared.raw_runtime, prepared.script
    )
    submission = task_submission(call, ctx.settings, queue, ctx.options.tags)
    state = files.store_value(prepared.state, state_dir, f"task_state-{attempt}")
    summary = runtime_summary(submission, runtime)
    store.update_job(ctx.run_id, job.job_id, task_state=state, queue=queue, runtime=summary)
    batch_job_id = ctx.ports.batch.submit(submission)
    store.record_batch_job(ctx.run_id, job.job_id, attempt, batch_job_id)
    store.count(ctx.run_id, calls_submitted=1)
    ctx.ports.metrics.count("TasksSubmitted")
    where = f"{submission.image}, {queue}"
    ctx.log(f"submitted {job.job_id} attempt {attempt + 1} as Batch job {batch_job_id} ({where})")
    run = store.get_run(ctx.run_id)
    if run is None or run.status != RUN_RUNNING:  # the run ended meanwhile
        ctx.ports.batch.terminate(batch_job_id, "miniwdl-serverless: run already ended")
    return []


def note_started(driver: Driver, action: NoteStarted) -> list[Action]:
    ctx, job = driver.context(), action.job
    if job.started_at is None:
        fields = {"started_at": time.time(), "log_stream": action.log_stream or ""}
        ctx.ports.store.update_job(ctx.run_id, job.job_id, **fields)
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
    data = WDL.values_to_json(outputs.wrap_namespace(call_name))
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
    if decision.interruptions != job.interruptions:
        store.update_job(ctx.run_id, job.job_id, interruptions=decision.interruptions)
    if not decision.retry:
        store.fail_job(ctx.run_id, job.job_id, describe_exception(action.error))
        store.count(ctx.run_id, calls_failed=1)
        ctx.ports.metrics.count("TasksFailed")
        driver.outcome = "failed"
        fail_run(ctx, call_failure(ctx, job, action.error))
        return []
    ctx.log(f"retrying {job.job_id} after attempt {job.attempt + 1}: {action.error}")
    store.count(ctx.run_id, calls_retried=1)
    ctx.ports.metrics.count("TasksRetried")
    driver.outcome = "retried"
    return [Submit(job, None, job.attempt + 1)]


def call_failure(ctx: RunContext, job: Job, exn: BaseException) -> RunError:
    """The run's error for a failure at ``job``, in miniwdl's nested error JSON."""
    cause = describe_exception(exn)
    return job_failure(ctx.target_info(), ctx.run_id, ctx.run_dir, job.job_id, cause)
