"""`miniwdl-serverless self-test`: check a deployed stack end to end, part by part.

A built-in workflow (two shards that each write a file, and a gather that reads both: what one
Batch job wrote on EFS, another reads) is submitted like `submit` would, waited for, and then
each part of the stack is reported on its own line: the outputs, the state machine, the task
queue and its compute environments, the start function's plan, the Batch submissions, the job
events collected, the shared file system, the upload and the logs function. A part that fails
says what to look at; the exit status is 0 only if every part passed.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miniwdl_serverless.cli.stack import Clients, Stack, read_run_file, run_jobs

SHARDS = 2
WORKFLOW = """version 1.0
workflow self_test {
  input { Int shards = 2 }
  scatter (i in range(shards)) { call write_part { input: i = i } }
  call gather { input: parts = write_part.part }
  output { File report = gather.report  Int lines = gather.lines }
}
task write_part {
  input { Int i }
  command <<< echo "part ~{i} written by Batch job ${AWS_BATCH_JOB_ID:-local}" > part.txt >>>
  output { File part = "part.txt" }
  runtime { docker: "public.ecr.aws/docker/library/ubuntu:22.04"  cpu: 1  memory: "1 GiB" }
}
task gather {
  input { Array[File] parts }
  command <<< cat ~{sep=" " parts} > report.txt; wc -l < report.txt > lines.txt >>>
  output { File report = "report.txt"  Int lines = read_int("lines.txt") }
  runtime { docker: "public.ecr.aws/docker/library/ubuntu:22.04"  cpu: 1  memory: "1 GiB" }
}
"""
REQUIRED_OUTPUTS = ("StateMachineArn", "BucketName", "RunsTableName", "JobsTableName")


@dataclass(frozen=True)
class Check:
    part: str
    passed: bool | None  # None: skipped
    detail: str


def report_lines(checks: list[Check]) -> list[str]:
    marks = {True: "ok  ", False: "FAIL", None: "skip"}
    width = max(len(c.part) for c in checks)
    return [f"{marks[c.passed]}  {c.part:<{width}}  {c.detail}" for c in checks]


def exit_status(checks: list[Check]) -> int:
    return 0 if all(c.passed is not False for c in checks) else 1


def stack_checks(clients: Clients, stack: Stack) -> list[Check]:
    """What can be checked before a run: outputs, state machine, queue."""
    missing = [o for o in REQUIRED_OUTPUTS if not stack.outputs.get(o)]
    checks = [
        Check(
            "stack outputs",
            not missing,
            f"missing {', '.join(missing)}" if missing else f"{len(stack.outputs)} outputs",
        )
    ]
    machine = clients.client("stepfunctions").describe_state_machine(
        stateMachineArn=stack.state_machine_arn
    )
    status = machine.get("status", "ACTIVE")
    checks.append(Check("state machine", status == "ACTIVE", f"{machine['name']}: {status}"))
    checks.append(_queue_check(clients, stack.task_queue_arn))
    return checks


def _queue_check(clients: Clients, queue: str | None) -> Check:
    if not queue:
        return Check("task queue", False, "no TaskQueueArn output")
    batch = clients.client("batch")
    found = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    if not found:
        return Check("task queue", False, f"{queue} does not exist")
    state, status = found[0].get("state"), found[0].get("status")
    environments = [e["computeEnvironment"] for e in found[0].get("computeEnvironmentOrder", [])]
    described = batch.describe_compute_environments(computeEnvironments=environments)
    broken = [
        f"{e['computeEnvironmentName']} {e.get('state')}/{e.get('status')}"
        for e in described["computeEnvironments"]
        if e.get("state") != "ENABLED" or e.get("status") not in ("VALID", None)
    ]
    passed = state == "ENABLED" and status == "VALID" and not broken
    detail = f"{found[0]['jobQueueName']}: {state}/{status}, {len(environments)} compute envs"
    return Check(
        "task queue", passed, detail + (f"; not usable: {', '.join(broken)}" if broken else "")
    )


def run_checks(  # noqa: PLR0913 - the run, its outcome and where to read its files
    clients: Clients,
    stack: Stack,
    run_id: str,
    status: int,
    report: dict[str, Any] | None,
    s3upload: str | None,
) -> list[Check]:
    """What the run shows, part by part, from the stack's tables, S3 and the logs function."""
    jobs = run_jobs(stack, run_id) if stack.jobs_table else []
    calls = [j for j in jobs if j.job_id.startswith("call-")]
    submitted = [j for j in calls if j.batch_job_id]
    done = [j for j in calls if j.status == "done"]
    expected = SHARDS + 1
    outputs = (report or {}).get("outputs") or {}
    lines = outputs.get("self_test.lines")
    checks = [
        Check(
            "start function",
            bool(jobs),
            f"{len(jobs)} jobs planned" if jobs else "no jobs in the jobs table",
        ),
        Check(
            "Batch submissions",
            len(submitted) == expected,
            f"{len(submitted)} of {expected} calls got a Batch job",
        ),
        Check(
            "job events",
            len(done) == expected,
            f"{len(done)} of {expected} calls collected as done",
        ),
        Check(
            "shared file system",
            lines == SHARDS,
            f"the gather read {lines} parts written by other jobs"
            if lines is not None
            else "no gather output (the run did not succeed)",
        ),
        _upload_check(clients, outputs, s3upload),
        _logs_check(clients, stack, run_id),
        Check("run", status == 0, "succeeded" if status == 0 else f"failed (exit status {status})"),
    ]
    return checks


def _upload_check(clients: Clients, outputs: dict[str, Any], s3upload: str | None) -> Check:
    if not s3upload:
        return Check("upload", None, "no --s3upload given")
    report = str(outputs.get("self_test.report") or "")
    if not report.startswith("s3://"):
        return Check("upload", False, f"the report output is not in S3: {report or 'none'}")
    bucket, key = report[len("s3://") :].split("/", 1)
    body = clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return Check("upload", body.count(b"\n") == SHARDS, f"{report} ({len(body)} bytes)")


def _logs_check(clients: Clients, stack: Stack, run_id: str) -> Check:
    if not stack.logs_function:
        return Check("logs function", False, "no LogsFunctionName output")
    chunk = read_run_file(clients, stack, run_id, "workflow.log")
    if "error" in chunk:
        return Check("logs function", False, f"{chunk['error']}: {chunk.get('message')}")
    return Check("logs function", True, f"workflow.log read, {chunk.get('size')} bytes")


def self_test(
    args: argparse.Namespace,
    clients: Clients,
    find: Callable[[], Stack],
    start: Callable[[argparse.Namespace], tuple[Stack, str, str]],
    watch: Callable[[Stack, str, Any], int],
) -> int:
    stack = find()
    checks = stack_checks(clients, stack)
    for line in report_lines(checks):
        print(line, flush=True)
    if exit_status(checks):
        print("the stack is not ready: no run started", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="msls-self-test-") as folder:
        wdl = Path(folder) / "self_test.wdl"
        wdl.write_text(WORKFLOW)
        submit_args = _submit_args(args, str(wdl))
        stack, run_id, _arn = start(submit_args)
    print(f"started run {run_id}", file=sys.stderr, flush=True)
    out = io.StringIO()
    status = watch(stack, run_id, out)
    report = json.loads(out.getvalue()) if status == 0 and out.getvalue() else None
    checks = run_checks(clients, stack, run_id, status, report, submit_args.s3upload)
    for line in report_lines(checks):
        print(line)
    failed = exit_status(checks)
    print(f"self-test {'failed' if failed else 'passed'}: run {run_id}", file=sys.stderr)
    return failed


def _submit_args(args: argparse.Namespace, wdl: str) -> argparse.Namespace:
    from miniwdl_serverless.cli.main import parse_remote_args

    argv = [wdl, f"shards={SHARDS}", "--name", "self_test", "--wait"]
    for flag, value in (
        ("--stack", args.stack),
        ("--state-machine", args.state_machine),
        ("--dir", args.dir),
        ("--s3upload", args.s3upload),
    ):
        if value:
            argv += [flag, value]
    return parse_remote_args("submit", argv)
