"""`submit`, `status`, `logs`, `cancel`, `list`: the CLI against a deployed stack (imperative
shell over submit.py, views.py and aws_ops.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.cli import stack as aws_ops
from miniwdl_serverless.cli import views
from miniwdl_serverless.cli.stack import Clients, Stack
from miniwdl_serverless.cli.submit import ENV_FSAP, ENV_STACK, ENV_STATE_MACHINE, UsageError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
STDERR_TAIL_BYTES = 2048


def poll_seconds() -> float:
    return float(os.environ.get("MINIWDL_SERVERLESS_POLL_SECONDS", "2"))


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
        return _usage("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`)")
    except NoRegionError:
        return _usage("no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION, or a region in your AWS profile)")
    except EndpointConnectionError as exn:
        return _usage(f"cannot reach AWS: {exn} (check the region and AWS_ENDPOINT_URL)")
    except ClientError as exn:
        error = exn.response.get("Error", {})
        code, message = error.get("Code", "ClientError"), error.get("Message", str(exn))
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
                    "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure"):
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
        raise UsageError(f"which stack? give --stack NAME or --state-machine ARN (or set {ENV_STACK})")
    return aws_ops.find_stack(clients, name, machine)


# ---- submit --------------------------------------------------------------------------------


def submit(args: argparse.Namespace, clients: Clients) -> int:
    from miniwdl_serverless.cli import submit as core
    from miniwdl_serverless.core.errors import RunError, describe_exception

    settings = core.resolve_settings(args, os.environ)
    passing: tuple[type[BaseException], ...] = (UsageError, *aws_ops_errors())
    try:
        workflow = core.load_workflow(args.wdl)
        target, inputs = core.parse_inputs(workflow.doc, args.inputs, args.input, args.empty, args.none, args.task)
    except passing:
        raise
    except Exception as exn:  # unreadable WDL, syntax/type errors, bad inputs: miniwdl's message
        info = exn.info if isinstance(exn, RunError) else describe_exception(exn)
        raise UsageError(f"{info.get('error')}: {info.get('message')}") from exn
    stack = _stack(args, clients)
    _check_against_stack(settings, stack, clients)
    uri = workflow.uri
    if workflow.archive is not None:
        bucket = stack.require("bucket", "bucket (BucketName output) to stage the workflow in")
        uri = aws_ops.stage_archive(clients, bucket, core.staged_key(workflow.archive), workflow.archive)
    name = core.execution_name(args.wdl, settings.name, target.name)
    execution_input = core.execution_input(settings, uri, inputs, target.name if args.task else None)
    arn = aws_ops.start_execution(clients, stack, name, execution_input)
    if not (args.wait or args.follow):
        print(name)
        print(f"started run {name} ({arn}); see it with: miniwdl-serverless status {name}{_stack_flag(stack)}", file=sys.stderr)
        return 0
    print(f"started run {name}", file=sys.stderr)
    return RunWatcher(clients, stack, name, follow=args.follow).watch()


def aws_ops_errors() -> tuple[type[BaseException], ...]:
    """AWS errors pass through to main's one-line reporting (e.g. reading an s3:// workflow)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _stack_flag(stack: Stack) -> str:
    if stack.name and os.environ.get(ENV_STACK) != stack.name:
        return f" --stack {stack.name}"
    if not stack.name:
        return f" --state-machine {stack.state_machine_arn}"
    return ""


def _check_against_stack(settings: Any, stack: Stack, clients: Clients) -> None:
    """Options that only make sense with what the stack has: its queues, access point, mount."""
    stack_queues = [q for q in (stack.task_queue_arn, stack.task_queue_fallback_arn) if q]
    for flag, queue in (("--task-queue", settings.task_queue), ("--task-queue-fallback", settings.task_queue_fallback)):
        if queue and stack_queues and queue not in stack_queues and queue not in [q.rsplit("/", 1)[-1] for q in stack_queues]:
            raise UsageError(
                f"{flag} {queue} is not one of the stack's queues ({', '.join(stack_queues)}): its job events would not "
                "reach the stack"
            )
    env = stack.function_env(clients)
    access_point = stack.outputs.get("AccessPointId") or env.get("EFS_ACCESS_POINT_ID")
    if settings.fsap and access_point and settings.fsap != access_point:
        if settings.fsap_from_flag:
            raise UsageError(f"--fsap {settings.fsap}: this stack's runs use access point {access_point} (leave --fsap out)")
        print(f"miniwdl-serverless: warning: ignoring {ENV_FSAP}={settings.fsap}; the stack uses {access_point}", file=sys.stderr)
    root = env.get("MSLS_EFS_ROOT")
    if settings.dir and root and not (settings.dir + "/").startswith(root.rstrip("/") + "/"):
        raise UsageError(f"--dir {settings.dir} is not on the stack's file system (mounted at {root})")
    writable = stack.upload_buckets()
    bucket = settings.s3upload[len("s3://") :].split("/", 1)[0] if settings.s3upload else None
    if bucket and writable is not None and bucket not in writable:
        raise UsageError(
            f"--s3upload: the stack may not write to bucket {bucket} (it writes {', '.join(sorted(writable))}; "
            "add the bucket to the stack's UploadBucketNames parameter)"
        )


# ---- waiting and following -----------------------------------------------------------------


class RunWatcher:
    """Waits for a run's execution to end (--wait), optionally showing progress and streaming
    workflow.log (--follow); then prints like `miniwdl run` and returns the exit status."""

    def __init__(self, clients: Clients, stack: Stack, run_id: str, follow: bool, out: Any = None, err: Any = None):
        self.clients, self.stack, self.run_id, self.follow = clients, stack, run_id, follow
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.tty = bool(getattr(self.err, "isatty", lambda: False)())
        self.log_offset: int | None = None
        self.last_progress = ""
        self.bar_shown = False

    def watch(self) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            while True:
                description = aws_ops.describe_execution(self.clients, self.stack, self.run_id)
                if self.follow:
                    self._best_effort(self._show_log)
                    self._best_effort(self._show_progress)
                if description["status"] != "RUNNING":
                    break
                time.sleep(poll_seconds())
            if self.follow:
                self._best_effort(self._show_log)
                self._clear_bar()
            return self._report(description)
        except KeyboardInterrupt:
            return self._interrupted()
        except (ClientError, BotoCoreError) as exn:  # the run was started: say so, not "bad input"
            self._clear_bar()
            print(f"miniwdl-serverless: error: lost track of run {self.run_id} ({exn}); it may still be running: "
                  f"miniwdl-serverless status {self.run_id}{_stack_flag(self.stack)}", file=self.err)
            return 1

    @staticmethod
    def _best_effort(show: Callable[[], None]) -> None:
        """Progress and log lines are extras: a failed read is skipped (retried next poll)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            show()
        except (ClientError, BotoCoreError, UsageError):
            pass

    def _interrupted(self) -> int:
        self._clear_bar()
        stdin_tty = bool(getattr(sys.stdin, "isatty", lambda: False)())
        if stdin_tty and self.tty:
            try:
                answer = input("\ncancel the run? [y/N] ").strip().lower()
            except (EOFError, KeyboardInterrupt):
                answer = ""
            if answer in ("y", "yes"):
                terminated = cancel_run(self.clients, self.stack, self.run_id, "cancelled with Ctrl-C in miniwdl-serverless submit --follow")
                print(f"cancelled run {self.run_id} ({terminated} Batch jobs terminated)", file=self.err)
                return EXIT_INTERRUPTED
        print(
            f"\nrun {self.run_id} keeps running; follow it with: miniwdl-serverless logs {self.run_id} --follow"
            f"{_stack_flag(self.stack)}\ncancel it with: miniwdl-serverless cancel {self.run_id}{_stack_flag(self.stack)}",
            file=self.err,
        )
        return EXIT_INTERRUPTED

    def _show_log(self) -> None:
        try:
            if self.log_offset is None:
                result = aws_ops.read_run_file(self.clients, self.stack, self.run_id, "workflow.log", offset=0)
            else:
                result = aws_ops.read_run_file(self.clients, self.stack, self.run_id, "workflow.log", offset=self.log_offset)
        except UsageError:
            return  # a stack without the logs function: progress only
        if "error" in result or not result.get("data"):
            return
        data = result["data"]
        complete = data.rfind("\n") + 1  # whole lines only; the rest comes next time
        if complete == 0 and result["next_offset"] < result["size"]:
            complete = len(data)
        if complete:
            self._clear_bar()
            self.err.write(data[:complete])
            self.err.flush()
            self.log_offset = int(result["offset"]) + len(data[:complete].encode())
        elif self.log_offset is None:
            self.log_offset = int(result["offset"])

    def _show_progress(self) -> None:
        try:
            run = aws_ops.get_run(self.stack, self.run_id)
        except UsageError:
            run = None
        try:
            if run is not None and int(run.jobs_total or 0) > views.LARGE_RUN_JOBS:
                counts = views.counts_from_run(run.attribute_values)  # one read, not thousands
            else:
                jobs = [j.attribute_values for j in aws_ops.run_jobs(self.stack, self.run_id)]
                counts = views.count_calls(views.call_rows(jobs))
        except UsageError:
            return
        if not counts.total:
            return
        if self.tty:
            line = views.progress_line(counts, width=30)
            self.err.write("\r" + line + "\x1b[K")
            self.err.flush()
            self.bar_shown = True
        else:
            line = views.progress_line(counts)
            if line != self.last_progress:
                print(line, file=self.err, flush=True)
        self.last_progress = line

    def _clear_bar(self) -> None:
        if self.bar_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self.bar_shown = False

    def _report(self, description: dict[str, Any]) -> int:
        if description["status"] == "SUCCEEDED":
            print(json.dumps(views.success_report(description), indent=2), file=self.out)
            return 0
        error, info = views.failure_info(description)
        try:
            self._add_log_locations(info)
        except Exception:  # noqa: S110 (the error JSON stands without them)
            pass
        print(json.dumps(info, indent=2), file=self.err)
        print(views.failure_line(error, info), file=self.err)
        return views.failure_exit_status(info)

    def _add_log_locations(self, info: dict[str, Any]) -> None:
        """The failed task's stderr tail and where its logs are (EFS files, CloudWatch stream)."""
        run_dir = info.get("dir")
        try:
            run = aws_ops.get_run(self.stack, self.run_id)
        except Exception:
            run = None
        if run is not None and run.run_dir:
            run_dir = str(run.run_dir)
        logs: dict[str, Any] = {}
        if run_dir:
            logs["workflow_log"] = os.path.join(run_dir, "workflow.log")
        cause = info.get("cause") if isinstance(info.get("cause"), dict) else None
        if cause is not None and run_dir:
            job_id = cause.get("run") or cause.get("node")
            stderr_file = cause.get("stderr_file")
            if stderr_file and str(stderr_file).startswith(run_dir.rstrip("/") + "/"):
                relative = os.path.relpath(stderr_file, run_dir)
                try:
                    tail = aws_ops.read_run_file(self.clients, self.stack, self.run_id, relative, tail_bytes=STDERR_TAIL_BYTES)
                except UsageError:
                    tail = {}
                if "data" in tail:
                    cause["stderr_tail"] = tail["data"]
            if job_id:
                try:
                    job = aws_ops.get_job(self.stack, self.run_id, job_id)
                except Exception:
                    job = None
                if job is not None and job.log_stream:
                    logs["cloudwatch"] = {"group": aws_ops.BATCH_LOG_GROUP, "stream": job.log_stream}
                if job is not None and job.batch_job_id:
                    logs["batch_job_id"] = job.batch_job_id
        if logs:
            info["logs"] = logs


# ---- status, logs, cancel, list ------------------------------------------------------------


def status(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    execution = aws_ops.describe_execution(clients, stack, args.run)
    run_id = str(execution.get("name") or aws_ops.run_id_of(args.run))
    run = aws_ops.get_run(stack, run_id)
    jobs = [j.attribute_values for j in aws_ops.run_jobs(stack, run_id)]
    report = views.status_report(execution, run.attribute_values if run is not None else None, views.call_rows(jobs))
    print(json.dumps(report, indent=2, default=str) if args.json else views.format_status(report))
    return 0


def logs(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    execution = aws_ops.describe_execution(clients, stack, args.run)
    run_id = str(execution.get("name") or aws_ops.run_id_of(args.run))
    job = None
    if args.call:
        job = _find_call(stack, run_id, args.call)
    if job is not None and (args.cloudwatch or not stack.logs_function):
        return _cloudwatch_logs(clients, stack, args, job)
    path = "workflow.log" if job is None else f"{job.job_id}/{'stdout' if args.stdout else 'stderr'}.txt"
    result = aws_ops.read_run_file(clients, stack, run_id, path, tail_bytes=args.tail)
    if "error" in result and not args.follow:
        raise UsageError(f"{path} of run {run_id}: {result['message']}")
    offset = _print_chunk(result, None)
    while args.follow:
        running = aws_ops.describe_execution(clients, stack, args.run)["status"] == "RUNNING"
        while True:
            result = aws_ops.read_run_file(clients, stack, run_id, path, offset=offset) if offset is not None else \
                aws_ops.read_run_file(clients, stack, run_id, path, tail_bytes=args.tail)
            before = offset
            offset = _print_chunk(result, offset)
            if offset == before or result.get("next_offset", 0) >= result.get("size", 0):
                break
        if not running:
            break
        time.sleep(poll_seconds())
    return 0


def _print_chunk(result: dict[str, Any], offset: int | None) -> int | None:
    if "error" in result:
        return offset
    if result.get("data"):
        sys.stdout.write(result["data"])
        sys.stdout.flush()
    return int(result["next_offset"])


def _find_call(stack: Stack, run_id: str, call: str) -> Any:
    candidates = [call, "/".join(p if p.startswith("call-") else "call-" + p for p in call.split("/"))]
    for candidate in dict.fromkeys(candidates):
        job = aws_ops.get_job(stack, run_id, candidate) if views.is_call(candidate) else None
        if job is not None:
            return job
    calls = sorted(j.job_id for j in aws_ops.run_jobs(stack, run_id) if views.is_call(j.job_id))
    raise UsageError(f"run {run_id} has no call {call!r}" + (f"; its calls: {', '.join(calls[:20])}" if calls else ""))


def _cloudwatch_logs(clients: Clients, stack: Stack, args: argparse.Namespace, job: Any) -> int:
    if not job.log_stream:
        raise UsageError(f"{job.job_id} has no CloudWatch log stream yet (its Batch job has not started)")
    seen: set[str] = set()
    start = None
    while True:
        for event in aws_ops.cloudwatch_events(clients, str(job.log_stream), start, seen):
            print(event["message"])
            start = max(start or 0, int(event["timestamp"]))
        if not args.follow or aws_ops.describe_execution(clients, stack, args.run)["status"] != "RUNNING":
            return 0
        time.sleep(poll_seconds())


def cancel_run(clients: Clients, stack: Stack, run: str, cause: str) -> int:
    """Stop the execution and terminate the run's Batch jobs (the stack's cancel function does
    the same on the execution's ABORTED event, catching any submitted meanwhile)."""
    aws_ops.stop_execution(clients, stack, run, cause)
    run_id = aws_ops.run_id_of(run)
    if not stack.jobs_table:
        return 0
    terminated, problems = aws_ops.terminate_jobs(clients, aws_ops.run_jobs(stack, run_id), "miniwdl-serverless: run cancelled")
    for problem in problems:
        print(f"miniwdl-serverless: warning: cannot terminate {problem} (the stack's cancel function will)", file=sys.stderr)
    return terminated


def cancel(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    execution = aws_ops.describe_execution(clients, stack, args.run)
    run_id = str(execution["name"])
    if execution["status"] != "RUNNING":
        print(f"run {run_id} already ended: {execution['status']}", file=sys.stderr)
        return 0
    terminated = cancel_run(clients, stack, str(execution["executionArn"]), "cancelled with miniwdl-serverless cancel")
    print(f"cancelled run {run_id} ({terminated} Batch jobs terminated)")
    return 0


def list_runs(args: argparse.Namespace, clients: Clients) -> int:
    stack = _stack(args, clients)
    executions = aws_ops.list_executions(clients, stack, args.limit, args.status)
    if args.json:
        print(json.dumps([
            {"run_id": e["name"], "status": e["status"], "execution_arn": e["executionArn"],
             "started": views.iso(e.get("startDate")), "stopped": views.iso(e.get("stopDate"))}
            for e in executions
        ], indent=2))
    else:
        print(views.format_list(executions))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Clients], int]] = {
    "submit": submit, "status": status, "logs": logs, "cancel": cancel, "list": list_runs,
}
