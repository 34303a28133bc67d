"""`miniwdl-serverless report RUN|DIR [-o FILE]`: a run's HTML report (imperative shell: it reads
the records, core/run_report.py builds the model, core/report_html.py renders it).

RUN, a run id or execution ARN, is read as `status` and `logs` read it: from a deployed stack
(DescribeExecution, the runs and jobs tables, workflow.log and the failed call's stderr through
the logs function), or from the local state directory (cli/local_runs.py) and its run
directory. DIR, a local run directory, is read from its files (workflow.log, error.json) and
its records in the state directory when they are there (as `run --resume DIR` finds them).
A local `run` writes DIR/report.html when the run ends (``write_local_report``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import time
from typing import Any

from miniwdl_serverless.core.report_html import render
from miniwdl_serverless.core.run_report import Report, build_report

LOG_LIMIT = 64 * 2**20  # of workflow.log read (a longer one: its first 64 MiB)
STDERR_TAIL_BYTES = 4096
REPORT_NAME = "report.html"


# ---- reading files a task may have tampered with -----------------------------------------


def read_regular(path: str, limit: int, tail: bool = False) -> str | None:
    """A regular file's text (its first, or with ``tail`` its last, ``limit`` bytes); None if
    it is missing, a link, a FIFO or a device (a task may leave any of them in its call
    directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        if tail:
            opened.seek(max(0, info.st_size - limit))
        return opened.read(limit).decode("utf-8", "replace")


def _inside(path: str, directory: str) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(directory)
    return real == root or real.startswith(root.rstrip("/") + "/")


def local_records(run_dir: str, error: dict[str, Any] | None) -> tuple[str, Any, str | None]:
    """(workflow.log, error.json or ``error``, the failed call's stderr tail) of a run
    directory on this machine."""
    log_text = read_regular(os.path.join(run_dir, "workflow.log"), LOG_LIMIT) or ""
    if error is None:
        text = read_regular(os.path.join(run_dir, "error.json"), 16 * 2**20)
        try:
            error = json.loads(text) if text else None
        except ValueError:
            error = None
    tail = None
    cause = error.get("cause") if isinstance(error, dict) else None
    stderr_file = cause.get("stderr_file") if isinstance(cause, dict) else None
    if isinstance(stderr_file, str) and _inside(stderr_file, run_dir):
        tail = read_regular(stderr_file, STDERR_TAIL_BYTES, tail=True)
    return log_text, error if isinstance(error, dict) else None, tail


def write_report(html_text: str, path: str) -> None:
    """A new file renamed into place: never written through a link left at ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html_text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# ---- a local run, as `run` ends -------------------------------------------------------------


def write_local_report(aws: Any, run_id: str, description: dict[str, Any] | None) -> str | None:
    """report.html in the run's directory, from the embedded AWS's records (the run directory
    may be gone, e.g. ``delete_after``: then nothing). Returns where it was written."""
    run = aws.store.get_run(run_id)
    if run is None or not run.run_dir or not os.path.isdir(run.run_dir):
        return None
    jobs = [job.as_dict() for job in aws.store.query_jobs(run_id)]
    log_text, error, tail = local_records(run.run_dir, run.error)
    report = build_report(
        run_id,
        run.as_dict(),
        jobs,
        log_text,
        error,
        _execution_dates(description),
        tail,
        source=run.run_dir,
        now=time.time(),
    )
    path = os.path.join(run.run_dir, REPORT_NAME)
    write_report(render(report), path)
    return path


def _execution_dates(description: dict[str, Any] | None) -> dict[str, Any] | None:
    if not description:
        return None
    return {k: description.get(k) for k in ("status", "startDate", "stopDate")}


# ---- the command ----------------------------------------------------------------------------


def report_command(args: argparse.Namespace, clients: Any, find_stack: Any) -> int:
    """``find_stack()``: the stack the command names (remote.py's rules)."""
    from miniwdl_serverless.cli import local_runs

    target = args.run
    if os.path.isdir(target):
        report = directory_report(target, args)
        default = os.path.join(target, REPORT_NAME)
    else:
        state = local_runs.chosen(args, os.environ)
        if state is not None:
            report = local_run_report(target, state)
        else:
            report = stack_report(target, clients, find_stack())
        default = f"report-{report.run_id}.html"
    path = args.output or default
    write_report(render(report), path)
    print(path)
    return 0


def directory_report(run_dir: str, args: argparse.Namespace) -> Report:
    from miniwdl_serverless.cli.local_runs import LocalRuns
    from miniwdl_serverless.local.state import StateDir, state_dir_path

    real = os.path.realpath(run_dir)
    state = StateDir(state_dir_path(args.state_dir, os.environ))
    runs = LocalRuns.read(state) if state.exists() else None
    record = runs.run_in(real) if runs is not None else None
    run_id = record.run_id if record is not None else os.path.basename(real)
    jobs = [j.as_dict() for j in runs.jobs(run_id)] if runs is not None and record else []
    execution = runs.execution(run_id) if runs is not None and record else None
    log_text, error, tail = local_records(real, record.error if record else None)
    if record is None and not log_text:
        from miniwdl_serverless.cli.submit import UsageError

        raise UsageError(f"{run_dir} is not a run directory (no workflow.log, no local record)")
    run = record.as_dict() if record else {"run_dir": real, "workflow_name": _workflow_of(real)}
    return build_report(
        run_id, run, jobs, log_text, error, execution, tail, source=real, now=time.time()
    )


def _workflow_of(run_dir: str) -> str | None:
    """miniwdl's run directory name: <YYYYMMDD_HHMMSS>_<workflow>."""
    name = os.path.basename(run_dir)
    parts = name.split("_", 2)
    return parts[2] if len(parts) == 3 and parts[0].isdigit() else None


def local_run_report(run: str, state: Any) -> Report:
    from miniwdl_serverless.cli.local_runs import LocalRuns
    from miniwdl_serverless.cli.submit import UsageError

    runs = LocalRuns.read(state)
    execution = runs.execution(run)
    if execution is None:
        raise UsageError(f"no run {run} among the local runs in {state.path}")
    run_id = str(execution["name"])
    record = runs.run(run_id)
    jobs = [j.as_dict() for j in runs.jobs(run_id)]
    log_text, error, tail = "", record.error if record else None, None
    if record is not None and record.run_dir and os.path.isdir(record.run_dir):
        log_text, error, tail = local_records(record.run_dir, record.error)
    return build_report(
        run_id,
        record.as_dict() if record else None,
        jobs,
        log_text,
        error,
        execution,
        tail,
        source=str(state.path),
        now=time.time(),
    )


def stack_report(run: str, clients: Any, stack: Any) -> Report:
    from miniwdl_serverless.cli import views
    from miniwdl_serverless.cli.stack import (
        describe_execution,
        get_run,
        read_run_file,
        run_id_of,
        run_jobs,
    )

    execution = describe_execution(clients, stack, run)
    run_id = str(execution.get("name") or run_id_of(run))
    record, jobs = get_run(stack, run_id), run_jobs(stack, run_id)
    error = record.error if record is not None else None
    if error is None and execution.get("status") not in ("RUNNING", "SUCCEEDED"):
        error = views.failure_info(execution)[1]
    log_text = _remote_text(clients, stack, run_id, "workflow.log", read_run_file)
    tail = None
    call = _failed_call(error)
    if call:
        found = read_run_file(
            clients,
            stack,
            run_id,
            _failed_stderr(error, record.run_dir if record else None, call),
            tail_bytes=STDERR_TAIL_BYTES,
        )
        tail = found.get("data") if "error" not in found else None
    return build_report(
        run_id,
        record.as_dict() if record else None,
        [j.as_dict() for j in jobs],
        log_text,
        error,
        execution,
        tail,
        source=f"stack {stack.name or stack.state_machine_arn}",
        now=time.time(),
    )


def _failed_stderr(error: Any, run_dir: str | None, call: str) -> str:
    """The failed attempt's stderr, relative to the run directory: the error's ``stderr_file``
    (a retry's ``stderr2.txt``…), else the call's ``stderr.txt``."""
    cause = error.get("cause") if isinstance(error, dict) else None
    named = cause.get("stderr_file") if isinstance(cause, dict) else None
    if isinstance(named, str) and run_dir:  # an EFS path: lexically inside the run directory
        relative = os.path.relpath(os.path.normpath(named), os.path.normpath(run_dir))
        if not relative.startswith("..") and not os.path.isabs(relative):
            return relative
    return f"{call}/stderr.txt"


def _failed_call(error: Any) -> str | None:
    cause = error.get("cause") if isinstance(error, dict) else None
    call = (cause.get("node") or cause.get("run")) if isinstance(cause, dict) else None
    return str(call) if call else None


def _remote_text(clients: Any, stack: Any, run_id: str, path: str, read: Any) -> str:
    """A run file, page after page through the logs function (up to LOG_LIMIT bytes)."""
    chunks: list[str] = []
    offset, size = 0, 0
    while offset < LOG_LIMIT:
        found = read(clients, stack, run_id, path, offset=offset)
        if "error" in found:
            break
        data = str(found.get("data") or "")
        chunks.append(data)
        following, size = int(found.get("next_offset") or 0), int(found.get("size") or 0)
        if following <= offset or following >= size:
            break
        offset = following
    if not chunks:
        print(f"miniwdl-serverless: no {path} for run {run_id}", file=sys.stderr)
    return "".join(chunks)
