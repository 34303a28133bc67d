"""What `status`, `list` and `submit --follow` show, computed from plain values (pure)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUS_NAMES = {
    "waiting": "waiting",
    "claimed": "waiting",
    "running": "running",
    "done": "succeeded",
    "failed": "failed",
}


def is_call(job_id: str) -> bool:
    """Call jobs (tasks and sub-workflows) among the graph's jobs (decls, scatters, gathers...)."""
    return job_id.rsplit("/", 1)[-1].startswith("call-")


def call_row(job: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """One call's status row from its jobs-table item (as a dict)."""
    now = time.time() if now is None else now
    status = STATUS_NAMES.get(str(job.get("status")), str(job.get("status")))
    if str(job.get("status", "")).startswith("completing"):
        status = "running"
    started, finished = job.get("started_at"), job.get("finished_at")
    if status == "running" and job.get("batch_job_name") and not started:
        status = "queued"
    if status == "succeeded" and job.get("cached_from"):
        status = "cached"  # completed from the call cache: no Batch job
    duration = None
    if started:
        duration = float(finished or (now if status == "running" else started)) - float(started)
    submitted = job.get("batch_job_name") is not None
    return {
        "call": job["job_id"],
        "status": status,
        "attempts": int(job.get("attempt") or 0) + 1 if submitted else 0,
        "duration_seconds": round(duration, 1) if duration is not None else None,
        "batch_job_id": job.get("batch_job_id"),
        "log_stream": job.get("log_stream") or None,
        "cached_from": job.get("cached_from") or None,
    }


def call_rows(jobs: list[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
    return [
        call_row(job, now)
        for job in sorted(jobs, key=lambda j: str(j["job_id"]))
        if is_call(str(job["job_id"]))
    ]


@dataclass(frozen=True)
class Counts:
    done: int = 0
    running: int = 0
    queued: int = 0
    waiting: int = 0
    failed: int = 0
    cached: int = 0  # of the done ones

    @property
    def total(self) -> int:
        return self.done + self.running + self.queued + self.waiting + self.failed


def count_calls(rows: list[dict[str, Any]]) -> Counts:
    tally = {"succeeded": 0, "running": 0, "queued": 0, "waiting": 0, "failed": 0, "cached": 0}
    for row in rows:
        tally[row["status"] if row["status"] in tally else "waiting"] += 1
    return Counts(
        tally["succeeded"] + tally["cached"],
        tally["running"],
        tally["queued"],
        tally["waiting"],
        tally["failed"],
        tally["cached"],
    )


# Above this many jobs, --follow reads the run's counters (one item) instead of every job item.
LARGE_RUN_JOBS = 2000


def counts_from_run(run: dict[str, Any]) -> Counts:
    """Approximate call counts from the run item's counters (large runs): submitted calls not yet
    finished count as running (queued ones included); calls not yet submitted are not known
    apart from other pending graph jobs, so they are left out."""
    submitted, succeeded = (
        int(run.get("calls_submitted") or 0),
        int(run.get("calls_succeeded") or 0),
    )
    failed, retried = int(run.get("calls_failed") or 0), int(run.get("calls_retried") or 0)
    cached = int(run.get("calls_cached") or 0)
    return Counts(
        done=succeeded + cached,
        running=max(0, submitted - succeeded - failed - retried),
        failed=failed,
        cached=cached,
    )


def progress_line(counts: Counts, width: int | None = None) -> str:
    """'calls: 3 of 12 done (1 cached), 2 running, 1 queued, 0 failed' (out of the calls known so
    far), after a bar ``width`` wide when given. One vocabulary for `run`, `--follow`, `status`."""
    cached = f" ({counts.cached} cached)" if counts.cached else ""
    text = (
        f"calls: {counts.done} of {counts.total} done{cached}, {counts.running} running, "
        f"{counts.queued} queued, {counts.failed} failed"
    )
    if width:
        filled = int(width * counts.done / counts.total) if counts.total else 0
        text = f"[{'#' * filled}{'.' * (width - filled)}] {text}"
    return text


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def status_report(
    execution: dict[str, Any], run: dict[str, Any] | None, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Everything `status --json` prints."""
    report: dict[str, Any] = {
        "run_id": execution.get("name"),
        "execution_arn": execution.get("executionArn"),
        "status": execution.get("status"),
        "started": iso(execution.get("startDate")),
        "stopped": iso(execution.get("stopDate")),
    }
    if run:
        report.update(
            {
                "workflow": run.get("workflow_name"),
                "dir": run.get("run_dir"),
                "run_status": run.get("status"),
            }
        )
        if run.get("error"):
            report["error"] = run["error"]
    report["calls"] = rows
    return report


def format_status(report: dict[str, Any]) -> str:
    lines = [f"run {report['run_id']}: {report['status']}"]
    for key in ("workflow", "dir", "started", "stopped"):
        if report.get(key):
            lines.append(f"  {key}: {report[key]}")
    if report.get("error"):
        lines.append(f"  error: {report['error'].get('error')}: {report['error'].get('message')}")
    rows = report["calls"]
    if rows:
        lines.append(progress_line(count_calls(rows)))
        lines.append(
            table(
                ["CALL", "STATUS", "ATTEMPTS", "DURATION", "BATCH JOB", "LOG STREAM"],
                [
                    [
                        r["call"],
                        r["status"],
                        str(r["attempts"]),
                        format_duration(r["duration_seconds"]),
                        r["batch_job_id"] or "-",
                        r["log_stream"] or "-",
                    ]
                    for r in rows
                ],
            )
        )
    else:
        lines.append("no calls yet")
    return "\n".join(lines)


def format_list(executions: list[dict[str, Any]]) -> str:
    if not executions:
        return "no runs"
    rows = []
    for e in executions:
        started, stopped = e.get("startDate"), e.get("stopDate")
        duration = (
            (stopped - started).total_seconds()
            if isinstance(started, datetime) and isinstance(stopped, datetime)
            else None
        )
        rows.append([e["name"], e["status"], iso(started) or "-", format_duration(duration)])
    return table(["RUN", "STATUS", "STARTED", "DURATION"], rows)


def iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value) if value else None


# ---- a finished execution, printed like `miniwdl run` (local `run` and `submit --wait`) --------


def success_report(
    description: dict[str, Any], read_outputs: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """stdout of a succeeded run: {"dir", "outputs"} (+ "s3upload"). Outputs too large for the
    execution's output are only referenced there (``outputs_json``): ``read_outputs`` reads
    them; where it cannot, the report names ``outputs_json`` instead."""
    result = json.loads(description.get("output") or "{}")
    report: dict[str, Any] = {"dir": result.get("dir")}
    if "outputs" in result:
        report["outputs"] = result["outputs"]
    elif result.get("outputs_json") and read_outputs is not None:
        report["outputs"] = read_outputs(result["outputs_json"])
    if "outputs" not in report or report["outputs"] is None:
        report["outputs_json"] = result.get("outputs_json")
        report.pop("outputs", None)
    if result.get("s3upload"):
        report["s3upload"] = result["s3upload"]
    return report


def failure_info(description: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(error name, miniwdl's error JSON) of a run that did not succeed."""
    status = description["status"]
    error = description.get("error") or ("RunCancelled" if status == "ABORTED" else "RunFailed")
    cause = description.get("cause") or ""
    try:
        info = json.loads(cause)
    except ValueError:
        info = {"error": error, "message": cause or f"the execution ended {status}"}
    if not isinstance(info, dict):
        info = {"error": error, "message": str(info)}
    return error, info


def failure_line(error: str, info: dict[str, Any]) -> str:
    message = info.get("message") or (info.get("cause") or {}).get("message") or error
    return f"miniwdl-serverless: {error}: {message}"


TAIL_LINES = 10  # of a failed task's stderr, under the failure line


def failure_details(info: dict[str, Any]) -> list[str]:
    """Under the failure line, as `miniwdl run` logs a failed task: which task (its name and
    line), its exit status, the last lines of its stderr and where its logs are."""
    cause: dict[str, Any] = _mapping(info.get("cause"))
    lines = []
    task, pos = cause.get("task"), cause.get("pos")
    if task and isinstance(pos, dict):
        source = os.path.basename(str(pos.get("source")))
        where = f"{source} Ln {pos.get('line')} Col {pos.get('column')}"
        status = cause.get("exit_status")
        ending = f"exit status {status}" if status is not None else cause.get("error", "an error")
        lines.append(f"  task {task} ({where}) failed with {ending}")
    tail = str(cause.get("stderr_tail") or "").splitlines()[-TAIL_LINES:]
    if tail:
        lines.append(f"  last lines of its stderr ({cause.get('stderr_file')}):")
        lines += [f"    {line}" for line in tail]
    logs = _mapping(info.get("logs"))
    if logs.get("workflow_log"):
        lines.append(f"  workflow log: {logs['workflow_log']}")
    if isinstance(logs.get("cloudwatch"), dict):
        stream = logs["cloudwatch"]
        lines.append(f"  task log: CloudWatch {stream.get('group')} {stream.get('stream')}")
    return lines


def staged_path_map(archive_name: str, documents: dict[str, str]) -> dict[str, str]:
    """A staged workflow's documents are keyed ``/<archive name>/<path in the archive>``:
    each such path to the user's own file (``documents``: path in the archive -> the user's
    path, submit.archive_paths)."""
    return {f"/{archive_name}/{inside}": user for inside, user in documents.items()}


def unstaged(value: Any, paths: dict[str, str]) -> Any:
    """``value`` (an error JSON) with every staged path prefix in its strings replaced by the
    user's own (staged_path_map), so messages name the user's file, not the staged zip."""
    if not paths:
        return value
    if isinstance(value, str):
        for staged, user in sorted(paths.items(), key=lambda item: -len(item[0])):
            value = value.replace(staged, user)
        return value
    if isinstance(value, dict):
        return {key: unstaged(item, paths) for key, item in value.items()}
    if isinstance(value, list):
        return [unstaged(item, paths) for item in value]
    return value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def failure_exit_status(info: dict[str, Any]) -> int:
    """The failed task's exit status, as `miniwdl run` exits; else 2."""
    status = (info.get("cause") or {}).get("exit_status") or info.get("exit_status")
    return int(status) if isinstance(status, int) and 0 < status < 256 else 2


def format_reconcile(report: dict[str, Any]) -> str:
    """What one reconciler round did (the reconcile function's report)."""
    lines = [f"looked at {report.get('runs', 0)} live run(s)"]
    for run_id, actions in (report.get("actions") or {}).items():
        lines += [f"{run_id}: {action}" for action in actions]
    for run_id, problem in (report.get("problems") or {}).items():
        lines.append(f"{run_id}: not reconciled: {problem}")
    replayed, kept = (
        report.get("dead_letters_replayed") or [],
        report.get("dead_letters_kept") or [],
    )
    lines += [f"dead letter replayed: {item}" for item in replayed]
    lines += [f"dead letter kept: {item}" for item in kept]
    if len(lines) == 1:
        lines.append("nothing to reconcile")
    return "\n".join(lines)
