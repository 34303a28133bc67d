"""`submit --wait` and `--follow`: wait for a started run to end, showing its progress and
workflow.log, then print its result like `miniwdl run`."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.cli import views
from miniwdl_serverless.cli.progress_display import ProgressDisplay, read_counts
from miniwdl_serverless.cli.stack import (
    BATCH_LOG_GROUP,
    Clients,
    Stack,
    cancel_run,
    describe_execution,
    get_job,
    get_run,
    read_run_file,
    run_store,
)
from miniwdl_serverless.cli.submit import ENV_STACK, UsageError

EXIT_INTERRUPTED = 130
STDERR_TAIL_BYTES = 2048
OUTPUTS_READ_LIMIT = 256 * 1024 * 1024  # outputs.json read back through the logs function


def poll_seconds() -> float:
    return float(os.environ.get("MINIWDL_SERVERLESS_POLL_SECONDS", "2"))


def stack_flag(stack: Stack) -> str:
    """The option naming this stack in a suggested command ("" when the environment names it)."""
    if stack.name and os.environ.get(ENV_STACK) != stack.name:
        return f" --stack {stack.name}"
    if not stack.name:
        return f" --state-machine {stack.state_machine_arn}"
    return ""


class RunWatcher:
    """Waits for a run's execution to end (--wait), optionally showing progress and streaming
    workflow.log (--follow); then prints like `miniwdl run` and returns the exit status."""

    def __init__(  # noqa: PLR0913 - what to watch and where to print it
        self,
        clients: Clients,
        stack: Stack,
        run_id: str,
        follow: bool,
        out: Any = None,
        err: Any = None,
        paths: dict[str, str] | None = None,
    ):
        self.clients, self.stack, self.run_id, self.follow = clients, stack, run_id, follow
        self.paths = paths or {}  # staged document paths to the user's (remote.user_paths)
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.tty = bool(getattr(self.err, "isatty", lambda: False)())
        self.log_offset: int | None = None
        self._tables: Any = None  # the stack's tables, opened on the first read
        # as often as the execution is polled (poll_seconds)
        self.progress = ProgressDisplay(self._counts, err=self.err, enabled=follow, interval=0.0)

    def _counts(self) -> views.Counts | None:
        if self._tables is None:
            self._tables = run_store(self.stack)
        return read_counts(self._tables, self.run_id)

    def watch(self) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            while True:
                description = describe_execution(self.clients, self.stack, self.run_id)
                if self.follow:
                    self._best_effort(self._show_log)
                    self._best_effort(self._show_progress)
                if description["status"] != "RUNNING":
                    break
                time.sleep(poll_seconds())
            if self.follow:
                self._best_effort(self._show_log)
                self.progress.finish(str(description["status"]))
            return self._report(description)
        except KeyboardInterrupt:
            return self._interrupted()
        except (ClientError, BotoCoreError) as exn:  # the run was started: say so, not "bad input"
            self._clear_bar()
            print(
                f"miniwdl-serverless: error: lost track of run {self.run_id} ({exn}); it may "
                f"still be running: miniwdl-serverless status {self.run_id}"
                f"{stack_flag(self.stack)}",
                file=self.err,
            )
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
                terminated = cancel_run(
                    self.clients,
                    self.stack,
                    self.run_id,
                    "cancelled with Ctrl-C in miniwdl-serverless submit --follow",
                )
                print(
                    f"cancelled run {self.run_id} ({terminated} Batch jobs terminated)",
                    file=self.err,
                )
                return EXIT_INTERRUPTED
        flag = stack_flag(self.stack)
        print(
            f"\nrun {self.run_id} keeps running; follow it with: miniwdl-serverless logs "
            f"{self.run_id} --follow{flag}\ncancel it with: miniwdl-serverless cancel "
            f"{self.run_id}{flag}",
            file=self.err,
        )
        return EXIT_INTERRUPTED

    def _show_log(self) -> None:
        try:
            if self.log_offset is None:
                result = read_run_file(
                    self.clients, self.stack, self.run_id, "workflow.log", offset=0
                )
            else:
                result = read_run_file(
                    self.clients, self.stack, self.run_id, "workflow.log", offset=self.log_offset
                )
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
        self.progress.show()

    def _clear_bar(self) -> None:
        self.progress.clear()

    def _report(self, description: dict[str, Any]) -> int:
        if description["status"] == "SUCCEEDED":
            report = views.success_report(description, self._read_outputs)
            print(json.dumps(report, indent=2), file=self.out)
            return 0
        error, info = views.failure_info(description)
        info = views.unstaged(info, self.paths)
        try:
            self._add_log_locations(info)
        except Exception:  # noqa: S110 (the error JSON stands without them)
            pass
        print(json.dumps(info, indent=2), file=self.err)
        print(views.failure_line(error, info), file=self.err)
        for line in views.failure_details(info):
            print(line, file=self.err)
        return views.failure_exit_status(info)

    def _read_outputs(self, reference: str) -> Any:
        """Outputs too large for the execution's output: from S3, or the run directory's
        outputs.json through the logs function; None if they cannot be read from here."""
        try:
            if reference.startswith("s3://"):
                bucket, key = reference[len("s3://") :].split("/", 1)
                response = self.clients.client("s3").get_object(Bucket=bucket, Key=key)
                return json.loads(response["Body"].read())
            return json.loads(self._run_file_text("outputs.json"))
        except Exception as exn:  # the report names outputs_json instead
            print(f"cannot read the outputs ({reference}): {exn}", file=self.err)
            return None

    def _run_file_text(self, path: str, limit: int = OUTPUTS_READ_LIMIT) -> str:
        chunks: list[str] = []
        offset = 0
        while offset < limit:
            chunk = read_run_file(self.clients, self.stack, self.run_id, path, offset=offset)
            if "error" in chunk:
                raise UsageError(f"{chunk['error']}: {chunk.get('message')}")
            chunks.append(chunk["data"])
            if chunk["next_offset"] >= chunk["size"] or chunk["next_offset"] == offset:
                return "".join(chunks)
            offset = chunk["next_offset"]
        raise UsageError(f"{path} is larger than {limit} bytes")

    def _add_log_locations(self, info: dict[str, Any]) -> None:
        """The failed task's stderr tail and where its logs are (EFS files, CloudWatch stream)."""
        run_dir = info.get("dir")
        try:
            run = get_run(self.stack, self.run_id)
        except Exception:
            run = None
        if run is not None and run.run_dir:
            run_dir = str(run.run_dir)
        logs: dict[str, Any] = {}
        if run_dir:
            logs["workflow_log"] = os.path.join(run_dir, "workflow.log")
        cause = info.get("cause") if isinstance(info.get("cause"), dict) else None
        if cause is not None and run_dir:
            self._add_stderr_tail(cause, run_dir)
            logs.update(self._job_logs(cause.get("run") or cause.get("node")))
        if logs:
            info["logs"] = logs

    def _add_stderr_tail(self, cause: dict[str, Any], run_dir: str) -> None:
        stderr_file = cause.get("stderr_file")
        if not stderr_file or not str(stderr_file).startswith(run_dir.rstrip("/") + "/"):
            return
        relative = os.path.relpath(stderr_file, run_dir)
        try:
            tail = read_run_file(
                self.clients, self.stack, self.run_id, relative, tail_bytes=STDERR_TAIL_BYTES
            )
        except UsageError:
            tail = {}
        if "data" in tail:
            cause["stderr_tail"] = tail["data"]

    def _job_logs(self, job_id: str | None) -> dict[str, Any]:
        """The failed call's CloudWatch stream and Batch job id."""
        if not job_id:
            return {}
        try:
            job = get_job(self.stack, self.run_id, job_id)
        except Exception:
            return {}
        logs: dict[str, Any] = {}
        if job is not None and job.log_stream:
            logs["cloudwatch"] = {"group": BATCH_LOG_GROUP, "stream": job.log_stream}
        if job is not None and job.batch_job_id:
            logs["batch_job_id"] = job.batch_job_id
        return logs
