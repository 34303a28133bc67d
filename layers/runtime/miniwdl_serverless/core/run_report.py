"""A run's report model (`miniwdl-serverless report`, and the report.html a local `run` leaves):
built from the run's records by pure functions — the run item, its job items, its workflow.log
text and its error — and rendered by core/report_html.py.

The timeline comes from workflow.log (each attempt's submission, start and end are logged there
with a timestamp; a job item keeps only its last attempt's times), completed by the job items
(resources, cache hits, the last attempt's times when the log is missing or cut).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from miniwdl_serverless.core.cost_model import Cost, Invocations, Prices, Usage, orchestration_cost

# Attempt outcomes (and call statuses): each has its colour in the gantt.
SUCCEEDED, FAILED, RETRIED, CACHED = "succeeded", "failed", "retried", "cached"
STOPPED, RUNNING, QUEUED, WAITING = "stopped", "running", "queued", "waiting"


@dataclass(frozen=True)
class LogEvent:
    """One workflow.log line the timeline uses."""

    at: float
    kind: str  # submitted, running, finished, retrying, cached, run-started, run-ended
    call: str | None = None
    attempt: int | None = None  # 1-based, as the log says it
    detail: str = ""  # image and queue, exit status, the retry's or the failure's message


_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) wdl\.\S+ (.*)$")
_EVENTS = (
    ("submitted", re.compile(r"^submitting (\S+) attempt (\d+) \((.*)\)$")),
    ("running", re.compile(r"^(\S+) attempt (\d+) running as Batch job (\S+)$")),
    ("finished", re.compile(r"^finished (\S+) \(exit status (-?\d+)\)$")),
    ("retrying", re.compile(r"^retrying (\S+) after attempt (\d+): (.*)$")),
    ("cached", re.compile(r"^(\S+): call cache hit, outputs of (.*)$")),
    ("run-started", re.compile(r"^run (\S+) started: (.*)$")),
    ("run-ended", re.compile(r"^workflow (finished|failed: .*|terminated by .*)$")),
)


def parse_workflow_log(text: str) -> list[LogEvent]:
    """The timeline's events in workflow.log, in the file's order (lines it does not know, or
    cut short, are skipped: the log is best effort)."""
    events = []
    for line in text.splitlines():
        matched = _LINE.match(line)
        if not matched:
            continue
        at = _timestamp(matched.group(1))
        message = matched.group(2)
        for kind, pattern in _EVENTS:
            found = pattern.match(message)
            if found:
                events.append(_event(kind, at, found.groups()))
                break
    return events


def _timestamp(stamp: str) -> float:
    parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")  # UTC: context.append_log_line
    return parsed.replace(tzinfo=timezone.utc).timestamp()


def _event(kind: str, at: float, groups: tuple[str, ...]) -> LogEvent:
    if kind in ("submitted", "running", "retrying"):
        return LogEvent(at, kind, groups[0], int(groups[1]), groups[2])
    if kind == "finished":
        return LogEvent(at, kind, groups[0], None, groups[1])
    if kind == "cached":
        return LogEvent(at, kind, groups[0], None, groups[1])
    if kind == "run-started":
        return LogEvent(at, kind, None, None, groups[1])
    return LogEvent(at, kind, None, None, groups[0])


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based
    queued_at: float | None = None  # submitted
    started_at: float | None = None  # its Batch job running
    ended_at: float | None = None
    outcome: str = QUEUED
    detail: str = ""  # exit status, or why it was retried / failed


@dataclass(frozen=True)
class Resources:
    cpu: int | None = None
    memory_mib: int | None = None
    gpus: int | None = None
    disks: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class CallRow:
    """One task call (one row per scatter shard: each shard is its own call)."""

    call: str
    status: str
    shard: str | None = None  # the scatter indices, "2" or "0.3"
    attempts: tuple[Attempt, ...] = ()
    resources: Resources = field(default_factory=Resources)
    batch_job_id: str | None = None
    cached_from: str | None = None

    @property
    def first_at(self) -> float | None:
        times = [a.queued_at or a.started_at for a in self.attempts]
        return min((t for t in times if t is not None), default=None)

    @property
    def last_at(self) -> float | None:
        times = [a.ended_at or a.started_at or a.queued_at for a in self.attempts]
        return max((t for t in times if t is not None), default=None)

    @property
    def wall_seconds(self) -> float | None:
        first, last = self.first_at, self.last_at
        return None if first is None or last is None else max(0.0, last - first)

    @property
    def running_seconds(self) -> float | None:
        """Time its Batch jobs ran (every attempt's)."""
        spans = [
            a.ended_at - a.started_at
            for a in self.attempts
            if a.started_at is not None and a.ended_at is not None
        ]
        return sum(spans) if spans else None

    @property
    def queued_seconds(self) -> float | None:
        spans = [
            a.started_at - a.queued_at
            for a in self.attempts
            if a.started_at is not None and a.queued_at is not None
        ]
        return sum(spans) if spans else None


@dataclass(frozen=True)
class Failure:
    error: str
    message: str
    call: str | None = None
    exit_status: int | None = None
    stderr_file: str | None = None
    stderr_tail: str | None = None


@dataclass(frozen=True)
class Report:
    run_id: str
    workflow: str | None
    status: str  # succeeded, failed, running (the run's), or the execution's when only it is known
    run_dir: str | None
    started_at: float | None
    ended_at: float | None
    calls: tuple[CallRow, ...]
    failure: Failure | None
    cost: Cost
    usage: Usage
    source: str = ""  # where the records were read (a directory, a stack)
    generated_at: float = 0.0

    @property
    def wall_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def counts(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for row in self.calls:
            tally[row.status] = tally.get(row.status, 0) + 1
        return tally


# ---- building the model ----------------------------------------------------------------------


def is_task_call(job: dict[str, Any], scopes: set[str]) -> bool:
    """Task calls among the job items: call jobs that open no scope (a sub-workflow call's
    children carry its id as their scope)."""
    job_id = str(job.get("job_id"))
    return job_id.rsplit("/", 1)[-1].startswith("call-") and job_id not in scopes


def shard_label(job: dict[str, Any]) -> str | None:
    stack = job.get("scatter_stack") or []
    indices = [str(entry[0]).split("-", 1)[0] for entry in stack if entry]
    return ".".join(indices) if indices else None


def _shard_in(job: dict[str, Any] | None, every: dict[str, dict[str, Any]]) -> str | None:
    """A call's scatter indices, or its sub-workflow call's (a shard of a scattered
    sub-workflow runs its calls in a scope of their own, with no scatter of theirs)."""
    while job is not None:
        label = shard_label(job)
        if label or not job.get("scope"):
            return label
        job = every.get(str(job["scope"]))
    return None


def resources_of(job: dict[str, Any] | None, image: str | None) -> Resources:
    runtime = (job or {}).get("runtime") or {}
    disks = runtime.get("disks")
    return Resources(
        cpu=_int(runtime.get("cpu")),
        memory_mib=_int(runtime.get("memory_mib")),
        gpus=_int(runtime.get("gpus")),
        disks=_disks(disks),
        image=str(runtime.get("docker") or image or "") or None,
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _disks(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def attempts_from_log(events: Iterable[LogEvent]) -> list[Attempt]:
    """One call's attempts from its events, in order."""
    attempts: dict[int, Attempt] = {}
    current = 0
    for event in events:
        number = event.attempt or current or 1
        found = attempts.get(number, Attempt(number))
        if event.kind == "submitted":
            found = replace(found, queued_at=found.queued_at or event.at)
        elif event.kind == "running":
            found = replace(found, started_at=found.started_at or event.at, outcome=RUNNING)
        elif event.kind == "retrying":
            found = replace(found, ended_at=event.at, outcome=RETRIED, detail=event.detail)
        elif event.kind == "finished":
            detail = f"exit status {event.detail}"
            found = replace(found, ended_at=event.at, outcome=SUCCEEDED, detail=detail)
        elif event.kind == "cached":
            found = Attempt(number, event.at, event.at, event.at, CACHED, event.detail)
        attempts[number] = found
        current = max(current, number)
    return [attempts[n] for n in sorted(attempts)]


def attempts_from_record(job: dict[str, Any]) -> list[Attempt]:
    """Without the log: the last attempt's times, as the job item keeps them."""
    if not job.get("batch_job_name") and not job.get("cached_from"):
        return []
    number = int(job.get("attempt") or 0) + 1
    at = _float(job.get("finished_at"))
    if job.get("cached_from"):
        return [Attempt(number, at, at, at, CACHED, str(job["cached_from"]))]
    outcome = {"done": SUCCEEDED, "failed": FAILED}.get(str(job.get("status")), RUNNING)
    started = _float(job.get("started_at"))
    if outcome == RUNNING and started is None:
        outcome = QUEUED
    ended = at if outcome in (SUCCEEDED, FAILED) else None
    return [Attempt(number, _float(job.get("submitted_at")), started, ended, outcome)]


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _close(
    attempts: list[Attempt], status: str, failed_at: float | None, run_end: float | None
) -> list[Attempt]:
    """The last attempt of a failed call fails (at the failure); attempts still open when the
    run ended were stopped with it (fail fast terminates them)."""
    closed = []
    for index, attempt in enumerate(attempts):
        last = index == len(attempts) - 1
        if last and status == FAILED and attempt.outcome not in (FAILED, SUCCEEDED):
            end = attempt.ended_at or failed_at or run_end
            attempt = replace(attempt, ended_at=end, outcome=FAILED)
        elif attempt.ended_at is None and run_end is not None:
            attempt = replace(attempt, ended_at=run_end, outcome=STOPPED)
        closed.append(attempt)
    return closed


def call_status(job: dict[str, Any] | None, attempts: list[Attempt], failed_call: bool) -> str:
    if failed_call or (job or {}).get("status") == "failed":
        return FAILED
    if (job or {}).get("cached_from") or (attempts and attempts[-1].outcome == CACHED):
        return CACHED
    if job is not None and job.get("status") == "done":
        return SUCCEEDED
    if not attempts:
        return WAITING
    outcome = attempts[-1].outcome
    return RETRIED if outcome == RETRIED else outcome


def failure_of(error: dict[str, Any] | None, stderr_tail: str | None) -> Failure | None:
    """miniwdl's error JSON (error.json, the run item's error, the execution's cause)."""
    if not isinstance(error, dict) or not error:
        return None
    found = error.get("cause")
    cause: dict[str, Any] = found if isinstance(found, dict) else {}
    call = cause.get("node") or cause.get("run") or None
    status = cause.get("exit_status", error.get("exit_status"))
    tail = stderr_tail if stderr_tail is not None else cause.get("stderr_tail")
    return Failure(
        error=str(error.get("error") or "RunFailed"),
        message=str(error.get("message") or cause.get("message") or ""),
        call=str(call) if call else None,
        exit_status=status if isinstance(status, int) else None,
        stderr_file=str(cause["stderr_file"]) if cause.get("stderr_file") else None,
        stderr_tail=str(tail) if tail else None,
    )


def failed_call_of(error: dict[str, Any] | None) -> str | None:
    failure = failure_of(error, None)
    return failure.call if failure else None


def build_calls(
    jobs: list[dict[str, Any]],
    events: list[LogEvent],
    failed_call: str | None,
    run_end: float | None,
) -> list[CallRow]:
    """Every task call's row: the log's attempts, the job items' resources and statuses."""
    scopes = {str(j.get("scope")) for j in jobs if j.get("scope")}
    every = {str(j["job_id"]): j for j in jobs}
    by_id = {str(j["job_id"]): j for j in jobs if is_task_call(j, scopes)}
    logged: dict[str, list[LogEvent]] = {}
    images: dict[str, str] = {}
    for event in events:
        if event.call is not None and event.call.rsplit("/", 1)[-1].startswith("call-"):
            logged.setdefault(event.call, []).append(event)
            if event.kind == "submitted":
                images[event.call] = event.detail.split(",", 1)[0]
    failed_at = next(
        (e.at for e in events if e.kind == "run-ended" and e.detail.startswith("failed")), None
    )
    rows = []
    for call_id in sorted(set(by_id) | set(logged), key=_call_order):
        job = by_id.get(call_id)
        attempts = attempts_from_log(logged.get(call_id, []))
        if not attempts and job is not None:
            attempts = attempts_from_record(job)
            if not attempts and job.get("status") == "done":
                continue  # a sub-workflow call with no children read: its calls are the rows
        failed = call_id == failed_call
        status = call_status(job, attempts, failed)
        attempts = _close(attempts, status, failed_at, run_end)
        if status in (RUNNING, QUEUED) and attempts and attempts[-1].outcome == STOPPED:
            status = STOPPED
        rows.append(
            CallRow(
                call=call_id,
                status=status,
                shard=_shard_in(job, every),
                attempts=tuple(attempts),
                resources=resources_of(job, images.get(call_id)),
                batch_job_id=(job or {}).get("batch_job_id"),
                cached_from=(job or {}).get("cached_from"),
            )
        )
    return rows


def _call_order(call_id: str) -> tuple[Any, ...]:
    """Shards in index order (call-x-2 before call-x-10)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[-/]", call_id))


def build_report(  # noqa: PLR0913 - the records a report is made of, each from its own read
    run_id: str,
    run: dict[str, Any] | None,
    jobs: list[dict[str, Any]],
    log_text: str,
    error: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    stderr_tail: str | None = None,
    source: str = "",
    now: float = 0.0,
    prices: Prices | None = None,
) -> Report:
    """The report of one run from its records (any of them may be missing)."""
    run = run or {}
    events = parse_workflow_log(log_text)
    error = error or run.get("error") or None
    started = _float(run.get("created_at")) or _execution_time(execution, "startDate")
    started = started or next((e.at for e in events if e.kind == "run-started"), None)
    ended = _float(run.get("finished_at")) or _execution_time(execution, "stopDate")
    ended = ended or next((e.at for e in events if e.kind == "run-ended"), None)
    status = str(run.get("status") or "")
    if status not in ("succeeded", "failed", "running"):
        status = _status_of(execution, events, error)
    calls = build_calls(jobs, events, failed_call_of(error), ended)
    failure = failure_of(error, stderr_tail) if status != "succeeded" else None
    hours = ((ended or now) - started) / 3600 if started else 0.0
    usage = estimate_usage(calls, len(jobs) or int(run.get("jobs_total") or 0), max(0.0, hours))
    return Report(
        run_id=run_id,
        workflow=run.get("workflow_name"),
        status=status,
        run_dir=run.get("run_dir"),
        started_at=started,
        ended_at=ended,
        calls=tuple(calls),
        failure=failure,
        cost=orchestration_cost(usage, prices or Prices()),
        usage=usage,
        source=source,
        generated_at=now,
    )


def _execution_time(execution: dict[str, Any] | None, key: str) -> float | None:
    value = (execution or {}).get(key)
    return value.timestamp() if isinstance(value, datetime) else _float(value)


def _status_of(
    execution: dict[str, Any] | None, events: list[LogEvent], error: dict[str, Any] | None
) -> str:
    known = {"SUCCEEDED": "succeeded", "RUNNING": "running"}
    if execution and execution.get("status"):
        return known.get(str(execution["status"]), "failed")
    ended = [e for e in events if e.kind == "run-ended"]
    if ended:
        return "succeeded" if ended[-1].detail == "finished" else "failed"
    return "failed" if error else "running"


# ---- the orchestration cost estimate ---------------------------------------------------------

# Requests and durations per event, as bench/bench_cost.py counted them on the real controller
# (a 1,000-task scatter; bench/results.json "cost"): an advance invocation per Batch event
# (a call attempt has two, RUNNING and its end), the start's share per call it plans and
# submits, a reconcile round every RECONCILE_MINUTES. Function memory: template.yaml's.
ADVANCE_MS, ADVANCE_READ_UNITS, ADVANCE_WRITE_UNITS = 44.0, 3.0, 3.0
START_MS_PER_CALL, START_READ_UNITS_PER_CALL, START_WRITE_UNITS_PER_CALL = 150.0, 1.0, 7.0
GRAPH_JOB_WRITE_UNITS = 2.0  # each other graph job (declarations, scatters, gathers) is put once
SUBMITTER_MS_PER_JOB, SUBMIT_BATCH = 65.0, 100  # a SubmitJob and its pacing; stream batch size
RECONCILE_MINUTES, RECONCILE_MS = 5, 520.0
FINISH_MS, FINISH_READ_UNITS, FINISH_WRITE_UNITS = 2000.0, 3.0, 2.0
INIT_MS = 1500.0  # one cold start per function and run
MEMORY_MB, FINISH_MEMORY_MB = 1024, 2048
SFN_TRANSITIONS = 7  # the states a run passes through (statemachine/run_workflow.asl.json)


def estimate_usage(calls: Iterable[CallRow], graph_jobs: int, hours: float) -> Usage:
    """What the run's orchestration used, from what it did: attempts submitted, cache hits,
    graph jobs, and how long it was live (reconcile rounds)."""
    rows = list(calls)
    submitted = sum(1 for r in rows for a in r.attempts if a.outcome != CACHED)
    cached = sum(1 for r in rows for a in r.attempts if a.outcome == CACHED)
    events = 2 * submitted
    rounds = math.ceil(hours * 60 / RECONCILE_MINUTES) if hours > 0 else 0
    planned = submitted + cached
    others = max(0, graph_jobs - len(rows))
    invocations = [
        Invocations("start", 1, MEMORY_MB, START_MS_PER_CALL * max(1, planned), 1, INIT_MS),
        Invocations("advance", events, MEMORY_MB, ADVANCE_MS, 1 if events else 0, INIT_MS),
        Invocations(
            "submitter",
            math.ceil(submitted / SUBMIT_BATCH),
            MEMORY_MB,
            SUBMITTER_MS_PER_JOB * min(submitted, SUBMIT_BATCH),
            1 if submitted else 0,
            INIT_MS,
        ),
        Invocations("reconcile", rounds, MEMORY_MB, RECONCILE_MS, 1 if rounds else 0, INIT_MS),
        Invocations("finish", 1, FINISH_MEMORY_MB, FINISH_MS, 1, INIT_MS),
    ]
    reads = (
        events * ADVANCE_READ_UNITS
        + planned * START_READ_UNITS_PER_CALL
        + rounds * (1 + submitted)
        + FINISH_READ_UNITS
    )
    writes = (
        events * ADVANCE_WRITE_UNITS
        + planned * START_WRITE_UNITS_PER_CALL
        + others * GRAPH_JOB_WRITE_UNITS
        + FINISH_WRITE_UNITS
    )
    return Usage(
        invocations=tuple(invocations),
        ddb_read_units=reads,
        ddb_write_units=writes,
        sfn_transitions=SFN_TRANSITIONS,
        aws_events=events + 1,  # + the execution's end
        sqs_requests=rounds,  # each round reads the dead-letter queue
    )
