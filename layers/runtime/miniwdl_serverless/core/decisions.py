"""The controller's decisions as pure functions: each takes values and returns a value; the
controller carries them out. Unit-tested in tests/unit/test_decisions.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from miniwdl_serverless.core import payloads
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import (
    batch_job_name,
    call_dir,
    call_tags,
)
from miniwdl_serverless.core.records import (
    FAILED,
    RUN_ENDED,
    RUN_FAILED,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
    Job,
    Run,
)
from miniwdl_serverless.core.resources import (
    DEFAULT_IMAGE,
    DEFAULT_MEMORY_DELTA_MIB,
    TaskSubmission,
    resources_for,
)
from miniwdl_serverless.core.store_rules import LEASE_MARGIN_SECONDS, SUBMIT_LEASE_SECONDS

DEFAULT_JOB_TIMEOUT_SECONDS = 86400  # miniwdl-aws's [aws] job_timeout default


# ---- Batch events ---------------------------------------------------------------------------


class EventKind(Enum):
    FOREIGN = "ignored: not a miniwdl-serverless job"
    STRAGGLER = "terminated: run failed"  # a job still starting after its run failed
    RUN_NOT_RUNNING = "ignored: run not running"
    UNKNOWN_JOB = "ignored: unknown job"
    ANSWERED = "answered: run ended"  # the run ended, its answer was owed: sent again
    RESUME = "resumed"  # the job completed: finish what a crashed invocation left
    RESUBMIT = "resumed submission"  # the previous attempt's end: its retry was never submitted
    FAIL_RUN = "failed: resumed"  # the job failed for good, its run was never failed
    STALE = "ignored: stale event"  # another attempt's, or another Batch job's
    STARTED = "noted"
    SUCCEEDED = "collected"
    FAILED_WITH_EXIT = "collected"  # the command ran: miniwdl's returnCodes decide
    INTERRUPTED = "interrupted"  # the host went away (spot reclaim)
    FAILED_WITHOUT_EXIT = "failed to run"  # never ran (image pull, timeout, ...)
    OTHER = "ignored: status"
    ARRAY_PARENT = "ignored: array parent"  # its children's events say it all (core/arrays.py)


def classify_run_event(detail: BatchJobDetail, run: Run | None) -> EventKind | None:
    """What the run's state says about an event; None: look at the job."""
    if not detail.run_id or not detail.job_id:
        return EventKind.FOREIGN
    if run is not None and run.status == RUN_FAILED and detail.status in ("STARTING", "RUNNING"):
        return EventKind.STRAGGLER
    if run is None or run.status != RUN_RUNNING:
        return EventKind.RUN_NOT_RUNNING
    return None


def classify_job_event(job: Job, detail: BatchJobDetail) -> EventKind:
    """What one Batch event means for the job it names (as the store has it)."""
    if job.completing:
        return EventKind.RESUME
    if _retry_unsubmitted(job, detail):
        return EventKind.RESUBMIT
    if job.status == FAILED and _final(detail) and _names_attempt(job, detail):
        return EventKind.FAIL_RUN  # the run is running: whoever failed the job died
    if (
        job.status != RUNNING
        or job.attempt != detail.attempt
        or job.batch_job_name != detail.jobName
        or job.batch_job_id not in (None, detail.batch_job_id)
    ):
        return EventKind.STALE
    if detail.status in ("STARTING", "RUNNING"):
        return EventKind.STARTED
    if detail.status == "SUCCEEDED":
        return EventKind.SUCCEEDED
    if detail.status == "FAILED":
        if detail.exit_code is not None:
            return EventKind.FAILED_WITH_EXIT
        return EventKind.INTERRUPTED if detail.interrupted else EventKind.FAILED_WITHOUT_EXIT
    return EventKind.OTHER


def _final(detail: BatchJobDetail) -> bool:
    return detail.status in ("SUCCEEDED", "FAILED")


def _names_attempt(job: Job, detail: BatchJobDetail) -> bool:
    """The event is of the job's current attempt and Batch job."""
    return (
        job.attempt == detail.attempt
        and job.batch_job_name == detail.jobName
        and job.batch_job_id in (None, detail.batch_job_id)
    )


def _retry_unsubmitted(job: Job, detail: BatchJobDetail) -> bool:
    """The end of attempt N-1, redelivered, while attempt N has no Batch job: the invocation
    that decided the retry may have died before submitting it."""
    return (
        job.status == RUNNING
        and job.batch_job_id is None
        and detail.attempt is not None
        and job.attempt == detail.attempt + 1
        and detail.status in ("SUCCEEDED", "FAILED")
        and detail.jobName == batch_job_name(job.run_id, job.job_id, detail.attempt)
    )


# ---- the submit lease -----------------------------------------------------------------------


def submit_lease(now: float) -> float:
    """When a lease taken (or renewed) now on an attempt being prepared runs out."""
    return now + SUBMIT_LEASE_SECONDS


def lease_renewal(now: float, held_until: float) -> float | None:
    """None while the lease held still covers the next step; else when a renewal runs out."""
    if now < held_until - LEASE_MARGIN_SECONDS:
        return None
    return submit_lease(now)


# ---- answering the Start task's token -------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the Start task's token is told: success with ``output``, or failure with
    ``error`` and ``cause``."""

    output: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None

    @classmethod
    def success(cls, run_id: str, run_dir: str) -> Answer:
        return cls(output={"run_id": run_id, "dir": run_dir})

    @classmethod
    def failure(cls, error: RunError) -> Answer:
        return cls(error=error.name, cause=payloads.cause_text(error.info))  # fits SendTaskFailure

    def due(self) -> dict[str, Any]:
        """The run's ``answer_due`` marker (the cause is the run's ``error``, kept anyway)."""
        return {"output": self.output} if self.output is not None else {"error": self.error}


def owed_answer(run: Run) -> Answer | None:
    """The answer an ended run still owes its token (None: sent, or nothing to send)."""
    due = run.answer_due
    if run.status not in RUN_ENDED or not due or not run.task_token:
        return None
    if due.get("output") is not None:
        return Answer(output=dict(due["output"]))
    return ended_answer(run, str(due.get("error") or "RunFailed"))


def ended_answer(run: Run, name: str | None = None) -> Answer:
    """How an ended run answers a token (a retried Start's, which the first answer missed)."""
    if run.status == RUN_SUCCEEDED:
        return Answer.success(run.run_id, str(run.run_dir))
    info = run.error or {}
    name = name or str(info.get("error") or "RunFailed")
    return Answer.failure(RunError(name, run.error or {"error": name, "message": name}))


# ---- retries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AfterFailure:
    """Retry the call (with this many interruptions counted) or fail it."""

    retry: bool
    interruptions: int


def after_failed_attempt(
    runtime: dict[str, Any], attempt: int, interruptions: int, interrupted: bool
) -> AfterFailure:
    """miniwdl's rules: an interruption uses up ``preemptible`` first, any other failure
    ``maxRetries`` (attempts that were interruptions do not count against it)."""
    preemptible = int(runtime.get("preemptible") or 0)
    max_retries = int(runtime.get("maxRetries") or 0)
    if interrupted and interruptions < preemptible:
        return AfterFailure(retry=True, interruptions=interruptions + 1)
    retries_used = attempt - interruptions
    return AfterFailure(retry=retries_used < max_retries, interruptions=interruptions)


def queue_for(  # noqa: PLR0913 - the queues, and what of the task picks one
    queue: str | None,
    fallback: str | None,
    preemptible: int,
    interruptions: int,
    gpus: int = 0,
    gpu_queue: str | None = None,
) -> str:
    """The GPU queue for a task that asks for GPUs (when the stack has one: its instances are
    on demand); else the task queue, and the fallback queue once interruptions used up
    ``preemptible``."""
    if gpus and gpu_queue:
        return gpu_queue
    if fallback and preemptible and interruptions >= preemptible:
        queue = fallback
    if not queue:
        raise RunError.of("Configuration", "no task queue configured (task_queue)")
    return queue


# ---- submissions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSettings:
    """What miniwdl's configuration says about submitting tasks, read once per run context."""

    memory_delta_mib: int = DEFAULT_MEMORY_DELTA_MIB
    job_timeout_seconds: int = DEFAULT_JOB_TIMEOUT_SECONDS
    copy_input_files: bool = False
    array_jobs: bool = True  # ``[serverless] array_jobs``: queued calls of one shape as arrays
    # miniwdl's test hook ``[task_runtime] _mock_interruptions``: so many simulated spot
    # interruptions of every preemptible call (the local Batch executor plays them)
    mock_interruptions: int | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> TaskSettings:
        def number(key: str, default: int) -> int:
            return int(cfg.get_int("aws", key)) if cfg.has_option("aws", key) else default

        arrays = cfg.has_option("serverless", "array_jobs")
        return cls(
            memory_delta_mib=number("memory_delta", DEFAULT_MEMORY_DELTA_MIB),
            job_timeout_seconds=number("job_timeout", DEFAULT_JOB_TIMEOUT_SECONDS),
            copy_input_files=bool(cfg["file_io"].get_bool("copy_input_files")),
            array_jobs=bool(cfg.get_bool("serverless", "array_jobs")) if arrays else True,
            mock_interruptions=(
                int(cfg["task_runtime"].get_int("_mock_interruptions"))
                if cfg.has_option("task_runtime", "_mock_interruptions")
                else None
            ),
        )


# A Batch job with this tag is ended by the local executor as AWS ends a job whose spot
# instance was reclaimed (after its command ran, as miniwdl's hook raises after the run).
MOCK_INTERRUPTION_TAG = "msls:mock-interruption"
SPOT_RECLAIMED = "Host EC2 (instance i-0000000000mock) terminated."  # AWS's statusReason


def mock_interruption_tags(
    settings: TaskSettings, runtime: dict[str, Any], interruptions: int
) -> dict[str, str]:
    """miniwdl's ``_mock_interruptions`` rule (runtime/task.py): an attempt of a call whose
    runtime has ``preemptible`` is interrupted while fewer interruptions than the setting
    have been counted."""
    count = settings.mock_interruptions
    if count is None or "preemptible" not in runtime or interruptions >= count:
        return {}
    return {MOCK_INTERRUPTION_TAG: "1"}


TAG_VALUE_LIMIT = 256  # AWS Batch (and AWS tagging in general): characters of a tag value


@dataclass(frozen=True)
class CallAttempt:
    """One attempt of a task call, as miniwdl prepared it."""

    run_id: str
    job_id: str
    attempt: int
    runtime: dict[str, Any]  # miniwdl's evaluated runtime values
    raw_runtime: dict[str, Any]  # the runtime section as written
    script: str


def task_submission(
    call: CallAttempt, settings: TaskSettings, queue: str, run_tags: dict[str, str]
) -> TaskSubmission:
    """Name, queue, image, resources, tags, environment and timeout of the Batch job."""
    if len(call.job_id) > TAG_VALUE_LIMIT:  # events find the call by this tag: never cut it
        raise RunError.of(
            "CallIdTooLong",
            f"call id {call.job_id[:80]}… is {len(call.job_id)} characters; AWS Batch tag "
            f"values hold {TAG_VALUE_LIMIT} (shorten the task, call or sub-workflow names)",
        )
    resources = resources_for(call.runtime, call.raw_runtime, settings.memory_delta_mib)
    tags = dict(run_tags)
    tags.update(call_tags(call.run_id, call.job_id, call.attempt))
    environment = {str(k): str(v) for k, v in (call.runtime.get("env") or {}).items()}
    return TaskSubmission(
        name=batch_job_name(call.run_id, call.job_id, call.attempt),
        queue=queue,
        image=str(call.runtime.get("docker") or DEFAULT_IMAGE),
        resources=resources,
        script=call.script,
        environment=environment,
        tags=tags,
        timeout_seconds=settings.job_timeout_seconds,
    )


DISKS_LIMIT = 200  # characters of runtime.disks a job item keeps (the report shows them)


def runtime_summary(
    submission: TaskSubmission, runtime: dict[str, Any], raw_runtime: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the job item keeps of the runtime (for retries, the status display and the run
    report: ``disks`` as written, bounded, since Batch has no disk request of its own)."""
    disks = (raw_runtime or {}).get("disks")
    if isinstance(disks, list):
        disks = ", ".join(str(d) for d in disks)
    summary = {
        "docker": runtime.get("docker"),
        "cpu": submission.resources.vcpus,
        "memory_mib": submission.resources.memory_mib,
        "gpus": submission.resources.gpus,
        "maxRetries": int(runtime.get("maxRetries") or 0),
        "preemptible": int(runtime.get("preemptible") or 0),
    }
    if disks not in (None, ""):
        summary["disks"] = str(disks)[:DISKS_LIMIT]
    return summary


# ---- scopes and runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeEnd:
    """What a scope's ``outputs`` job completing does: complete the sub-workflow call that
    opened the scope (``parent`` is its job id), or succeed the run (``parent`` None)."""

    parent: str | None
    outputs: dict[str, Any]


def scope_end(scope: str, outputs: dict[str, Any], namespace: str, is_task: bool) -> ScopeEnd:
    """``namespace``: the workflow's name for the run, the calling call's name for a scope."""
    if not scope and is_task:
        return ScopeEnd(None, outputs)
    named = {f"{namespace}.{key}": value for key, value in outputs.items()}
    return ScopeEnd(scope or None, named)


def run_dir_request(root: str, name: str, started_at: str | None) -> tuple[str, str | None]:
    """miniwdl's layout: ``<root>/<YYYYMMDD_HHMMSS>_<name>``, or exactly ``root`` when it
    ends in '/.'. Returns (root, name or None for "exactly root")."""
    if root.endswith("/.") or root == ".":
        return os.path.abspath(root), None
    moment = _parse_time(started_at)
    return root, moment.strftime("%Y%m%d_%H%M%S") + "_" + name


def _parse_time(value: str | None) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Target:
    """What a run runs: its workflow, or the task given with ``task``."""

    name: str
    is_task: bool
    source: str
    line: int
    column: int


def job_failure(
    target: Target, run_id: str, run_dir: str, job_id: str, cause: dict[str, Any]
) -> RunError:
    """miniwdl's nested error JSON: RunFailed for the workflow, the cause from the call."""
    cause = dict(cause)
    cause.setdefault("node", job_id)
    cause["run"] = job_id
    cause["dir"] = call_dir(run_dir, job_id)
    kind = "task" if target.is_task else "workflow"
    reason = str(cause.get("message") or cause.get("error"))
    info: dict[str, Any] = {
        "error": "RunFailed",
        "message": f"{kind} {target.name} failed at {job_id}: {reason}",
        kind: target.name,
        "run": run_id,
        "dir": run_dir,
        "pos": {"source": target.source, "line": target.line, "column": target.column},
        "cause": cause,
    }
    if "exit_status" in cause:
        info["message"] = f"{job_id} command failed with exit status {cause['exit_status']}"
    return RunError(str(cause.get("error") or "RunFailed"), info)
