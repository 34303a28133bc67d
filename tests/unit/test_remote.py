"""The CLI shell's behaviour that needs no AWS: AWS errors as one line and exit 2, the
progress bar on a terminal, and Ctrl-C's question on a terminal (remote.py and watch.py)."""

from __future__ import annotations

import argparse
import io

import pytest
from botocore.exceptions import ClientError

from miniwdl_serverless.cli import remote, watch
from miniwdl_serverless.cli.stack import Stack
from miniwdl_serverless.core.records import Job, Run


@pytest.mark.parametrize(
    "code, expected",
    [
        (
            "UnrecognizedClientException",
            "AWS rejected the credentials (UnrecognizedClientException): nope",
        ),
        ("ExpiredToken", "AWS rejected the credentials (ExpiredToken): nope"),
        ("AccessDeniedException", "AWS error (AccessDeniedException): nope"),
    ],
)
def test_aws_errors_are_one_line(monkeypatch, capsys, code, expected):
    def command(args, clients):
        raise ClientError({"Error": {"Code": code, "Message": "nope"}}, "DescribeStacks")

    monkeypatch.setitem(remote.COMMANDS, "list", command)
    assert remote.main("list", argparse.Namespace()) == 2
    assert capsys.readouterr().err == f"miniwdl-serverless: error: {expected}\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def job(job_id: str, status: str, started: bool = True) -> Job:
    return Job(
        "run", job_id, status=status, batch_job_name="n", started_at=1.0 if started else None
    )


class Tables:
    """The run store as the progress display reads it (get_run, query_jobs, tallied)."""

    def __init__(self, run: Run, jobs: list[Job], tallied: dict[str, int] | None = None):
        self.run, self.jobs, self.buckets = run, jobs, tallied or {}

    def tallied(self, run_id: str) -> dict[str, int]:
        return self.buckets

    def get_run(self, run_id: str) -> Run:
        return self.run

    def query_jobs(self, run_id: str) -> list[Job]:
        if int(self.run.jobs_total or 0) > 2000:
            pytest.fail("read every job of a large run")
        return self.jobs


def test_progress_bar_on_a_terminal(monkeypatch):
    jobs = [job("call-a", "done"), job("call-b", "running", False)]
    monkeypatch.setattr(watch, "run_store", lambda stack: Tables(Run("r"), jobs))
    err = Terminal()
    stack = Stack("arn:aws:states:us-east-1:1:stateMachine:s")
    watcher = watch.RunWatcher(None, stack, "r", follow=True, err=err)  # type: ignore[arg-type]
    watcher._show_progress()
    assert err.getvalue() == (
        "\r[###############...............] calls: 1 of 2 done, 0 running, 1 queued, 0 failed\x1b[K"
    )
    jobs[1] = job("call-b", "done")
    watcher.progress.finish("SUCCEEDED")  # the bar makes way for the final line
    assert err.getvalue().endswith(
        "\r\x1b[Kcalls: 2 of 2 done, 0 running, 0 queued, 0 failed: run succeeded\n"
    )


@pytest.mark.parametrize("answer, cancelled", [("y", True), ("", False)])
def test_ctrl_c_on_a_terminal_asks(monkeypatch, answer, cancelled):
    calls = []
    monkeypatch.setattr(watch.sys, "stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    monkeypatch.setattr(
        watch, "cancel_run", lambda clients, stack, run, cause: calls.append(run) or 2
    )
    err = Terminal()
    stack = Stack("arn:aws:states:us-east-1:1:stateMachine:s", name="st")
    watcher = watch.RunWatcher(None, stack, "r1", follow=True, err=err)  # type: ignore[arg-type]
    assert watcher._interrupted() == 130
    assert calls == (["r1"] if cancelled else [])
    text = err.getvalue()
    assert ("cancelled run r1 (2 Batch jobs terminated)" in text) == cancelled
    assert ("run r1 keeps running" in text) != cancelled


def test_large_runs_show_progress_from_the_run_counters(monkeypatch):
    run = Run("run", jobs_total=10_006, calls_submitted=50, calls_succeeded=5)
    shards = {"jobs_done": 15, "calls_succeeded": 15, "calls_cached": 0}  # in their buckets
    monkeypatch.setattr(watch, "run_store", lambda stack: Tables(run, [], shards))
    err = io.StringIO()
    stack = Stack("arn:aws:states:us-east-1:1:stateMachine:s")
    watcher = watch.RunWatcher(None, stack, "r", follow=True, err=err)  # type: ignore[arg-type]
    watcher._show_progress()
    assert err.getvalue() == "calls: 20 of 50 done, 30 running, 0 queued, 0 failed\n"


@pytest.mark.parametrize(
    "outputs, s3upload, problem",
    [
        ({"UploadBuckets": "stack-bucket,"}, "s3://stack-bucket/results/", None),
        ({"UploadBuckets": "stack-bucket,shared-results"}, "s3://shared-results/x", None),
        (
            {"UploadBuckets": "stack-bucket,"},
            "s3://elsewhere/results/",
            "may not write to bucket elsewhere",
        ),
        ({}, "s3://elsewhere/results/", None),  # a stack without the output: not checked
    ],
)
def test_s3upload_bucket_must_be_writable_by_the_stack(outputs, s3upload, problem):
    from miniwdl_serverless.cli.submit import UsageError

    stack = Stack("arn:aws:states:us-east-1:1:stateMachine:s", name="st", outputs=outputs)
    stack._function_env = {}
    settings = argparse.Namespace(
        task_queue=None, task_queue_fallback=None, fsap=None, dir=None, s3upload=s3upload
    )
    if problem is None:
        remote._check_against_stack(settings, stack, None)  # type: ignore[arg-type]
    else:
        with pytest.raises(UsageError, match=problem):
            remote._check_against_stack(settings, stack, None)  # type: ignore[arg-type]
