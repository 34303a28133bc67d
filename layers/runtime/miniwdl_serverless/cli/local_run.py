"""`miniwdl-serverless run`: a workflow executed locally on the embedded AWS (moto runs the real
ASL; the real handlers serve the Lambda calls; a local Batch executor runs task commands with
bash). Its inputs and stdout follow ``miniwdl run``; the arguments are parsed in main.py."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import stat
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.local import batch_executor

if TYPE_CHECKING:
    from miniwdl_serverless.local.state import StateDir

EXIT_USAGE = 2
EXIT_TERMINATED = 2  # what `miniwdl run` exits with when a signal stops it


def build_execution_input(args: argparse.Namespace) -> dict[str, Any]:
    """Parse inputs exactly as `miniwdl run` does, into the execution input (or, with
    ``--resume DIR``, the input of the local run in DIR, to run again)."""
    if args.resume:
        return resumed_local_input(args)
    if not args.wdl:
        raise ValueError("give the WORKFLOW to run (or --resume DIR)")
    import WDL
    import WDL.CLI
    import WDL.runtime

    from miniwdl_serverless.cli.submit import quiet_logger

    wdl = args.wdl if "://" in args.wdl else os.path.abspath(args.wdl)
    doc = WDL.load(wdl, read_source=WDL.CLI.make_read_source(args.no_outside_imports))
    cfg = WDL.runtime.config.Loader(quiet_logger())
    target, _, input_json = WDL.CLI.runner_input(
        doc,
        args.inputs,
        args.input,
        args.empty,
        args.none,
        task=args.task,
        downloadable=lambda uri, directory: WDL.runtime.download.able(
            cfg, uri, directory=directory
        ),
        root="/",
    )
    config = _config(args)
    data: dict[str, Any] = {"workflow": wdl, "inputs": input_json}
    directory = os.path.abspath(args.dir or os.getcwd())
    if args.dir and args.dir.rstrip("/").endswith("/."):
        directory += "/."
    data["dir"] = directory
    if args.task:
        data["task"] = target.name
    for key in ("s3upload", "delete_after"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    if args.copy_input_files or not batch_executor.sandboxed():
        # without bubblewrap's read-only binds, read-only copies keep the user's files unchanged
        data["copy_input_files"] = True
    if config:
        data["config"] = config
    if args.timeout:
        data["timeout_seconds"] = args.timeout
    return data


def task_env_config(
    config: dict[str, str], items: list[str], current: str | None
) -> dict[str, str]:
    """--env NAME[=VALUE] into the run's config, warning of unset names as miniwdl does."""
    from miniwdl_serverless.core.options import with_task_env

    config, skipped = with_task_env(config, items, os.environ, current)
    if skipped:
        names = ", ".join(skipped)
        print(f"miniwdl-serverless: skipping pass-through of undefined {names}", file=sys.stderr)
    return config


def _config(args: argparse.Namespace) -> dict[str, str]:
    """--cfg SECTION__KEY=VALUE settings, then --no-cache."""
    config = {}
    for item in args.cfg:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--cfg wants SECTION__KEY=VALUE, got {item!r}")
        config[key.upper()] = value
    if args.no_cache:
        config["MINIWDL__CALL_CACHE__GET"] = config["MINIWDL__CALL_CACHE__PUT"] = "false"
    if args.env:  # the handlers run in this process: a configured env is in os.environ
        config = task_env_config(config, args.env, os.environ.get("MINIWDL__TASK_RUNTIME__ENV"))
    return config


def resumed_local_input(args: argparse.Namespace) -> dict[str, Any]:
    """The execution input of the local run whose run directory is ``--resume DIR`` (its
    record in the state directory), made to rerun it through the call cache."""
    from miniwdl_serverless.cli.local_runs import LocalRuns
    from miniwdl_serverless.core.resume import cache_was_off, resumed_input

    if args.wdl or args.inputs or args.input:
        raise ValueError("--resume reruns the run's own workflow and inputs: give no WORKFLOW")
    state = state_dir(args)
    if state is None:
        raise ValueError("--resume needs the state directory (not --no-state)")
    wanted = os.path.realpath(args.resume)
    run = LocalRuns.read(state).run_in(wanted) if state.exists() else None
    if run is None:
        raise ValueError(f"no local run in {wanted} among the runs in {state.path}")
    options = dict(run.options or {})
    if cache_was_off(options):
        print(
            "miniwdl-serverless: that run wrote no call cache: every call runs again",
            file=sys.stderr,
        )
    return resumed_input(options, run.run_dir, run.status)


class Terminated(BaseException):
    """SIGINT or SIGTERM arrived (raised in the main thread by the signal handler)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name


@contextlib.contextmanager
def termination_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise Terminated in the main thread, once: while the run is being
    stopped, further signals are ignored (the stop is bounded, a few seconds at most)."""

    def handle(signum: int, _frame: Any) -> None:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_IGN)
        raise Terminated(signum)

    saved = {name: signal.signal(name, handle) for name in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for name, handler in saved.items():
            signal.signal(name, handler)


def run_local(args: argparse.Namespace) -> int:
    try:
        with termination_signals():
            return _run_local(args)
    except Terminated as stopped:  # before the run started, or while leaving
        info = {"error": "Terminated", "message": f"terminated by {stopped.signal}"}
        print(json.dumps(info, indent=2), file=sys.stderr)
        return EXIT_TERMINATED


def _run_local(args: argparse.Namespace) -> int:
    try:
        execution_input = build_execution_input(args)
    except Exception as exn:
        return _input_error(exn)
    from miniwdl_serverless.local.embedded import EmbeddedAWS

    state, mode = state_dir(args), args.embedded_aws
    with EmbeddedAWS(efs_root="/", workers=args.workers, state=state, mode=mode) as aws:
        command_line = getattr(args, "command_line", None)
        return execute(aws, execution_input, not args.no_progress, command_line)


def state_dir(args: argparse.Namespace) -> StateDir | None:
    """The state directory this run loads and saves (``--state-dir``, the environment's, or
    ``~/.miniwdl-serverless``), or None with ``--no-state``."""
    from miniwdl_serverless.local.state import StateDir, state_dir_path

    if args.no_state:
        return None
    return StateDir(state_dir_path(args.state_dir, os.environ))


def execute(
    aws: Any,
    execution_input: dict[str, Any],
    show_progress: bool = True,
    command_line: list[str] | None = None,
) -> int:
    """Run one execution on an embedded AWS; print like `miniwdl run`; return the exit code.
    With the ``command_line`` that asked for it, the run directory gets miniwdl's ``rerun``."""
    if execution_input.get("s3upload"):
        _create_upload_bucket(execution_input["s3upload"])
    arn = aws.start(execution_input)
    enabled = show_progress and sys.stderr is not None
    from miniwdl_serverless.cli.progress_display import ProgressDisplay, read_counts

    run_id = run_id_of(arn)
    progress = ProgressDisplay(lambda: read_counts(aws.store, run_id), enabled=enabled)
    try:
        description = aws.wait(arn, progress.show)
    except Terminated as stopped:
        progress.clear()
        return _terminated(aws, arn, stopped.signal)
    progress.finish(str(description["status"]))
    leave_report(aws, run_id, description)
    from miniwdl_serverless.cli import views

    if description["status"] == "SUCCEEDED":
        report = views.success_report(description, _read_json)
        write_rerun(report.get("dir"), command_line)
        print(json.dumps(report, indent=2))
        return 0
    error, info = views.failure_info(description)
    write_rerun(info.get("dir"), command_line)
    _add_local_logs(info)
    print(json.dumps(info, indent=2), file=sys.stderr)
    print(views.failure_line(error, info), file=sys.stderr)
    for line in views.failure_details(info):
        print(line, file=sys.stderr)
    return views.failure_exit_status(info)


def leave_report(aws: Any, run_id: str, description: dict[str, Any] | None) -> None:
    """report.html in the run directory, as the run ends (success or failure); a report that
    cannot be written is a warning, never the run's outcome."""
    from miniwdl_serverless.cli.report import write_local_report

    try:
        write_local_report(aws, run_id, description)
    except Exception as exn:  # noqa: BLE001 - best effort: the run's result stands
        print(f"miniwdl-serverless: warning: no report.html: {exn}", file=sys.stderr)


def write_rerun(run_dir: Any, command_line: list[str] | None) -> None:
    """miniwdl's ``rerun`` script in the run directory: the same command, from the same
    directory (a new file only: never written through a link a task left there)."""
    if not run_dir or command_line is None:
        return
    words = " ".join(shlex.quote(word) for word in command_line)
    script = f"pushd {shlex.quote(os.getcwd())} && miniwdl-serverless {words}; popd\n"
    try:
        fd = os.open(
            os.path.join(str(run_dir), "rerun"),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
        )
    except OSError:
        return
    with os.fdopen(fd, "w") as rerun:
        rerun.write(script)


STDERR_TAIL_BYTES = 2048


def _add_local_logs(info: dict[str, Any]) -> None:
    """Where the run's log is and the failed task's stderr tail, read from this machine's
    run directory (a regular file only: a task may have left a link or a FIFO there)."""
    run_dir = info.get("dir")
    if run_dir:
        info["logs"] = {"workflow_log": os.path.join(str(run_dir), "workflow.log")}
    cause = info.get("cause") if isinstance(info.get("cause"), dict) else None
    stderr_file = cause.get("stderr_file") if cause else None
    if not cause or not stderr_file:
        return
    try:
        fd = os.open(str(stderr_file), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    with os.fdopen(fd, "rb") as opened:
        size = os.fstat(opened.fileno())
        if not stat.S_ISREG(size.st_mode):
            return
        opened.seek(max(0, size.st_size - STDERR_TAIL_BYTES))
        cause["stderr_tail"] = opened.read().decode("utf-8", "replace")


def _read_json(reference: str) -> Any:
    """outputs.json of a local run (its outputs were too large for the execution's output):
    the run directory's, or the uploaded copy in the embedded AWS's S3."""
    if reference.startswith("s3://"):
        from miniwdl_serverless.adapters import clients

        bucket, key = reference[len("s3://") :].split("/", 1)
        return json.loads(clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    with open(reference, encoding="utf-8") as infile:
        return json.load(infile)


def _terminated(aws: Any, arn: str, signal_name: str) -> int:
    """Stop the run (its tasks killed, the execution stopped, the run failed), record the error
    in the run directory and print it, as `miniwdl run` does when it is interrupted."""
    message = f"terminated by {signal_name}"
    aws.stop(arn, message)
    run = aws.store.get_run(run_id_of(arn))
    cause = {"error": "Terminated", "message": message}
    info: dict[str, Any] = {"error": "RunFailed", "message": f"the run was {message}"}
    info.update(run=run_id_of(arn), cause=cause)
    if run is not None and run.run_dir:
        info["dir"] = run.run_dir
        _record_termination(aws, run.run_dir, run.workflow_name, info)
        leave_report(aws, run_id_of(arn), None)
    print(json.dumps(info, indent=2), file=sys.stderr)
    print(f"miniwdl-serverless: {info['message']}", file=sys.stderr)
    return EXIT_TERMINATED


def _record_termination(aws: Any, run_dir: str, workflow: str | None, info: dict[str, Any]) -> None:
    from miniwdl_serverless.controller.context import append_workflow_log

    try:
        aws.run_files.write_json(os.path.join(run_dir, "error.json"), info)
    except OSError:  # the run directory may be gone: the error printed stands
        return
    append_workflow_log(aws.run_files, run_dir, workflow, f"workflow {info['cause']['message']}")


def _input_error(exn: Exception) -> int:
    from miniwdl_serverless.core.errors import describe_exception, source_excerpt

    info = describe_exception(exn)
    print(f"miniwdl-serverless: {info.get('error')}: {info.get('message')}", file=sys.stderr)
    for line in source_excerpt(exn):
        print(line, file=sys.stderr)
    return EXIT_USAGE


def _create_upload_bucket(uri: str) -> None:
    from miniwdl_serverless.adapters import clients

    bucket = uri[len("s3://") :].split("/", 1)[0]
    try:
        clients.client("s3").create_bucket(Bucket=bucket)
    except Exception:
        pass
