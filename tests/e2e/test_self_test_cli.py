"""`miniwdl-serverless self-test` against the embedded AWS in server mode: the built-in workflow
runs through the stack and every part is reported; a stack whose queue is disabled fails at
that part and starts nothing."""

from __future__ import annotations

import boto3
import pytest

from tests.e2e.test_submit_cli import STACK, cli, executions

pytestmark = pytest.mark.xdist_group("server")


def test_self_test_reports_every_part_of_a_working_stack(aws_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="self-test-results")
    result = cli(
        aws_server,
        "self-test",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path / "runs"),
        "--s3upload",
        "s3://self-test-results/check/",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line[6:].split("  ")[0].strip(): line for line in result.stdout.splitlines()}
    for part in (
        "stack outputs",
        "state machine",
        "task queue",
        "start function",
        "Batch submissions",
        "job events",
        "shared file system",
        "upload",
        "logs function",
        "run",
    ):
        assert lines[part].startswith("ok"), result.stdout
    assert "3 of 3 calls got a Batch job" in lines["Batch submissions"]
    assert "the gather read 2 parts" in lines["shared file system"]
    assert "self-test passed" in result.stderr


def test_self_test_stops_at_a_disabled_queue(aws_server, tmp_path):
    batch = boto3.client("batch")
    before = len(executions(aws_server))
    batch.update_job_queue(jobQueue=aws_server.queue_arn, state="DISABLED")
    try:
        result = cli(aws_server, "self-test", "--stack", STACK, "--dir", str(tmp_path))
    finally:
        batch.update_job_queue(jobQueue=aws_server.queue_arn, state="ENABLED")
    assert result.returncode == 1
    (queue,) = [line for line in result.stdout.splitlines() if "task queue" in line]
    assert queue.startswith("FAIL") and "DISABLED" in queue
    assert "no run started" in result.stderr
    assert len(executions(aws_server)) == before
