"""The advance function's work: what one Batch "Job State Change" event means for its run."""

from __future__ import annotations

import time
from typing import Any

import WDL

from miniwdl_serverless.controller.actions import (
    Action,
    AttemptFailed,
    Collect,
    NoteStarted,
    Offer,
    Submit,
)
from miniwdl_serverless.controller.context import (
    RunContext,
    RunNames,
    load_context,
    log_call_lines,
)
from miniwdl_serverless.controller.drive import Driver
from miniwdl_serverless.controller.end import (
    AnswerNotSent,
    answer_owed,
    fail_run,
    fail_unloadable_run,
)
from miniwdl_serverless.controller.localize import on_download_event
from miniwdl_serverless.controller.ports import Ports, Started, TransientError
from miniwdl_serverless.controller.submission import started_line
from miniwdl_serverless.core.decisions import (
    EventKind,
    classify_job_event,
    classify_run_event,
    job_failure,
    owed_answer,
)
from miniwdl_serverless.core.errors import as_run_error
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import TAG_ARRAY, batch_job_name, call_tags
from miniwdl_serverless.core.localizing import DOWNLOAD_TAG
from miniwdl_serverless.core.records import Job, Run
from miniwdl_serverless.core.work import ARRAY, array_key


def on_batch_event(detail: BatchJobDetail, ports: Ports) -> str:
    """React to one Batch job state change; returns what was done (for logs and tests).
    Raises AnswerNotSent if the run ended and Step Functions could not be told (so that
    the event is delivered again)."""
    if DOWNLOAD_TAG in detail.tags:  # a download job's end settles a cache entry, not a call
        return on_download_event(detail, ports)
    if detail.is_array_parent:  # its children speak for their calls
        return EventKind.ARRAY_PARENT.value
    if detail.array_child is not None:
        call_event = _child_as_call(detail, ports)
        if call_event is None:
            return EventKind.UNKNOWN_JOB.value
        detail = call_event
    if _noted_start(detail, ports):
        return EventKind.STARTED.value
    return _on_task_event(detail, ports)


def _child_as_call(detail: BatchJobDetail, ports: Ports) -> BatchJobDetail | None:
    """An array child's event as its call's own Batch job would send it: the call it runs
    (the array's item in the work table, by the array's name) and that call's tags and name
    (attempt 0: only first attempts run in arrays). None: no such array, or index."""
    child = detail.array_child
    assert child is not None
    children = _array_children(ports, detail.tags.get(TAG_ARRAY) or detail.jobName)
    if children is None or not 0 <= child[1] < len(children[1]):
        return None
    run_id, job_id = children[0], children[1][child[1]]
    tags = {**detail.tags, **call_tags(run_id, job_id, 0)}
    return detail.model_copy(update={"tags": tags, "jobName": batch_job_name(run_id, job_id, 0)})


_arrays: dict[str, tuple[str, list[str]]] = {}  # an array's run and children never change
MAX_CACHED = 1024  # entries a cache of this module holds


def _array_children(ports: Ports, name: str) -> tuple[str, list[str]] | None:
    if name not in _arrays:
        item = ports.work.get(array_key(name))
        if item is None or item.kind != ARRAY:
            return None
        _keep(_arrays, name, (item.run_id, [str(c) for c in item.body.get("children", [])]))
    return _arrays[name]


def _on_task_event(detail: BatchJobDetail, ports: Ports) -> str:
    run, job = _run_and_job(detail, ports)
    kind = classify_run_event(detail, run)
    if kind is EventKind.STRAGGLER:
        ports.batch.terminate(detail.batch_job_id, "miniwdl-serverless: run failed")
    if kind is not None:
        if run is not None and owed_answer(run) is not None:  # its ender may have died
            if not answer_owed(run, ports):
                raise AnswerNotSent(run.run_id)
            return EventKind.ANSWERED.value
        return kind.value
    assert run is not None and detail.job_id is not None
    if job is None:
        return EventKind.UNKNOWN_JOB.value
    kind = classify_job_event(job, detail)
    ctx = loaded_context(run, ports)
    if isinstance(ctx, str):
        return ctx
    if kind is EventKind.FAIL_RUN:  # the job's failure was recorded, the run's end was not
        cause = job.error or {"error": "RunFailed", "message": detail.status_reason}
        fail_run(ctx, job_failure(ctx.target_info(), run.run_id, ctx.run_dir, job.job_id, cause))
        if ctx.unanswered:
            raise AnswerNotSent(run.run_id)
        return kind.value
    driver = Driver(ports, ctx)
    driver.run(_actions(kind, job, detail))
    if kind is EventKind.OTHER:
        return f"{kind.value} {detail.status}"
    return driver.outcome or kind.value


def _noted_start(detail: BatchJobDetail, ports: Ports) -> bool:
    """A call's Batch job started: noted in one conditional write, with no read of the run or
    the job (a start is half of a call's events). False: the condition failed (the attempt
    moved on, the start was noted before, the job is completing), and the event takes the
    path every other does, reading both. The run's status is not checked here: a run that
    ended terminated every Batch job it knew of, and the submitter terminates what it
    submitted for a run that ended meanwhile."""
    if detail.status != "RUNNING" or not detail.run_id or detail.job_id is None:
        return False
    if detail.attempt is None:
        return False
    started = Started(
        detail.attempt, detail.jobName, detail.batch_job_id, detail.log_stream or "", time.time()
    )
    job = ports.store.note_started(detail.run_id, detail.job_id, started)
    if job is None:
        return False
    names = _names_of(ports, detail.run_id)
    if names is not None:
        log_call_lines(ports.files, names, job.job_id, started_line(job, detail.batch_job_id))
    return True


_run_names: dict[str, RunNames] = {}  # a run's never change once it is planned


def _names_of(ports: Ports, run_id: str) -> RunNames | None:
    if run_id not in _run_names:
        run = ports.store.get_run(run_id)
        if run is None or not run.run_dir:
            return None
        _remember_names(run)
    return _run_names[run_id]


def _remember_names(run: Run) -> None:
    if run.run_dir:
        _keep(_run_names, run.run_id, RunNames.of(run))


def _keep(cache: dict[str, Any], key: str, value: Any) -> None:
    """Into a per-container cache of values that never change, emptied when it is full."""
    if len(cache) >= MAX_CACHED:
        cache.clear()
    cache[key] = value


def _run_and_job(detail: BatchJobDetail, ports: Ports) -> tuple[Run | None, Job | None]:
    """The event's run and call, in one read (most events need both)."""
    if not detail.run_id:
        return None, None
    if detail.job_id is None:
        run, job = ports.store.get_run(detail.run_id), None
    else:
        run, job = ports.store.get_run_and_job(detail.run_id, detail.job_id)
    if run is not None:
        _remember_names(run)
    return run, job


def loaded_context(run: Run, ports: Ports) -> RunContext | str:
    """The run's context, or what was done instead: a run whose WDL bundle a task changed or
    swapped (TamperedState, UnsafePath) fails here, rather than every delivery of its events."""
    try:
        return load_context(run, ports)
    except TransientError:
        raise
    except Exception as exn:
        if not fail_unloadable_run(run, ports, as_run_error(exn)):
            raise AnswerNotSent(run.run_id) from exn
        return "failed: " + type(exn).__name__


def _actions(kind: EventKind, job: Job, detail: BatchJobDetail) -> list[Action]:
    if kind is EventKind.RESUME:
        return [Offer(job, job.job_id)]
    if kind is EventKind.RESUBMIT:
        return [Submit(job, None, job.attempt, resubmit=True)]
    if kind is EventKind.STARTED:
        return [NoteStarted(job, detail.log_stream, detail.batch_job_id)]
    if kind in (EventKind.SUCCEEDED, EventKind.FAILED_WITH_EXIT):
        return [Collect(job, detail.exit_code or 0)]
    if kind is EventKind.INTERRUPTED:
        return [AttemptFailed(job, WDL.runtime.Interrupted(detail.status_reason), interrupted=True)]
    if kind is EventKind.FAILED_WITHOUT_EXIT:
        reason = detail.status_reason or "no exit code"
        return [AttemptFailed(job, RuntimeError(f"AWS Batch job failed: {reason}"), False)]
    return []
