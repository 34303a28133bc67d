"""`miniwdl-serverless` command line.

``run`` executes a workflow locally on the embedded AWS (moto runs the real ASL; the real
handlers serve the Lambda calls; a local Batch executor runs task commands with bash).
Its inputs and stdout follow ``miniwdl run``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .options import DELETE_AFTER

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run":
        return run_local(parse_run_args(argv[1:]))
    make_parser().parse_args(argv)  # help, or a usage error naming the problem
    return EXIT_USAGE  # pragma: no cover


RUN_DESCRIPTION = (
    "Run WORKFLOW locally: the real Step Functions definition and Lambda handlers on an "
    "embedded AWS (moto), task commands with bash. Inputs as for `miniwdl run`."
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miniwdl-serverless", description="WDL on AWS Batch + EFS, event-driven")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_arguments(commands.add_parser(
        "run", help="run a workflow locally on the embedded AWS (no account needed)", description=RUN_DESCRIPTION
    ))
    return parser


def parse_run_args(argv: list[str]) -> argparse.Namespace:
    """`run` arguments; inputs (key=value) may come before or after the options, as with miniwdl."""
    parser = argparse.ArgumentParser(prog="miniwdl-serverless run", description=RUN_DESCRIPTION)
    _add_run_arguments(parser)
    return parser.parse_intermixed_args(argv)


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("wdl", metavar="WORKFLOW", help="WDL file (local path, https:// or s3:// URI)")
    run.add_argument("inputs", nargs="*", metavar="input_key=value", help="workflow inputs")
    run.add_argument("-i", "--input", metavar="INPUT.json", help="file with Cromwell-style input JSON")
    run.add_argument("--empty", metavar="input_key", action="append", default=[], help="supply an empty array for this input")
    run.add_argument("--none", metavar="input_key", action="append", default=[], help="supply None for this optional input")
    run.add_argument("--task", metavar="TASK_NAME", help="run this task (instead of the workflow)")
    run.add_argument("-d", "--dir", metavar="DIR", help="directory under which to create the timestamped run directory "
                     "(default: current directory); 'DIR/.' runs in DIR exactly")
    run.add_argument("--s3upload", metavar="s3://BUCKET/FOLDER/", help="upload outputs and logs here (embedded S3 locally)")
    run.add_argument("--delete-after", choices=DELETE_AFTER, help="delete the run directory after the upload")
    run.add_argument("--copy-input-files", action="store_true", help="copy input files for each task instead of linking")
    run.add_argument("--cfg", metavar="KEY=VALUE", action="append", default=[], help="miniwdl setting SECTION__KEY=VALUE (repeatable)")
    run.add_argument("--timeout", type=int, metavar="SECONDS", help="fail the run after this long")
    run.add_argument("--workers", type=int, help="parallel task commands (default: CPU count)")
    run.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def build_execution_input(args: argparse.Namespace) -> dict[str, Any]:
    """Parse inputs exactly as `miniwdl run` does, into the execution input."""
    import WDL
    import WDL.CLI

    wdl = args.wdl if "://" in args.wdl else os.path.abspath(args.wdl)
    doc = WDL.load(wdl, read_source=WDL.CLI.make_read_source(False))
    cfg = WDL.runtime.config.Loader(_quiet_logger())
    target, _, input_json = WDL.CLI.runner_input(
        doc, args.inputs, args.input, args.empty, args.none, task=args.task,
        downloadable=lambda uri, directory: WDL.runtime.download.able(cfg, uri, directory=directory), root="/",
    )
    config = {}
    for item in args.cfg:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--cfg wants SECTION__KEY=VALUE, got {item!r}")
        config[key.upper()] = value
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
    if args.copy_input_files:
        data["copy_input_files"] = True
    if config:
        data["config"] = config
    if args.timeout:
        data["timeout_seconds"] = args.timeout
    return data


def run_local(args: argparse.Namespace) -> int:
    try:
        execution_input = build_execution_input(args)
    except Exception as exn:
        return _input_error(exn)
    from .local.embedded import EmbeddedAWS

    with EmbeddedAWS(efs_root="/", workers=args.workers) as aws:
        return execute(aws, execution_input, show_progress=not args.no_progress)


def execute(aws: Any, execution_input: dict[str, Any], show_progress: bool = True) -> int:
    """Run one execution on an embedded AWS; print like `miniwdl run`; return the exit code."""
    if execution_input.get("s3upload"):
        _create_upload_bucket(execution_input["s3upload"])
    arn = aws.start(execution_input)
    progress = Progress(arn.rsplit(":", 1)[-1], enabled=show_progress and sys.stderr is not None)
    description = aws.wait(arn, progress.show)
    progress.done()
    if description["status"] == "SUCCEEDED":
        result = json.loads(description.get("output") or "{}")
        report = {"dir": result.get("dir"), "outputs": result.get("outputs", {})}
        if result.get("s3upload"):
            report["s3upload"] = result["s3upload"]
        print(json.dumps(report, indent=2))
        return 0
    return _report_failure(description)


def _report_failure(description: dict[str, Any]) -> int:
    error, cause = description.get("error") or "RunFailed", description.get("cause") or ""
    try:
        info = json.loads(cause)
    except ValueError:
        info = {"error": error, "message": cause}
    print(json.dumps(info, indent=2), file=sys.stderr)
    message = info.get("message") or (info.get("cause") or {}).get("message") or error
    print(f"miniwdl-serverless: {error}: {message}", file=sys.stderr)
    status = (info.get("cause") or {}).get("exit_status") or info.get("exit_status")
    return int(status) if isinstance(status, int) and 0 < status < 256 else 2


def _input_error(exn: Exception) -> int:
    from .errors import describe_exception

    info = describe_exception(exn)
    print(f"miniwdl-serverless: {info.get('error')}: {info.get('message')}", file=sys.stderr)
    return EXIT_USAGE


def _create_upload_bucket(uri: str) -> None:
    import boto3

    bucket = uri[len("s3://") :].split("/", 1)[0]
    try:
        boto3.client("s3").create_bucket(Bucket=bucket)
    except Exception:
        pass


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("miniwdl_serverless.cli")
    logger.setLevel(logging.WARNING)
    return logger


class Progress:
    """'jobs done/running/waiting' on stderr while the run goes on (one line on a terminal)."""

    def __init__(self, run_id: str, enabled: bool):
        self.run_id, self.enabled = run_id, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.last = 0.0
        self.last_line = ""

    def show(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        from . import store

        try:
            run = store.get_run(self.run_id)
        except Exception:
            return
        total, done = int(run.jobs_total or 0), int(run.jobs_done or 0)
        running = max(0, int(run.calls_submitted or 0) - int(run.calls_succeeded or 0) - int(run.calls_failed or 0) - int(run.calls_retried or 0))
        line = f"jobs: {done} done, {running} running, {max(0, total - done - running)} waiting"
        if line == self.last_line and not self.tty:
            return
        self.last_line = line
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.last_line:
            print(file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
