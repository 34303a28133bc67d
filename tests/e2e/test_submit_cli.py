"""`miniwdl-serverless submit|status|logs|cancel|list` as a user runs them: the real CLI in a
subprocess, against the embedded AWS served over HTTP (moto server mode on 127.0.0.1) with a
CloudFormation stack whose outputs name the resources, as a deployed stack's do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.e2e.test_call_cache_cli import PIPELINE as RESUMABLE
from tests.polling import wait_for

pytestmark = pytest.mark.xdist_group("server")

CLI = str(Path(sys.executable).parent / "miniwdl-serverless")
STACK = "miniwdl-serverless-local"

GOOD = """
version 1.0
import "lib/greet.wdl" as lib
workflow hello {
  input { String who  Int n = 2 }
  scatter (i in range(n)) { call lib.greet { input: who = who, i = i } }
  output { Array[String] lines = greet.line  File first = greet.out[0] }
}
"""
LIB = """
version 1.0
task greet {
  input { String who  Int i }
  command <<< echo "hello ~{who} ~{i}" | tee out.txt; echo "greeting ~{i}" >&2 >>>
  output { String line = read_string("out.txt")  File out = "out.txt" }
}
"""
FAILING = """
version 1.0
workflow broken {
  call fails
}
task fails {
  command <<< echo "something went wrong" >&2; exit 3 >>>
}
"""
BIG = """
version 1.0
task big {
  command <<< head -c 3000000 /dev/zero | tr '\\0' 'x' > big.txt >>>
  output { String s = read_string("big.txt") }
}
"""
SLOW = """
version 1.0
task slow { command <<< echo started >&2; sleep 60 >>> }
"""


def environment(aws, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MINIWDL"))}
    env.update(
        {
            "AWS_ENDPOINT_URL": aws.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MINIWDL_SERVERLESS_POLL_SECONDS": "0.2",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }
    )
    env.update(extra)
    return env


def cli(
    aws, *args: str, env: dict[str, str] | None = None, cwd: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env=env or environment(aws),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_workflow(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "greet.wdl").write_text(LIB)
    (tmp_path / "hello.wdl").write_text(GOOD)
    return tmp_path / "hello.wdl"


def executions(aws) -> list[str]:
    pages = aws.sfn.get_paginator("list_executions").paginate(stateMachineArn=aws.state_machine_arn)
    return [e["executionArn"] for page in pages for e in page["executions"]]


def latest_execution(aws) -> dict:
    pages = aws.sfn.get_paginator("list_executions").paginate(stateMachineArn=aws.state_machine_arn)
    newest = max((e for page in pages for e in page["executions"]), key=lambda e: e["startDate"])
    return dict(aws.sfn.describe_execution(executionArn=newest["executionArn"]))


def wait_until(predicate, timeout: float = 60, message: str = "condition") -> None:
    try:
        wait_for(predicate, timeout)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {message}") from None


def test_submit_wait_succeeds_with_staged_zip_upload_and_tags(aws_server, tmp_path):
    wdl = write_workflow(tmp_path)
    boto3.client("s3").create_bucket(Bucket="submit-results")
    result = cli(
        aws_server,
        "submit",
        str(wdl),
        "who=world",
        "--wait",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path / "runs"),
        "--s3upload",
        "s3://submit-results/hello/",
        "--tags",
        "team=genomics",
        "--tags",
        "project=p1",
        "--runtime-defaults",
        '{"maxRetries": 1}',
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outputs"]["hello.lines"] == ["hello world 0", "hello world 1"]
    assert report["outputs"]["hello.first"] == "s3://submit-results/hello/first/out.txt"
    assert Path(report["dir"]).parent == tmp_path / "runs"
    s3 = boto3.client("s3")
    assert (
        s3.get_object(Bucket="submit-results", Key="hello/first/out.txt")["Body"].read()
        == b"hello world 0\n"
    )
    assert (
        json.loads(s3.get_object(Bucket="submit-results", Key="hello/outputs.json")["Body"].read())
        == report["outputs"]
    )
    # the local WDL and its import went as one miniwdl zip, content-addressed in the stack's bucket
    staged = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=aws_server.bucket, Prefix="wdl/").get("Contents", [])
    ]
    assert staged and all(k.endswith(".zip") for k in staged)
    execution = latest_execution(aws_server)
    sent = json.loads(execution["input"])
    assert sent["workflow"].startswith(f"s3://{aws_server.bucket}/wdl/") and sent[
        "workflow"
    ].endswith(".zip")
    assert sent["config"] == {"TASK_RUNTIME__DEFAULTS": '{"maxRetries": 1}'}
    # cost-allocation tags on every Batch job of the run
    run = execution["name"]
    batch_ids = [j.batch_job_id for j in aws_server.store.query_jobs(run) if j.batch_job_id]
    assert len(batch_ids) == 2
    for job in boto3.client("batch").describe_jobs(jobs=batch_ids)["jobs"]:
        assert job["tags"]["team"] == "genomics" and job["tags"]["project"] == "p1"


def test_submit_follow_failure_reports_stderr_tail_and_logs(aws_server, tmp_path):
    (tmp_path / "broken.wdl").write_text(FAILING)
    result = cli(
        aws_server,
        "submit",
        str(tmp_path / "broken.wdl"),
        "--follow",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path),
    )
    assert result.returncode == 3, result.stderr  # the failed task's exit status, as miniwdl run
    assert result.stdout == ""
    assert "calls: " in result.stderr  # progress, plain lines without a terminal
    assert "submitting call-fails attempt 1" in result.stderr  # the streamed workflow.log
    error = json.loads(
        result.stderr[result.stderr.index("\n{") + 1 : result.stderr.rindex("}") + 1]
    )
    assert error["error"] == "RunFailed" and error["cause"]["exit_status"] == 3
    assert error["cause"]["stderr_tail"] == "something went wrong\n"
    assert error["logs"]["workflow_log"].endswith("/workflow.log")
    assert (
        error["logs"]["cloudwatch"]["group"] == "/aws/batch/job"
        and error["logs"]["cloudwatch"]["stream"]
    )
    lines = result.stderr.rstrip().splitlines()
    failure = next(n for n, line in enumerate(lines) if line.startswith("miniwdl-serverless: "))
    # under it, as for a local run: the task and its line (in the user's file), its stderr
    assert lines[failure + 1 :][:3] == [
        "  task fails (broken.wdl Ln 6 Col 1) failed with exit status 3",
        f"  last lines of its stderr ({error['cause']['stderr_file']}):",
        "    something went wrong",
    ]
    assert lines[-1].startswith("  task log: CloudWatch /aws/batch/job ")
    # the staged zip's document path is mapped back to the user's file everywhere
    assert ".zip/" not in result.stderr
    assert error["cause"]["pos"]["source"] == str(tmp_path / "broken.wdl")


def test_submit_follow_success_prints_outputs_and_progress(aws_server, tmp_path):
    wdl = write_workflow(tmp_path)
    result = cli(
        aws_server,
        "submit",
        str(wdl),
        "who=x",
        "n=1",
        "--follow",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"]["hello.lines"] == ["hello x 0"]
    assert "calls: " in result.stderr and "submitting call-greet-0 attempt 1" in result.stderr


def submit_failing(aws, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`submit --wait` of a workflow whose task exits 3 (the real CLI in its own process)."""
    (tmp_path / "broken.wdl").write_text(FAILING)
    submitted = cli(
        aws, "submit", str(tmp_path / "broken.wdl"), "--wait", "--stack", STACK,
        "--dir", str(tmp_path),
    )  # fmt: skip
    assert submitted.returncode == 3, submitted.stderr
    return submitted


def test_submit_wait_failure_exits_with_the_task_status(aws_server, tmp_path):
    result = submit_failing(aws_server, tmp_path)
    assert result.stdout == "" and "calls: " not in result.stderr  # --wait shows no progress
    assert '"stderr_tail": "something went wrong\\n"' in result.stderr
    assert "\nminiwdl-serverless: RunFailed: " in result.stderr
    assert "\n    something went wrong\n" in result.stderr


def test_status_logs_and_list(aws_server, tmp_path):
    wdl = write_workflow(tmp_path)
    started = cli(
        aws_server,
        "submit",
        str(wdl),
        "who=you",
        "n=1",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path),
        "--name",
        "my run",
    )
    assert started.returncode == 0, started.stderr
    run = started.stdout.strip()
    assert run.startswith("my_run-") and "\n" not in run

    arn = next(a for a in executions(aws_server) if a.endswith(":" + run))
    wait_until(
        lambda: aws_server.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING",
        message="the run",
    )
    report = json.loads(cli(aws_server, "status", run, "--json", "--stack", STACK).stdout)
    assert report["status"] == "SUCCEEDED" and report["workflow"] == "hello"
    (call,) = report["calls"]
    assert (
        call["call"] == "call-greet-0" and call["status"] == "succeeded" and call["attempts"] == 1
    )
    assert call["batch_job_id"] and call["log_stream"] and call["duration_seconds"] is not None
    # the table, found through the state machine's stack tag this time
    table = cli(aws_server, "status", run, "--state-machine", aws_server.state_machine_arn)
    assert table.returncode == 0, table.stderr
    assert f"run {run}: SUCCEEDED" in table.stdout
    assert "CALL" in table.stdout and "call-greet-0" in table.stdout and "succeeded" in table.stdout

    workflow_log = cli(aws_server, "logs", run, "--stack", STACK)
    assert workflow_log.returncode == 0 and "workflow finished" in workflow_log.stdout
    followed = cli(
        aws_server, "logs", run, "--follow", "--stack", STACK
    )  # the run has ended: prints, returns
    assert followed.returncode == 0 and followed.stdout == workflow_log.stdout
    stderr = cli(aws_server, "logs", run, "greet-0", "--stack", STACK)
    assert stderr.returncode == 0, stderr.stderr
    assert stderr.stdout == "greeting 0\n"
    stdout = cli(aws_server, "logs", run, "call-greet-0", "--stdout", "--stack", STACK)
    assert stdout.stdout == "hello you 0\n"
    cloudwatch = cli(aws_server, "logs", run, "greet-0", "--cloudwatch", "--stack", STACK)
    assert cloudwatch.returncode == 0, cloudwatch.stderr
    assert "greeting 0" in cloudwatch.stdout
    missing = cli(aws_server, "logs", run, "nope", "--stack", STACK)
    assert (
        missing.returncode == 2
        and "no call 'nope'" in missing.stderr
        and "call-greet-0" in missing.stderr
    )

    listed = cli(aws_server, "list", "--stack", STACK, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"run_id": run, "status": "SUCCEEDED"}.items() <= next(
        r for r in json.loads(listed.stdout) if r["run_id"] == run
    ).items()
    plain = cli(aws_server, "list", "--stack", STACK, "-n", "100")
    assert plain.stdout.startswith("RUN") and run in plain.stdout


def _running_call(aws, run: str) -> bool:
    return any(j.started_at for j in aws.store.query_jobs(run) if j.batch_job_id)


def test_cancel_stops_the_execution_and_its_batch_jobs(aws_server, tmp_path):
    (tmp_path / "slow.wdl").write_text(SLOW)
    started = cli(
        aws_server,
        "submit",
        str(tmp_path / "slow.wdl"),
        "--task",
        "slow",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path),
    )
    assert started.returncode == 0, started.stderr
    run = started.stdout.strip()
    wait_until(lambda: _running_call(aws_server, run), message="the call to run")
    follower = subprocess.Popen(  # streams the call's stderr until the run ends
        [CLI, "logs", run, "slow", "--follow", "--stack", STACK],
        env=environment(aws_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == "started\n"
    cancelled = cli(aws_server, "cancel", run, "--stack", STACK)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled run {run} (1 Batch jobs terminated)" in cancelled.stdout
    arn = next(a for a in executions(aws_server) if a.endswith(":" + run))
    assert aws_server.sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    (job,) = [j for j in aws_server.store.query_jobs(run) if j.batch_job_id]
    batch = boto3.client("batch")
    wait_until(
        lambda: batch.describe_jobs(jobs=[job.batch_job_id])["jobs"][0]["status"] == "FAILED",
        message="termination",
    )
    wait_until(
        lambda: aws_server.store.get_run(run).status == "failed", message="the cancel function"
    )  # via the execution event
    assert follower.wait(timeout=30) == 0  # the run ended, so did the follower
    again = cli(aws_server, "cancel", run, "--stack", STACK)
    assert again.returncode == 0 and "already ended: ABORTED" in again.stderr


def test_ctrl_c_during_follow_leaves_the_run_running(aws_server, tmp_path):
    (tmp_path / "slow.wdl").write_text(SLOW)
    process = subprocess.Popen(
        [
            CLI,
            "submit",
            str(tmp_path / "slow.wdl"),
            "--task",
            "slow",
            "--follow",
            "--stack",
            STACK,
            "--dir",
            str(tmp_path),
        ],
        env=environment(aws_server),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert process.stderr is not None
    for line in process.stderr:  # until the call is running
        lines.append(line)
        if "1 running" in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    stderr = "".join(lines) + rest
    assert process.returncode == 130, stderr
    run = next(line.split()[-1] for line in lines if line.startswith("started run "))
    assert f"run {run} keeps running" in stderr and f"miniwdl-serverless cancel {run}" in stderr
    assert (
        json.loads(cli(aws_server, "status", run, "--json", "--stack", STACK).stdout)["status"]
        == "RUNNING"
    )
    assert cli(aws_server, "cancel", run, "--stack", STACK).returncode == 0


@pytest.mark.parametrize(
    "args, extra_env, message",
    [
        (["--stack", "no-such-stack"], {}, "no CloudFormation stack named 'no-such-stack'"),
        ([], {}, "which stack? give --stack NAME or --state-machine ARN"),
        (
            ["--state-machine", "arn:aws:states:us-east-1:123456789012:stateMachine:nope"],
            {},
            "no state machine",
        ),
        (
            ["--stack", STACK],
            {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
            "no AWS credentials found",
        ),
        (["--stack", STACK], {"AWS_DEFAULT_REGION": ""}, "no AWS region configured"),
        (
            ["--stack", STACK, "--s3upload", "https://bucket/x"],
            {},
            "--s3upload must be an s3://bucket/folder URI",
        ),
        (
            ["--stack", STACK, "--delete-after", "success"],
            {},
            "--delete-after needs an upload folder",
        ),
        (
            ["--stack", STACK, "--task-queue", "elsewhere"],
            {},
            "--task-queue elsewhere is not one of the stack's queues",
        ),
        (
            ["--stack", STACK, "--fsap", "fsap-99999999999999999"],
            {},
            "this stack's runs use access point fsap-0123456789abcdef0",
        ),
        (["--stack", STACK, "--dir", "runs"], {}, "--dir must be an absolute path"),
        (
            ["--stack", STACK, "--runtime-defaults", "[1]"],
            {},
            "--runtime-defaults must be a JSON object",
        ),
        (["--stack", STACK, "--timeout", "soon"], {}, "--timeout wants a positive number"),
    ],
)
def test_bad_submissions_fail_fast_with_one_line(aws_server, tmp_path, args, extra_env, message):
    (tmp_path / "ok.wdl").write_text("version 1.0\ntask t { command <<< true >>> }\n")
    before = executions(aws_server)
    env = environment(aws_server, **extra_env)
    for key in [k for k, v in extra_env.items() if not v]:
        del env[key]
    result = cli(aws_server, "submit", str(tmp_path / "ok.wdl"), "--task", "t", *args, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert executions(aws_server) == before  # nothing started


@pytest.mark.parametrize(
    "source, args, message",
    [
        (None, [], "cannot read workflow"),
        ("version 1.0\nworkflow w {\n  call t { input: x = 1 \n}\n", [], ":4:1:"),
        ('version 1.0\nworkflow w { Int x = "a" + 1.5 * [] }\n', [], ":2:"),
        ("version 1.0\nworkflow w { input { Int n } }\n", [], "missing required inputs for w: n"),
        ("version 1.0\nworkflow w { input { Int n } }\n", ["n=abc"], "n"),
    ],
)
def test_bad_workflows_fail_on_the_laptop(aws_server, tmp_path, source, args, message):
    if source is not None:
        (tmp_path / "w.wdl").write_text(source)
    before = executions(aws_server)
    result = cli(aws_server, "submit", str(tmp_path / "w.wdl"), *args, "--stack", STACK)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert executions(aws_server) == before


def test_delete_after_reads_the_folder_from_the_environment(aws_server, tmp_path):
    """miniwdl-aws checked --delete-after before reading MINIWDL__AWS__S3_UPLOAD_FOLDER; we
    don't."""
    boto3.client("s3").create_bucket(Bucket="env-folder")
    (tmp_path / "ok.wdl").write_text(
        "version 1.0\ntask t { command <<< echo hi >>> "
        "output { String s = read_string(stdout()) } }\n"
    )
    env = environment(
        aws_server,
        MINIWDL__AWS__S3_UPLOAD_FOLDER="s3://env-folder/x/",
        MINIWDL__AWS__DELETE_AFTER_S3_UPLOAD="success",
        MINIWDL__AWS__FSAP="fsap-0000000000000000a",
        MINIWDL__TASK_RUNTIME__DEFAULTS='{"maxRetries": 0}',
    )
    result = cli(
        aws_server,
        "submit",
        str(tmp_path / "ok.wdl"),
        "--task",
        "t",
        "--wait",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "warning: ignoring MINIWDL__AWS__FSAP=fsap-0000000000000000a; "
        "the stack uses fsap-0123456789abcdef0" in result.stderr
    )
    sent = json.loads(latest_execution(aws_server)["input"])
    assert sent["config"] == {
        "TASK_RUNTIME__DEFAULTS": '{"maxRetries": 0}'
    }  # MINIWDL__* settings, not launch options
    assert sent["s3upload"] == "s3://env-folder/x/" and sent["delete_after"] == "success"
    report = json.loads(result.stdout)
    assert report["outputs"] == {"t.s": "hi"}
    assert not os.path.exists(report["dir"])  # deleted after the upload
    assert boto3.client("s3").get_object(Bucket="env-folder", Key="x/outputs.json")


def test_s3_workflow_uri_passes_through(aws_server, tmp_path):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=aws_server.bucket, Key="src/hello.wdl", Body=GOOD.encode())
    s3.put_object(Bucket=aws_server.bucket, Key="src/lib/greet.wdl", Body=LIB.encode())
    uri = f"s3://{aws_server.bucket}/src/hello.wdl"
    result = cli(
        aws_server,
        "submit",
        uri,
        "who=s3",
        "n=1",
        "--wait",
        "--stack",
        STACK,
        "--dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"]["hello.lines"] == ["hello s3 0"]
    assert json.loads(latest_execution(aws_server)["input"])["workflow"] == uri  # not re-staged


@pytest.mark.parametrize("upload", [False, True], ids=["from-efs", "from-s3"])
def test_defect_15_submit_wait_prints_outputs_larger_than_a_payload(aws_server, tmp_path, upload):
    (tmp_path / "big.wdl").write_text(BIG)
    args = ["submit", str(tmp_path / "big.wdl"), "--task", "big", "--wait", "--stack", STACK]
    args += ["--dir", str(tmp_path / "runs")]
    if upload:
        boto3.client("s3").create_bucket(Bucket="big-results")
        args += ["--s3upload", "s3://big-results/big/"]
    result = cli(aws_server, *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"] == {"big.s": "x" * 3000000}
    execution = latest_execution(aws_server)
    assert len(execution["output"]) < 4096  # by reference: outputs_json


def test_submit_resume_reruns_only_the_failed_call(aws_server, tmp_path):
    (tmp_path / "pipe.wdl").write_text(RESUMABLE)  # scatter of 3, then check
    flag = tmp_path / "flag"
    flag.write_text("")
    args = ["--stack", STACK, "--dir", str(tmp_path / "runs"), "--cfg", "CALL_CACHE__PUT=true"]
    first = cli(aws_server, "submit", str(tmp_path / "pipe.wdl"), f"flag={flag}", "--wait", *args)
    assert first.returncode == 4, first.stderr
    failed = latest_execution(aws_server)["name"]
    stamps = [
        j.outputs for j in aws_server.store.query_jobs(failed) if j.job_id.startswith("call-stamp")
    ]
    flag.unlink()
    resumed = cli(aws_server, "submit", "--resume", failed, "--wait", "--stack", STACK)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {failed} as run " in resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["outputs"]["pipe.checked"] == "ok"
    rerun = latest_execution(aws_server)["name"]
    jobs = {j.job_id: j for j in aws_server.store.query_jobs(rerun)}
    assert all(jobs[f"call-stamp-{i}"].cached_from for i in range(3))
    assert jobs["call-check"].batch_job_id and not jobs["call-check"].cached_from
    assert sorted(str(s) for s in stamps) == sorted(
        str(jobs[f"call-stamp-{i}"].outputs) for i in range(3)
    )
    refused = cli(aws_server, "submit", "--resume", "no-such-run", "--stack", STACK)
    assert refused.returncode == 2 and "no run no-such-run" in refused.stderr
