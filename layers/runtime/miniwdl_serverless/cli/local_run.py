"""`miniwdl-serverless run`: a workflow executed locally on the embedded AWS (moto runs the real
ASL; the real handlers serve the Lambda calls; a local Batch executor runs task commands with
bash). Its inputs and stdout follow ``miniwdl run``; the arguments are parsed in main.py."""

from __future__ import annotations

import argparse
import contextlib
import gc
import glob
import json
import logging
import os
import shlex
import signal
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from miniwdl_serverless.core.call_files import stream_attempt
from miniwdl_serverless.core.ids import run_id_of

if TYPE_CHECKING:
    from miniwdl_serverless.local.state import StateDir

EXIT_USAGE = 2
# build_execution_input's keys that are for this command only (-j's JSON, error paths)
LOCAL_ONLY_KEYS = ("input_json", "user_paths")
EXIT_TERMINATED = 2  # what `miniwdl run` exits with when a signal stops it
Entered = TypeVar("Entered")


def build_execution_input(args: argparse.Namespace, scratch: str | None = None) -> dict[str, Any]:
    """Parse inputs exactly as `miniwdl run` does, into the execution input (or, with
    ``--resume DIR``, the input of the local run in DIR, to run again). With ``-p DIR`` the
    document is packaged with its imports as a miniwdl zip in ``scratch`` (the controller
    then finds every import in it)."""
    if args.resume:
        return resumed_local_input(args)
    if not args.wdl:
        raise ValueError("give the WORKFLOW to run (or --resume DIR)")
    import WDL
    import WDL.CLI
    import WDL.runtime

    from miniwdl_serverless.cli.submit import quiet_logger
    from miniwdl_serverless.core import wdl_extensions

    wdl_extensions.install()  # the document and inputs may use Object

    wdl = args.wdl if "://" in args.wdl else os.path.abspath(args.wdl)
    doc = WDL.load(
        wdl,
        [os.path.abspath(p) for p in args.path],
        check_quant=not args.no_quant_check,
        read_source=WDL.CLI.make_read_source(args.no_outside_imports),
    )
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
    data: dict[str, Any] = {"inputs": input_json}
    if args.path and scratch is not None and not args.json_only:
        from miniwdl_serverless.cli.submit import archive_paths
        from miniwdl_serverless.cli.views import staged_path_map

        data["user_paths"] = staged_path_map(os.path.basename(wdl) + ".zip", archive_paths(doc))
        wdl = _packaged(doc, wdl, scratch)
    data["workflow"] = wdl
    directory = os.path.abspath(args.dir or os.getcwd())
    if args.dir and args.dir.rstrip("/").endswith("/."):
        directory += "/."
    data["dir"] = directory
    if args.task:
        data["task"] = target.name
    if config:
        data["config"] = config
    if args.json_only:
        data["input_json"] = input_json  # what -j prints (runner_input's namespaced JSON)
    return {**data, **_run_options(args)}


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    from miniwdl_serverless.local import batch_executor  # (its imports: not for a bad input)

    data: dict[str, Any] = {}
    for key in ("s3upload", "delete_after"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    in_containers = getattr(args, "engine", None) is not None  # set by run_parsed
    copy = args.copy_input_files or args.copy_input_files_for
    if copy or not (in_containers or batch_executor.sandboxed()):
        # without read-only mounts (a container's, bubblewrap's), read-only copies keep the
        # user's files unchanged
        data["copy_input_files"] = True
    if args.timeout:
        data["timeout_seconds"] = args.timeout
    return data


def _packaged(doc: Any, wdl: str, scratch: str) -> str:
    """The document and its imports (found on -p's search path) as a miniwdl zip, named as the
    document: the controller loads it as a staged workflow."""
    import WDL

    from miniwdl_serverless.cli.submit import quiet_logger

    os.makedirs(scratch, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="wdl_", dir=scratch)  # the archive's name stays the user's
    archive = os.path.join(folder, os.path.basename(wdl) + ".zip")
    WDL.Zip.build(doc, archive, quiet_logger(), meta={"miniwdl_serverless": True})
    return archive


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
    """--cfg files and SECTION__KEY=VALUE settings, --runtime-defaults, --no-cache and --env,
    as submit reads them."""
    from miniwdl_serverless.cli.submit import run_config

    # this shell's MINIWDL__* variables win over --cfg files, as in miniwdl
    config = run_config(args.cfg, os.environ, False, args.no_cache, args.runtime_defaults)
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
    _set_up_logging(args)
    state = state_dir(args)
    from miniwdl_serverless.local.parser_cache import cache_dir, cache_wdl_parsers

    cache_wdl_parsers(cache_dir(os.environ))  # miniwdl's WDL parsers: built once, then loaded

    def embedded(engine: Any) -> Any:
        # imported only once the inputs are good: a bad input ends in miniwdl's time
        from miniwdl_serverless.local.embedded import EmbeddedAWS

        mode = args.embedded_aws
        return EmbeddedAWS(
            efs_root="/", workers=args.workers, state=state, mode=mode, engine=engine
        )

    with _scratch(state) as scratch:
        return run_parsed(args, scratch, embedded)


def run_parsed(
    args: argparse.Namespace,
    scratch: str,
    embedded: Callable[[Any], contextlib.AbstractContextManager[Any]],
) -> int:
    """Check the document and inputs, then (not for -j or a bad input: those end before any
    AWS is started, or any container engine asked) choose the container engine and run on the
    embedded AWS that ``embedded(engine)`` enters."""
    try:
        execution_input = build_execution_input(args, scratch)
    except Exception as exn:
        return _input_error(exn, args)
    output = Output.of(args)
    if args.json_only:
        inputs = execution_input.get("input_json", execution_input.get("inputs"))  # or --resume's
        print(json.dumps(inputs, indent=output.indent))
        return 0
    try:
        execution_input = _with_engine(args, execution_input)
    except Exception as exn:
        return _input_error(exn, args)
    with started_frozen(embedded(getattr(args, "engine", None))) as aws:
        command_line = getattr(args, "command_line", None)
        return execute(aws, execution_input, not args.no_progress, command_line, output)


@contextlib.contextmanager
def started_frozen(manager: contextlib.AbstractContextManager[Entered]) -> Iterator[Entered]:
    """``manager`` (the embedded AWS) entered with the cyclic garbage collector paused, and
    what exists once it has started frozen out of the collections (``gc.freeze``) until it is
    left. Its start (moto's and botocore's modules and service models, miniwdl) makes a few
    hundred thousand objects that live as long as the run; every full collection walked them
    all again (60-140 ms each, a few a run: two during the start, one in the first handler's
    imports). Left, they are collected as usual again (for callers in process: the tests).
    The price: what the start made and dropped in cycles is kept until then (a demo run's peak
    RSS: ~+2 MB in the default mode, ~+65 MB with ``--embedded-aws full``, whose start makes
    moto's DynamoDB and Batch; there the collections it spares were ~1.5 s of CPU)."""
    from miniwdl_serverless.local.state import paused_gc

    with contextlib.ExitStack() as stack:
        with paused_gc():
            entered = stack.enter_context(manager)
            stack.callback(gc.unfreeze)  # before the manager's exit
            gc.freeze()  # before the collector is back: its first collection would walk them all
        yield entered


def _with_engine(args: argparse.Namespace, execution_input: dict[str, Any]) -> dict[str, Any]:
    """``--container``'s engine (on args.engine), and the copy decision it changes: a
    container mounts inputs read-only, so they need no copies."""
    from miniwdl_serverless.local import batch_executor

    args.engine = batch_executor.container_engine(
        getattr(args, "container", None), getattr(args, "as_me", False)
    )
    if args.resume:  # a resumed run keeps its own options
        return execution_input
    chosen = {k: v for k, v in execution_input.items() if k != "copy_input_files"}
    return {**chosen, **_run_options(args)}


@contextlib.contextmanager
def _scratch(state: StateDir | None) -> Iterator[str]:
    """Where a run's packaged document (-p) goes: the state directory's workflows/ (kept, so
    --resume finds it again), or a temporary directory with --no-state."""
    if state is None:
        with tempfile.TemporaryDirectory(prefix="msls_run_") as scratch:
            yield scratch
        return
    yield os.path.join(str(state.path), "workflows")  # made when a document is packaged


def _set_up_logging(args: argparse.Namespace) -> None:
    """-v/--debug: this process's log lines (the controller and handlers run here) on stderr;
    --no-color: NO_COLOR for everything the run starts."""
    if args.no_color:
        os.environ.setdefault("NO_COLOR", "")
    if args.debug or args.verbose:
        level = logging.DEBUG if args.debug else logging.INFO
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonLogFormatter()
            if args.log_json
            else logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
        )
        logging.basicConfig(level=level, handlers=[handler])
        logging.getLogger("miniwdl_serverless").setLevel(level)


class JsonLogFormatter(logging.Formatter):
    """--log-json: one JSON object per log line (time, level, logger, message)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": self.formatTime(record),
            "level": record.levelname,
            "source": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


@dataclass(frozen=True)
class Output:
    """Where `miniwdl run` puts its result: stdout, or -o's file; the error JSON on stdout too
    with --error-json (or -o); one line per JSON with --log-json."""

    stdout_file: str | None = None
    error_json: bool = False
    log_json: bool = False
    stream_stderr: bool = False

    @staticmethod
    def of(args: argparse.Namespace) -> Output:
        return Output(args.stdout_file, args.error_json, args.log_json, args.verbose or args.debug)

    @property
    def indent(self) -> int | None:
        return None if self.log_json else 2

    def result(self, content: dict[str, Any]) -> None:
        """The outputs JSON (always), or an error JSON (with --error-json or -o)."""
        if "error" in content and not (self.error_json or self.stdout_file):
            return
        text = json.dumps(content, indent=self.indent)
        if self.stdout_file:
            with open(self.stdout_file, "w", encoding="utf-8") as outfile:
                outfile.write(text + "\n")
        else:
            print(text)


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
    output: Output | None = None,
) -> int:
    """Run one execution on an embedded AWS; print like `miniwdl run`; return the exit code.
    With the ``command_line`` that asked for it, the run directory gets miniwdl's ``rerun``."""
    output = output or Output()
    paths = _staged_paths(execution_input)
    execution_input = {k: v for k, v in execution_input.items() if k not in LOCAL_ONLY_KEYS}
    if execution_input.get("s3upload"):
        _create_upload_bucket(execution_input["s3upload"])
    arn = aws.start(execution_input)
    enabled = show_progress and sys.stderr is not None
    from miniwdl_serverless.cli.progress_display import ProgressDisplay, read_counts

    run_id = run_id_of(arn)
    progress = ProgressDisplay(lambda: read_counts(aws.store, run_id), enabled=enabled)
    streamer = StderrStreamer(lambda: _run_dir_of(aws, run_id)) if output.stream_stderr else None

    def tick() -> None:
        progress.show()
        if streamer is not None:
            streamer.poll(progress.clear)

    try:
        description = aws.wait(arn, tick)
    except Terminated as stopped:
        progress.clear()
        return _terminated(aws, arn, stopped.signal)
    if streamer is not None:
        streamer.poll(progress.clear)
    progress.finish(str(description["status"]))
    leave_report(aws, run_id, description)
    from miniwdl_serverless.cli import views

    if description["status"] == "SUCCEEDED":
        report = views.success_report(description, _read_json)
        write_rerun(report.get("dir"), command_line)
        output.result(report)
        return 0
    error, info = views.failure_info(description)
    info = views.unstaged(info, paths)
    write_rerun(info.get("dir"), command_line)
    _add_local_logs(info)
    print(json.dumps(info, indent=output.indent), file=sys.stderr)
    output.result(info)
    print(views.failure_line(error, info), file=sys.stderr)
    for line in views.failure_details(info):
        print(line, file=sys.stderr)
    return views.failure_exit_status(info)


def _staged_paths(execution_input: dict[str, Any]) -> dict[str, str]:
    """A packaged document's paths (``/<name>.zip/...``) back to the user's (-p runs)."""
    return dict(execution_input.get("user_paths") or {})


def _run_dir_of(aws: Any, run_id: str) -> str | None:
    run = aws.store.get_run(run_id)
    return run.run_dir if run is not None else None


class StderrStreamer:
    """-v: the new complete lines of every call's stderr.txt (a retry's stderr2.txt…) under the
    run directory, printed
    to stderr as ``[call-x] line`` (read as regular files only: a task may leave a FIFO)."""

    def __init__(self, run_dir: Any, err: Any = None):
        self.run_dir, self.err = run_dir, err
        self.offsets: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}

    def poll(self, before: Any = None) -> None:
        try:
            top = self.run_dir()
        except Exception:
            return
        if not top:
            return
        lines: list[str] = []
        found = glob.glob(os.path.join(glob.escape(str(top)), "**", "stderr*.txt"), recursive=True)
        for path in sorted(
            p for p in found if stream_attempt(os.path.basename(p), "stderr") is not None
        ):
            data = _read_from(path, self.offsets.get(path, 0))
            if not data:
                continue
            self.offsets[path] = self.offsets.get(path, 0) + len(data)
            complete, self.partial[path] = split_lines(self.partial.get(path, b""), data)
            name = os.path.relpath(os.path.dirname(path), str(top))
            lines += [f"[{name}] {line}" for line in complete]
        if lines:
            if before is not None:
                before()
            print("\n".join(lines), file=self.err or sys.stderr)


def split_lines(carried: bytes, data: bytes) -> tuple[list[str], bytes]:
    """The complete lines of ``carried + data`` (decoded) and the unfinished rest."""
    text = carried + data
    *complete, rest = text.split(b"\n")
    return [line.decode("utf-8", "replace") for line in complete], rest


def _read_from(path: str, offset: int, limit: int = 1 << 20) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as opened:
        if not stat.S_ISREG(os.fstat(opened.fileno()).st_mode):
            return b""
        opened.seek(offset)
        return opened.read(limit)


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


def _input_error(exn: Exception, args: argparse.Namespace | None = None) -> int:
    """A bad input or WDL document: miniwdl's message, the source excerpt with its caret
    (core/errors.py), the error JSON where -o/--error-json want it; --debug adds the traceback."""
    from miniwdl_serverless.core.errors import describe_exception, source_excerpt

    info = describe_exception(exn)
    if args is not None:
        Output.of(args).result(info)
    print(f"miniwdl-serverless: {info.get('error')}: {info.get('message')}", file=sys.stderr)
    for line in source_excerpt(exn):
        print(line, file=sys.stderr)
    if args is not None and args.debug:
        traceback.print_exception(exn, file=sys.stderr)
    return EXIT_USAGE


def _create_upload_bucket(uri: str) -> None:
    from miniwdl_serverless.adapters import clients

    bucket = uri[len("s3://") :].split("/", 1)[0]
    try:
        clients.client("s3").create_bucket(Bucket=bucket)
    except Exception:
        pass
