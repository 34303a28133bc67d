"""`miniwdl-serverless` command line: the entry point and the argparse parsers of every command.

``run`` executes a workflow locally on the embedded AWS (see local_run.py); its inputs and stdout
follow ``miniwdl run``.

``submit``, ``status``, ``logs``, ``report``, ``cancel``, ``list`` and ``reconcile`` talk to a
deployed stack (see remote.py, and watch.py for ``submit --wait/--follow``); ``submit`` takes
miniwdl-aws-submit's options. ``status``, ``list`` and ``report`` also read local runs from the
state directory ``run`` keeps (local_runs.py); ``report`` also a run directory (report.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from miniwdl_serverless.core.containers import CONTAINER_VARIABLE, MODES
from miniwdl_serverless.core.options import DELETE_AFTER

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--version"]:
        print(version_line())
        return 0
    if argv and argv[0] == "run":
        from miniwdl_serverless.cli import local_run

        args = parse_run_args(argv[1:])
        args.command_line = argv  # for the run directory's `rerun`
        return local_run.run_local(args)
    if argv and argv[0] in REMOTE_COMMANDS:
        from miniwdl_serverless.cli import remote

        return remote.main(argv[0], parse_remote_args(argv[0], argv[1:]))
    make_parser().parse_args(argv)  # help, or a usage error naming the problem
    return EXIT_USAGE  # pragma: no cover


def entry() -> None:
    """The console script: ``main``, then for ``run`` a quick exit once the run is done.

    By then the embedded AWS has drained its events, stopped its workers and saved the state
    directory; what is left is the interpreter tearing down a heap of moto, botocore and miniwdl
    objects (~0.4 s of a short run). So ``run`` flushes the standard streams and the log
    handlers, runs the ``atexit`` functions and leaves with ``os._exit``. Other commands, and
    ``main`` called in process (the tests), exit as usual."""
    code = main()
    if sys.argv[1:2] == ["run"]:
        quick_exit(code)
    sys.exit(code)


def quick_exit(code: int) -> None:
    """Leave now with ``code``: what ``sys.exit`` does minus the interpreter's teardown."""
    import atexit
    import logging
    import os

    atexit._run_exitfuncs()  # logging's shutdown, weakref finalizers (temporary directories)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code)


def version_line() -> str:
    """Our version and the miniwdl we run (both from the installed packages' metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    return f"miniwdl-serverless {of('miniwdl-serverless')} (miniwdl {of('miniwdl')})"


RUN_DESCRIPTION = (
    "Run WORKFLOW locally: the real Step Functions definition and Lambda handlers on an "
    "embedded AWS (moto), task commands with bash. Inputs as for `miniwdl run`."
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miniwdl-serverless", description="WDL on AWS Batch + EFS, event-driven"
    )
    parser.add_argument(
        "--version", action="store_true", help="print our version and miniwdl's, then exit"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_arguments(
        commands.add_parser(
            "run",
            help="run a workflow locally on the embedded AWS (no account needed)",
            description=RUN_DESCRIPTION,
        )
    )
    for name, (summary, description, add) in REMOTE_COMMANDS.items():
        add(
            commands.add_parser(
                name,
                help=summary,
                description=description,
                epilog=STACK_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def parse_remote_args(command: str, argv: list[str]) -> argparse.Namespace:
    summary, description, add = REMOTE_COMMANDS[command]
    parser = argparse.ArgumentParser(
        prog=f"miniwdl-serverless {command}",
        description=description,
        epilog=STACK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add(parser)
    if command == "submit":  # inputs (key=value) before or after the options, as with miniwdl
        return parser.parse_intermixed_args(argv)
    return parser.parse_args(argv)


STACK_EPILOG = """\
The stack: --stack NAME (its CloudFormation outputs name the state machine, bucket, tables and
logs function), or --state-machine ARN (the stack is then found from the state machine's
aws:cloudformation:stack-name tag), or the environment variables MINIWDL_SERVERLESS_STACK /
MINIWDL_SERVERLESS_STATE_MACHINE. Credentials and region come from the usual AWS environment
(AWS_PROFILE, AWS_REGION, ...); AWS_ENDPOINT_URL points every call at another endpoint.
Bad input exits with status 2 and one line naming the problem; nothing is started.
"""

SUBMIT_DESCRIPTION = """\
Start WORKFLOW on a deployed miniwdl-serverless stack (one Step Functions execution).

WORKFLOW is a local .wdl (packaged with its imports as a miniwdl zip and staged to the stack's
bucket under wdl/), a local miniwdl .zip, or an s3:// or https:// URI (passed through). Inputs
take `miniwdl run`'s syntax (name=value, -i inputs.json, --empty, --none) and are typechecked
here before anything starts. A File/Directory input under the stack's EFS mount (/mnt/efs) or
given as a URI is passed as it is; any other path is a file on this machine, staged to the stack's
bucket (content-addressed: s3://BUCKET/inputs/<sha256>/<name>, not uploaded again when already
there) and given to the run as that s3:// URI (--no-stage refuses instead).

Prints the run id (the execution name) on stdout, or with --wait/--follow the run's result like
`miniwdl run`: {"dir", "outputs"} and exit 0, or miniwdl's error JSON on stderr (with the failed
task's stderr tail and log locations) and a non-zero exit (the task's exit status where known).
"""


def _add_workflow_arguments(parser: argparse.ArgumentParser, workflow_help: str) -> None:
    """The workflow and its inputs, as `miniwdl run` takes them (shared by run and submit)."""
    parser.add_argument("wdl", metavar="WORKFLOW", nargs="?", help=workflow_help)
    parser.add_argument(
        "inputs", nargs="*", metavar="input_key=value", help="workflow inputs, as for `miniwdl run`"
    )
    parser.add_argument(
        "-i", "--input", metavar="INPUT.json", help="file with Cromwell-style input JSON"
    )
    parser.add_argument(
        "--empty",
        metavar="input_key",
        action="append",
        default=[],
        help="supply an empty array for this input",
    )
    parser.add_argument(
        "--none",
        metavar="input_key",
        action="append",
        default=[],
        help="supply None for this optional input",
    )
    parser.add_argument(
        "--task", metavar="TASK_NAME", help="run this task (instead of the workflow)"
    )
    parser.add_argument(
        "--env",
        metavar="VARNAME[=VALUE]",
        action="append",
        default=[],
        help="environment variable to pass through to (or set outright in) every task, as "
        "`miniwdl run --env`; a pass-through takes the value from this command's environment",
    )
    parser.add_argument(
        "--no-outside-imports",
        action="store_true",
        help="refuse imports from outside the main WDL file's directory (as `miniwdl run`)",
    )


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("stack")
    group.add_argument(
        "--stack", metavar="NAME", help="CloudFormation stack name (env MINIWDL_SERVERLESS_STACK)"
    )
    group.add_argument(
        "--state-machine",
        metavar="ARN",
        help="the stack's state machine ARN, instead of --stack "
        "(env MINIWDL_SERVERLESS_STATE_MACHINE)",
    )


def _add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workflow_arguments(parser, "local .wdl or miniwdl .zip, or an s3:// or https:// URI")
    _add_stack_arguments(parser)
    where = parser.add_argument_group("where and how the run goes (miniwdl-aws-submit's options)")
    where.add_argument(
        "--task-queue",
        metavar="QUEUE",
        help="Batch queue (name or ARN) for the tasks; must be one of the stack's "
        "queues, whose job events reach it [env MINIWDL__AWS__TASK_QUEUE; "
        "default: the stack's TaskQueue]",
    )
    where.add_argument(
        "--task-queue-fallback",
        metavar="QUEUE",
        help="queue for a task after its spot interruptions use up "
        "runtime.preemptible [env MINIWDL__AWS__TASK_QUEUE_FALLBACK; "
        "default: the stack's]",
    )
    where.add_argument(
        "--fsap",
        metavar="fsap-...",
        help="EFS access point; runs always use the stack's (tasks and functions "
        "mount it), so this only checks that it is the stack's: a different "
        "one is an error [env MINIWDL__AWS__FSAP: a different one is ignored "
        "with a warning]",
    )
    where.add_argument(
        "--dir",
        metavar="DIR",
        help="run directory root on the stack's EFS, under its mount (default "
        "/mnt/efs/miniwdl_run); 'DIR/.' runs in DIR exactly",
    )
    where.add_argument(
        "--s3upload",
        metavar="s3://BUCKET/FOLDER",
        help="upload outputs, error.json and logs here when the run ends: with a "
        "trailing '/' into that folder, without it into FOLDER/<run name>/ "
        "[env MINIWDL__AWS__S3_UPLOAD_FOLDER]",
    )
    where.add_argument(
        "--delete-after",
        choices=DELETE_AFTER,
        help="delete the run directory after the upload on success, failure or "
        "always; needs an upload folder (--s3upload or its env) "
        "[env MINIWDL__AWS__DELETE_AFTER_S3_UPLOAD]",
    )
    where.add_argument(
        "--copy-input-files",
        action="store_true",
        help="copy input files for each task instead of linking",
    )
    where.add_argument(
        "--no-stage",
        action="store_true",
        help="refuse File/Directory inputs on this machine (not under the stack's EFS mount) "
        "instead of staging them to the stack's bucket under inputs/",
    )
    where.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the call cache (CALL_CACHE__GET/PUT=false)",
    )
    where.add_argument(
        "--resume",
        metavar="RUN",
        help="rerun this failed or stopped run's workflow and inputs (give no WORKFLOW): "
        "every call that succeeded is reused from the call cache",
    )
    where.add_argument(
        "--name",
        metavar="NAME",
        help="run name (the execution name gets a random suffix; default: the workflow's name)",
    )
    where.add_argument(
        "--no-env",
        action="store_true",
        help="do not pass this shell's MINIWDL__* variables to the run (by default "
        "each one is a miniwdl setting for the run, except miniwdl-aws's "
        "launch options)",
    )
    where.add_argument(
        "--cfg",
        metavar="FILE",
        action="append",
        default=[],
        help="miniwdl .cfg file whose settings apply to the run (repeatable; "
        "SECTION__KEY=VALUE also accepted); MINIWDL__* variables and the "
        "flags below win over it",
    )
    where.add_argument(
        "--tags",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="cost-allocation tag on every Batch job of the run (repeatable) [env "
        "MINIWDL__AWS__JOB_TAGS as a JSON object, which --tags extend]",
    )
    where.add_argument(
        "--timeout",
        metavar="SECONDS",
        help="fail the run, terminating its jobs, after this long (seconds, or "
        "30m, 12h, 2d; default: the stack's, 7 days)",
    )
    where.add_argument(
        "--runtime-defaults",
        metavar="JSON",
        help='default task runtime values, e.g. \'{"docker": "ubuntu:22.04", '
        '"preemptible": 2}\' (TASK_RUNTIME__DEFAULTS, merged over the '
        "configured ones)",
    )
    after = parser.add_argument_group("after starting")
    after.add_argument(
        "-w",
        "--wait",
        action="store_true",
        help="wait for the run to end; print its outputs and exit like `miniwdl run`",
    )
    after.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="--wait, showing progress (calls done/running/queued) and the run's "
        "workflow.log on stderr; Ctrl-C asks whether to cancel the run "
        "(without a terminal it keeps running)",
    )


def _add_run_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN", help="run id (printed by submit; the execution name) or execution ARN"
    )


def _add_status_arguments(parser: argparse.ArgumentParser) -> None:
    _add_run_id(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    _add_stack_arguments(parser)
    _add_local_arguments(parser)


LOCAL_HELP = (
    "runs of `miniwdl-serverless run`, read from its state directory (the default when no "
    "stack is given by flag or environment and local runs exist)"
)
STATE_DIR_HELP = (
    "the local state directory [env MINIWDL_SERVERLESS_STATE_DIR; default ~/.miniwdl-serverless]"
)


def _add_local_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("local runs")
    group.add_argument("--local", action="store_true", help=LOCAL_HELP)
    group.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP + " (implies --local)")


def _add_logs_arguments(parser: argparse.ArgumentParser) -> None:
    _add_run_id(parser)
    parser.add_argument(
        "call",
        metavar="CALL",
        nargs="?",
        help="a call's id (call-x, call-x-0, call-sub/call-x; the 'call-' may be "
        "left out): its stderr (default: the run's workflow.log)",
    )
    parser.add_argument(
        "--stdout",
        action="store_true",
        help="the call's stdout.txt instead of stderr.txt (its newest attempt's: a retry's "
        "stdout2.txt…)",
    )
    parser.add_argument(
        "--cloudwatch",
        action="store_true",
        help="read the call's Batch job log from CloudWatch /aws/batch/job "
        "instead of its file on EFS",
    )
    parser.add_argument(
        "--tail",
        metavar="BYTES",
        type=int,
        default=64 * 1024,
        help="start this many bytes from the end (default 65536)",
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep streaming until the run ends"
    )
    _add_stack_arguments(parser)


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        metavar="RUN|DIR",
        help="run id (the execution name) or execution ARN, or a local run directory",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the HTML (default: DIR/report.html, or report-RUN.html here)",
    )
    _add_stack_arguments(parser)
    _add_local_arguments(parser)


REPORT_DESCRIPTION = """\
Write one self-contained HTML page about a run (inline CSS and SVG; nothing fetched): a gantt of
its calls (queued, running, retried, cached, one row per scatter shard), the resources each
asked (cpu, memory, gpu, disks), durations, the failure (call, message, stderr tail) and an
estimate of the run's orchestration cost at public AWS prices. RUN is read as `status` reads
it (a deployed stack, or the local state directory); DIR from its files (workflow.log,
error.json) and its local records. Prints the file written.
"""


def _add_cancel_arguments(parser: argparse.ArgumentParser) -> None:
    _add_run_id(parser)
    _add_stack_arguments(parser)


def _add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--limit", type=int, default=20, help="how many runs, newest first (default 20)"
    )
    parser.add_argument(
        "--status",
        choices=["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"],
        help="only runs in this state",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    _add_stack_arguments(parser)
    _add_local_arguments(parser)


def _add_reconcile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        help="only this run (run id or execution ARN); default: every live run and the "
        "dead-letter queue",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_stack_arguments(parser)


RECONCILE_DESCRIPTION = """\
Run one round of the stack's reconcile function now (its schedule runs it every
ReconcileIntervalMinutes): replay the Batch transitions whose events never reached the stack,
send the answer an ended run still owes Step Functions, pick up what a dead invocation left in
a quiet run or fail a run nothing will advance (RunStuck), and replay the dead-letter queue.
Prints what it did.
"""


def _add_teardown_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--force", action="store_true", help="cancel runs still running instead of refusing"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="return once the stack's deletion has started"
    )
    _add_stack_arguments(parser)


def _add_self_test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", metavar="DIR", help="run directory on the stack's file system (default: its)"
    )
    parser.add_argument(
        "--s3upload",
        metavar="s3://BUCKET/PREFIX/",
        help="also check uploads: the run's outputs go there (a bucket the stack may write)",
    )
    _add_stack_arguments(parser)


SELF_TEST_DESCRIPTION = """\
Check a deployed stack end to end: its outputs, state machine and task queue, then a built-in
workflow (two shards writing a file each, a gather reading both on the shared file system) run
through it, and each part reported on its own line: the start function's plan, the Batch
submissions, the job events collected, the shared file system, the upload (with --s3upload)
and the logs function. Exit status 0 only if every part passed.
"""

TEARDOWN_DESCRIPTION = """\
Delete a deployed stack: refuse while runs are still running (--force cancels them), empty
the stack's versioned bucket (every object version and delete marker: `sam delete` fails on a
versioned bucket that is not empty), then delete the CloudFormation stack and wait for it. A
file system the stack created is kept (it holds the runs' results) and its id printed.
"""

REMOTE_COMMANDS: dict[str, tuple[str, str, Any]] = {
    "submit": (
        "start a workflow on a deployed stack (miniwdl-aws-submit's options)",
        SUBMIT_DESCRIPTION,
        _add_submit_arguments,
    ),
    "status": (
        "a run's state and its calls (status, attempts, duration, Batch job, log stream)",
        "Show a run's state and a table of its calls, from the stack's DynamoDB tables.",
        _add_status_arguments,
    ),
    "logs": (
        "a run's workflow.log or one call's stderr/stdout",
        "Print the tail of the run's workflow.log, or of one call's stderr.txt/stdout.txt, "
        "read through the stack's read-only logs function (or CloudWatch /aws/batch/job "
        "with --cloudwatch).",
        _add_logs_arguments,
    ),
    "report": (
        "an HTML report of a run: timeline, resources, failure, cost estimate",
        REPORT_DESCRIPTION,
        _add_report_arguments,
    ),
    "cancel": (
        "stop a run and terminate its Batch jobs",
        "Stop the run's Step Functions execution; every Batch job of the run is terminated.",
        _add_cancel_arguments,
    ),
    "list": (
        "recent runs with their status",
        "List the stack's recent runs (newest first).",
        _add_list_arguments,
    ),
    "reconcile": (
        "replay lost events, finish or fail runs nothing advances, replay the DLQ",
        RECONCILE_DESCRIPTION,
        _add_reconcile_arguments,
    ),
    "self-test": (
        "run a built-in workflow on a deployed stack and report each part",
        SELF_TEST_DESCRIPTION,
        _add_self_test_arguments,
    ),
    "teardown": (
        "delete a deployed stack, emptying its versioned bucket first",
        TEARDOWN_DESCRIPTION,
        _add_teardown_arguments,
    ),
}


def parse_run_args(argv: list[str]) -> argparse.Namespace:
    """`run` arguments; inputs (key=value) may come before or after the options, as with miniwdl."""
    parser = argparse.ArgumentParser(prog="miniwdl-serverless run", description=RUN_DESCRIPTION)
    _add_run_arguments(parser)
    return parser.parse_intermixed_args(argv)


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    _add_workflow_arguments(run, "WDL file (local path, https:// or s3:// URI)")
    run.add_argument(
        "-d",
        "--dir",
        metavar="DIR",
        help="directory under which to create the timestamped run directory "
        "(default: current directory); 'DIR/.' runs in DIR exactly",
    )
    run.add_argument(
        "--s3upload",
        metavar="s3://BUCKET/FOLDER/",
        help="upload outputs and logs here (embedded S3 locally)",
    )
    run.add_argument(
        "--delete-after", choices=DELETE_AFTER, help="delete the run directory after the upload"
    )
    run.add_argument(
        "--copy-input-files",
        action="store_true",
        help="copy input files for each task instead of linking",
    )
    run.add_argument(
        "--cfg",
        metavar="FILE",
        action="append",
        default=[],
        help="miniwdl configuration file (INI, read as miniwdl reads it) whose settings apply "
        "to the run; SECTION__KEY=VALUE also accepted (repeatable; later ones win)",
    )
    run.add_argument(
        "--runtime-defaults",
        metavar="JSON",
        help="default runtime settings for all tasks (JSON filename or literal object, e.g. "
        "'{\"maxRetries\":2}'), as `miniwdl run`",
    )
    run.add_argument("--timeout", type=int, metavar="SECONDS", help="fail the run after this long")
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the call cache (CALL_CACHE__GET/PUT=false)",
    )
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="rerun the local run in DIR (its run directory; give no WORKFLOW): every call "
        "that succeeded is reused from the call cache",
    )
    run.add_argument(
        "--container",
        choices=MODES,
        help="run each task in its runtime.docker image with this engine (default: "
        f"${CONTAINER_VARIABLE}, else auto: docker if `docker info` works, else podman if "
        "`podman info` works, else none: bash)",
    )
    run.add_argument(
        "--as-me",
        action="store_true",
        help="in a container, run tasks as your own uid:gid instead of the image's user",
    )
    run.add_argument("--workers", type=int, help="parallel task commands (default: CPU count)")
    run.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    run.add_argument(
        "--embedded-aws",
        choices=("memory", "full"),
        default="memory",
        help="where the embedded AWS keeps its tables: the in-memory store (default, fast) or "
        "moto's DynamoDB (full: every request through moto, ~10x slower)",
    )
    _add_miniwdl_run_flags(run)
    state = run.add_mutually_exclusive_group()
    state.add_argument(
        "--state-dir",
        metavar="DIR",
        help=STATE_DIR_HELP + ": run records, call cache and download cache kept between runs",
    )
    state.add_argument(
        "--no-state",
        action="store_true",
        help="keep nothing: start with empty tables and save none (ephemeral)",
    )


def _add_miniwdl_run_flags(run: argparse.ArgumentParser) -> None:
    """`miniwdl run`'s remaining flags, with its meaning (README: "`miniwdl run` flags")."""
    run.add_argument(
        "-j",
        "--json",
        dest="json_only",
        action="store_true",
        help="just print Cromwell-style input JSON to standard output, then exit",
    )
    run.add_argument(
        "--error-json",
        action="store_true",
        help="upon failure, print error information JSON to standard output (in addition to "
        "standard error)",
    )
    run.add_argument(
        "-o",
        metavar="OUT.json",
        dest="stdout_file",
        help="write JSON output/error to specified file instead of standard output "
        "(implies --error-json)",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="increase logging detail & stream tasks' stderr (to this command's stderr)",
    )
    run.add_argument(
        "--debug",
        action="store_true",
        help="maximally verbose logging & exception tracebacks",
    )
    run.add_argument(
        "--no-color",
        action="store_true",
        help="disable colored logging on a terminal (also set by NO_COLOR environment "
        "variable); accepted: nothing here is colored, it sets NO_COLOR for the run",
    )
    run.add_argument(
        "--log-json",
        action="store_true",
        help="write this command's logs (-v/--debug) as JSON lines and its result JSON on one "
        "line; differs: workflow.log keeps miniwdl's text format",
    )
    run.add_argument(
        "-p",
        "--path",
        metavar="DIR",
        action="append",
        default=[],
        help="local directory to search for imports (can supply multiple times); the document "
        "goes to the controller packaged with the imports found there",
    )
    run.add_argument(
        "--copy-input-files-for",
        metavar="TASK_NAME",
        action="append",
        default=[],
        help="copy input files for this task (can supply multiple times); differs: the "
        "controller's setting is per run, so every task of the run gets copies (as "
        "--copy-input-files)",
    )
    run.add_argument(
        "--no-quant-check",
        action="store_true",
        help="relax static typechecking of optional types here (as `miniwdl run`); accepted, "
        "but the controller typechecks strictly, so such a document still fails to start",
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
