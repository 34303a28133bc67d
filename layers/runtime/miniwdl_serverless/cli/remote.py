"""`submit`, `status`, `logs`, `report`, `cancel`, `list`, `reconcile`: the CLI against a deployed
stack (imperative shell over submit.py, views.py and stack.py; watch.py follows a submitted run,
report.py writes a run's HTML report)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.cli import local_runs, self_test, teardown, views
from miniwdl_serverless.cli import report as html_report
from miniwdl_serverless.cli.stack import (
    Clients,
    Stack,
    cancel_run,
    cloudwatch_events,
    describe_execution,
    find_stack,
    get_job,
    get_run,
    invoke_reconcile,
    list_executions,
    read_run_file,
    run_id_of,
    run_jobs,
    run_store,
    stage_archive,
    start_execution,
)
from miniwdl_serverless.cli.staging import Progress, stage_local_inputs
from miniwdl_serverless.cli.submit import (
    ENV_FSAP,
    ENV_STACK,
    ENV_STATE_MACHINE,
    UsageError,
    execution_input,
    execution_name,
    input_json,
    is_uri,
    load_workflow,
    parse_inputs,
    resolve_settings,
    staged_key,
)
from miniwdl_serverless.cli.watch import RunWatcher, poll_seconds, stack_flag
from miniwdl_serverless.core.call_files import stderr_txt, stdout_txt

EXIT_USAGE = 2


def main(command: str, args: argparse.Namespace) -> int:
    """Run one command; bad input and AWS problems before anything starts: one line, exit 2."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    try:
        return COMMANDS[command](args, Clients())
    except UsageError as exn:
        return _usage(str(exn))
    except (NoCredentialsError, PartialCredentialsError):
        return _usage(
            "no AWS credentials found (set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`)"
        )
    except NoRegionError:
        return _usage(
            "no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION, or a "
            "region in your AWS profile)"
        )
    except EndpointConnectionError as exn:
        return _usage(f"cannot reach AWS: {exn} (check the region and AWS_ENDPOINT_URL)")
    except ClientError as exn:
        error = exn.response.get("Error", {})
        code, message = error.get("Code", "ClientError"), error.get("Message", str(exn))
        if code in (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
            "AuthFailure",
        ):
            return _usage(f"AWS rejected the credentials ({code}): {message}")
        return _usage(f"AWS error ({code}): {message}")
    except BotoCoreError as exn:
        return _usage(f"AWS error: {exn}")


def _usage(message: str) -> int:
    print(f"miniwdl-serverless: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _stack(args: argparse.Namespace, clients: Clients) -> Stack:
    name = args.stack or (None if args.state_machine else os.environ.get(ENV_STACK))
    machine = args.state_machine or (None if name else os.environ.get(ENV_STATE_MACHINE))
    if not name and not machine:
        raise UsageError(
            f"which stack? give --stack NAME or --state-machine ARN (or set {ENV_STACK})"
        )
    return find_stack(clients, name, machine)


# ---- submit --------------------------------------------------------------------------------


def submit(args: argparse.Namespace, clients: Clients) -> int:
    if args.resume:
        resolve_settings(args, os.environ)  # the flags' own checks
        return _resume(args, clients)
    stack, name, arn, paths = _start_submission(args, clients)
    if not (args.wait or args.follow):
        print(name)
        print(
            f"started run {name} ({arn}); see it with: miniwdl-serverless status "
            f"{name}{stack_flag(stack)}",
            file=sys.stderr,
        )
        return 0
    print(f"started run {name}", file=sys.stderr)
    return RunWatcher(clients, stack, name, follow=args.follow, paths=paths).watch()


def start_submission(args: argparse.Namespace, clients: Clients) -> tuple[Stack, str, str]:
    """Check, stage and start ``submit``'s WORKFLOW: (the stack, the run id, its ARN)."""
    stack, name, arn, _ = _start_submission(args, clients)
    return stack, name, arn


def user_paths(workflow: str, staged_uri: str, doc: Any) -> dict[str, str]:
    """The staged archive's document paths (``/<sha256>.zip/...``, as the controller names
    them in errors) back to the user's own: the .wdl's tree, or inside the user's .zip."""
    from miniwdl_serverless.cli.submit import archive_paths
    from miniwdl_serverless.cli.views import staged_path_map

    if is_uri(workflow) or staged_uri == workflow:
        return {}
    archive = staged_uri.rsplit("/", 1)[-1]
    local = os.path.abspath(os.path.expanduser(workflow))
    if local.endswith(".zip"):
        return {f"/{archive}/": local + "/"}
    return staged_path_map(archive, archive_paths(doc))


def _start_submission(
    args: argparse.Namespace, clients: Clients
) -> tuple[Stack, str, str, dict[str, str]]:
    from miniwdl_serverless.core.errors import RunError, describe_exception, source_excerpt

    settings = resolve_settings(args, os.environ)
    if not args.wdl:
        raise UsageError("give the WORKFLOW to run (or --resume RUN)")
    passing: tuple[type[BaseException], ...] = (UsageError, *_aws_errors())
    try:
        workflow = load_workflow(args.wdl, args.no_outside_imports)
        target, env = parse_inputs(
            workflow.doc, args.inputs, args.input, args.empty, args.none, args.task
        )
    except passing:
        raise
    except Exception as exn:  # unreadable WDL, syntax/type errors, bad inputs: miniwdl's message
        info = exn.info if isinstance(exn, RunError) else describe_exception(exn)
        excerpt = "".join("\n" + line for line in source_excerpt(exn))
        raise UsageError(f"{info.get('error')}: {info.get('message')}{excerpt}") from exn
    stack = _stack(args, clients)
    _check_against_stack(settings, stack, clients)
    _check_upload_target(settings, stack, target.name)
    env = stage_local_inputs(clients, stack, env, settings.stage_inputs, Progress())
    inputs = input_json(target, env)
    uri = workflow.uri
    if workflow.archive is not None:
        bucket = stack.require("bucket", "bucket (BucketName output) to stage the workflow in")
        uri = stage_archive(clients, bucket, staged_key(workflow.archive), workflow.archive)
    name = execution_name(args.wdl, settings.name, target.name)
    run_input = execution_input(settings, uri, inputs, target.name if args.task else None)
    arn = start_execution(clients, stack, name, run_input)
    return stack, name, arn, user_paths(args.wdl, uri, workflow.doc)


def _resume(args: argparse.Namespace, clients: Clients) -> int:
    """``--resume RUN``: the run's own execution input again, through the call cache."""
    from miniwdl_serverless.core.resume import ResumeRefused, cache_was_off, resumed_input

    if args.wdl or args.inputs or args.input:
        raise UsageError("--resume reruns the run's own workflow and inputs: give no WORKFLOW")
    stack = _stack(args, clients)
    run_id = run_id_of(args.resume)
    run = run_store(stack).get_run(run_id)
    if run is None:
        raise UsageError(f"no run {run_id} in the stack's runs table")
    options = dict(run.options or {})
    try:
        rerun = resumed_input(options, run.run_dir, run.status)
    except ResumeRefused as exn:
        raise UsageError(f"cannot resume {run_id}: {exn}") from exn
    if cache_was_off(options):
        print(f"{run_id} wrote no call cache: every call runs again", file=sys.stderr)
    name = execution_name(str(options.get("workflow") or ""), None, run.workflow_name or "")
    start_execution(clients, stack, name, rerun)
    print(f"resumed {run_id} as run {name}", file=sys.stderr)
    if not (args.wait or args.follow):
        print(name)
        return 0
    return RunWatcher(clients, stack, name, follow=args.follow).watch()


def _aws_errors() -> tuple[type[BaseException], ...]:
    """AWS errors pass through to main's one-line reporting (e.g. reading an s3:// workflow)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _check_against_stack(settings: Any, stack: Stack, clients: Clients) -> None:
    """Options that only make sense with what the stack has: its queues, access point, mount."""
    stack_queues = [q for q in (stack.task_queue_arn, stack.task_queue_fallback_arn) if q]
    queue_names = [q.rsplit("/", 1)[-1] for q in stack_queues]
    for flag, queue in (
        ("--task-queue", settings.task_queue),
        ("--task-queue-fallback", settings.task_queue_fallback),
    ):
        if queue and stack_queues and queue not in stack_queues and queue not in queue_names:
            raise UsageError(
                f"{flag} {queue} is not one of the stack's queues ({', '.join(stack_queues)}): "
                "its job events would not reach the stack"
            )
    env = stack.function_env(clients)
    access_point = stack.outputs.get("AccessPointId") or env.get("EFS_ACCESS_POINT_ID")
    if settings.fsap and access_point and settings.fsap != access_point:
        if settings.fsap_from_flag:
            raise UsageError(
                f"--fsap {settings.fsap}: this stack's runs use access point "
                f"{access_point} (leave --fsap out)"
            )
        print(
            f"miniwdl-serverless: warning: ignoring {ENV_FSAP}={settings.fsap}; the stack uses "
            f"{access_point}",
            file=sys.stderr,
        )
    root = env.get("MSLS_EFS_ROOT")
    if settings.dir and root and not (settings.dir + "/").startswith(root.rstrip("/") + "/"):
        raise UsageError(
            f"--dir {settings.dir} is not on the stack's file system (mounted at {root})"
        )
    writable = stack.upload_buckets()
    bucket = settings.s3upload[len("s3://") :].split("/", 1)[0] if settings.s3upload else None
    if bucket and writable is not None and bucket not in writable:
        raise UsageError(
            f"--s3upload: the stack may not write to bucket {bucket} (it writes "
            f"{', '.join(sorted(writable))}; add the bucket to the stack's UploadBucketNames "
            "parameter)"
        )


def _check_upload_target(settings: Any, stack: Stack, target_name: str) -> None:
    """--s3upload may not write under the stack bucket's control prefixes (submit/, errors/,
    wdl/, inputs/): the start function's own rule, applied here before anything is staged or
    started."""
    from miniwdl_serverless.controller.planning import check_upload_target
    from miniwdl_serverless.core.errors import BadSubmission
    from miniwdl_serverless.core.options import RunOptions

    options = RunOptions(s3upload=settings.s3upload, dir=settings.dir)
    try:
        check_upload_target(options, target_name, None, stack.bucket)
    except BadSubmission as exn:
        raise UsageError(f"--{exn}") from exn


# ---- status, logs, cancel, list ------------------------------------------------------------


def status(args: argparse.Namespace, clients: Clients) -> int:
    state = local_runs.chosen(args, os.environ)
    if state is not None:
        execution, run, jobs = local_runs.status(args, state)
    else:
        stack = _stack(args, clients)
        execution = describe_execution(clients, stack, args.run)
        run_id = str(execution.get("name") or run_id_of(args.run))
        run, jobs = get_run(stack, run_id), run_jobs(stack, run_id)
    report = views.status_report(
        execution,
        run.as_dict() if run is not None else None,
        views.call_rows([j.as_dict() for j in jobs]),
    )
    print(json.dumps(report, indent=2, default=str) if args.json else views.format_status(report))
    return 0


def logs(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    execution = describe_execution(clients, stack, args.run)
    run_id = str(execution.get("name") or run_id_of(args.run))
    job = None
    if args.call:
        job = _find_call(stack, run_id, args.call)
    if job is not None and (args.cloudwatch or not stack.logs_function):
        return _cloudwatch_logs(clients, stack, args, job)
    path = log_path(job, args.stdout)
    result = read_run_file(clients, stack, run_id, path, tail_bytes=args.tail)
    if "error" in result and not args.follow:
        raise UsageError(f"{path} of run {run_id}: {result['message']}")
    offset = _print_chunk(result, None)
    while args.follow:
        running = describe_execution(clients, stack, args.run)["status"] == "RUNNING"
        while True:
            if offset is not None:
                result = read_run_file(clients, stack, run_id, path, offset=offset)
            else:
                result = read_run_file(clients, stack, run_id, path, tail_bytes=args.tail)
            before = offset
            offset = _print_chunk(result, offset)
            if offset == before or result.get("next_offset", 0) >= result.get("size", 0):
                break
        if not running:
            break
        time.sleep(poll_seconds())
    return 0


def log_path(job: Any, stdout: bool) -> str:
    """What ``logs`` reads: the run's workflow.log, or the call's newest attempt's stderr (or
    stdout): ``stderr.txt``, a retry's ``stderr2.txt``… (miniwdl's names)."""
    if job is None:
        return "workflow.log"
    name = (stdout_txt if stdout else stderr_txt)(int(job.attempt or 0))
    return f"{job.job_id}/{name}"


def _print_chunk(result: dict[str, Any], offset: int | None) -> int | None:
    if "error" in result:
        return offset
    if result.get("data"):
        sys.stdout.write(result["data"])
        sys.stdout.flush()
    return int(result["next_offset"])


def _find_call(stack: Stack, run_id: str, call: str) -> Any:
    candidates = [
        call,
        "/".join(p if p.startswith("call-") else "call-" + p for p in call.split("/")),
    ]
    for candidate in dict.fromkeys(candidates):
        job = get_job(stack, run_id, candidate) if views.is_call(candidate) else None
        if job is not None:
            return job
    calls = sorted(j.job_id for j in run_jobs(stack, run_id) if views.is_call(j.job_id))
    raise UsageError(
        f"run {run_id} has no call {call!r}"
        + (f"; its calls: {', '.join(calls[:20])}" if calls else "")
    )


def _cloudwatch_logs(clients: Clients, stack: Stack, args: argparse.Namespace, job: Any) -> int:
    if not job.log_stream:
        raise UsageError(
            f"{job.job_id} has no CloudWatch log stream yet (its Batch job has not started)"
        )
    seen: set[str] = set()
    start = None
    while True:
        for event in cloudwatch_events(clients, str(job.log_stream), start, seen):
            print(event["message"])
            start = max(start or 0, int(event["timestamp"]))
        if not args.follow or describe_execution(clients, stack, args.run)["status"] != "RUNNING":
            return 0
        time.sleep(poll_seconds())


def cancel(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    execution = describe_execution(clients, stack, args.run)
    run_id = str(execution["name"])
    if execution["status"] != "RUNNING":
        print(f"run {run_id} already ended: {execution['status']}", file=sys.stderr)
        return 0
    terminated = cancel_run(
        clients, stack, str(execution["executionArn"]), "cancelled with miniwdl-serverless cancel"
    )
    print(f"cancelled run {run_id} ({terminated} Batch jobs terminated)")
    return 0


def list_runs(args: argparse.Namespace, clients: Clients) -> int:
    state = local_runs.chosen(args, os.environ)
    if state is not None:
        executions = local_runs.list_runs(args, state)
    else:
        executions = list_executions(clients, _stack(args, clients), args.limit, args.status)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "run_id": e["name"],
                        "status": e["status"],
                        "execution_arn": e["executionArn"],
                        "started": views.iso(e.get("startDate")),
                        "stopped": views.iso(e.get("stopDate")),
                    }
                    for e in executions
                ],
                indent=2,
            )
        )
    else:
        print(views.format_list(executions))
    return 0


def reconcile(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    run_id = None
    if args.run:
        run_id = str(describe_execution(clients, stack, args.run).get("name") or args.run)
    report = invoke_reconcile(clients, stack, run_id)
    print(json.dumps(report, indent=2) if args.json else views.format_reconcile(report))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Clients], int]] = {
    "submit": submit,
    "status": status,
    "logs": logs,
    "cancel": cancel,
    "report": lambda args, clients: html_report.report_command(
        args, clients, lambda: _stack(args, clients)
    ),
    "list": list_runs,
    "reconcile": reconcile,
    "self-test": lambda args, clients: self_test.self_test(
        args,
        clients,
        lambda: _stack(args, clients),
        lambda submit_args: start_submission(submit_args, clients),
        lambda stack, run_id, out: RunWatcher(clients, stack, run_id, True, out=out).watch(),
    ),
    "teardown": lambda args, clients: teardown.teardown(args, clients, _stack(args, clients)),
}
