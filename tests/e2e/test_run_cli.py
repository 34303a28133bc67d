"""`miniwdl-serverless run` end to end on the embedded AWS: outputs like `miniwdl run`,
failures with miniwdl's error JSON, bad input rejected before any job, retries, S3 upload."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import boto3
import pytest

from miniwdl_serverless.core.records import FAILED, Job

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "viral_pipeline"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def run_items(embedded) -> list[Job]:
    return list(embedded.store.query_jobs(embedded.last_execution_arn.rsplit(":", 1)[-1]))


def test_demo_pipeline(run_cli, tmp_path):
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work)
    code, stdout, stderr = run_cli(
        ["pipeline.wdl", "-i", "inputs.json", "--dir", str(tmp_path / "runs")], cwd=str(work)
    )
    assert code == 0, stderr
    result = json.loads(stdout)
    outputs = result["outputs"]
    assert outputs["viral_pipeline.qc_verdicts"] == ["PASS", "PASS", "FAIL_LOW_COVERAGE"]
    assert outputs["viral_pipeline.total_reads"] == 60
    assert outputs["viral_pipeline.samples_with_consensus"] == 2
    summary = Path(outputs["viral_pipeline.summary_tsv"])
    assert summary.is_file() and "sampleB" in summary.read_text()
    run_dir = Path(result["dir"])
    assert run_dir.name.endswith("_viral_pipeline") and run_dir.parent == tmp_path / "runs"
    for name in ("inputs.json", "outputs.json", "workflow.log", "wdl/bundle.json"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "outputs.json").read_text()) == outputs
    # sub-workflow calls run as child graphs under the parent run directory
    assert list(run_dir.glob("call-sample_qc-0*/call-read_stats/stdout.txt"))


def test_task_failure_fails_the_run_with_miniwdl_error(run_cli, embedded, tmp_path):
    wdl = write(
        tmp_path / "fail.wdl",
        """
version 1.0
workflow w {
  scatter (i in [1, 2, 3]) { call t { input: i = i } }
}
task t {
  input { Int i }
  command <<< echo "boom ~{i}" >&2; if [ ~{i} -eq 2 ]; then exit 42; fi; sleep 30 >>>
}
""",
    )
    code, stdout, stderr = run_cli([wdl, "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 42  # like miniwdl: the failed task's exit status
    assert stdout == ""
    error = json.loads(stderr[: stderr.rindex("}") + 1])
    assert error["error"] == "RunFailed"
    assert error["cause"]["error"] == "CommandFailed" and error["cause"]["exit_status"] == 42
    assert Path(error["cause"]["stderr_file"]).read_text() == "boom 2\n"
    # under the failure line, as miniwdl logs it: the task and its line, its stderr's tail
    details = stderr[stderr.rindex("miniwdl-serverless: RunFailed") :].splitlines()[1:]
    assert details[:3] == [
        "  task t (fail.wdl Ln 6 Col 1) failed with exit status 42",
        f"  last lines of its stderr ({error['cause']['stderr_file']}):",
        "    boom 2",
    ]
    assert details[3] == f"  workflow log: {error['dir']}/workflow.log"
    assert json.loads((Path(error["dir"]) / "error.json").read_text())["cause"]["exit_status"] == 42
    # fail fast: the sleeping siblings were terminated, nothing is left running
    embedded.drain()
    statuses = {j.job_id: j.status for j in run_items(embedded)}
    assert statuses["call-t-1-2"] == FAILED  # miniwdl's ids: index, then the value tag
    batch = boto3.client("batch")
    ids = [j.batch_job_id for j in run_items(embedded) if j.batch_job_id]
    described = batch.describe_jobs(jobs=ids)["jobs"]
    assert all(d["status"] in ("SUCCEEDED", "FAILED") for d in described)


def test_retries_run_in_work2_work3_as_miniwdls(run_cli, tmp_path):
    wdl = write(
        tmp_path / "retry.wdl",
        """
version 1.1
task flaky {
  command <<<
    echo "attempt" >> ../attempts.log
    echo "try $(wc -l < ../attempts.log)" > out.txt
    touch leftover
    [ "$(wc -l < ../attempts.log)" -ge 3 ] || exit 1
  >>>
  output { String msg = read_string("out.txt")  Array[File] leftovers = glob("leftover*") }
  runtime { maxRetries: 3 }
}
""",
    )
    code, stdout, stderr = run_cli(
        [wdl, "--task", "flaky", "--dir", str(tmp_path)], cwd=str(tmp_path)
    )
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["outputs"]["flaky.msg"] == "try 3"
    call = Path(result["dir"]) / "call-flaky"  # miniwdl's names: each try where it ran
    assert all((call / work / "leftover").exists() for work in ("work", "work2", "work3"))
    assert [(call / work / "out.txt").read_text() for work in ("work", "work2", "work3")] == [
        "try 1\n",
        "try 2\n",
        "try 3\n",
    ]
    assert not list(call.glob("attempt-*")) and not (call / "work4").exists()
    (leftover,) = result["outputs"]["flaky.leftovers"]  # the third try's, from work3/
    assert os.path.realpath(leftover) == str(call / "work3" / "leftover")
    for name in ("stdout", "stderr"):
        assert all((call / f"{name}{n}.txt").is_file() for n in ("", "2", "3"))


def test_task_attempt_is_honoured(run_cli, tmp_path):
    wdl = write(
        tmp_path / "attempt.wdl",
        """
version 1.2
task t {
  command <<< echo ~{task.attempt}; exit ~{if task.attempt < 1 then 1 else 0} >>>
  output { Int seen = read_int(stdout()) }
  requirements { max_retries: 2 }
}
""",
    )
    code, stdout, stderr = run_cli([wdl, "--task", "t", "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"]["t.seen"] == 1


@pytest.mark.parametrize(
    "source, args, message",
    [
        ("version 1.0\nworkflow w {\n  call t { input: x = 1 \n}\n", [], ":4:1: "),
        ('version 1.0\nworkflow w { Int x = "a" + 1.5 * [] }\n', [], ":2:"),
        ("version 1.0\nworkflow w { input { Int n } }\n", [], "missing required inputs for w: n"),
        ("version 1.0\nworkflow w { input { Int n } }\n", ["m=1"], "No such input to w: m"),
        (
            "version 1.0\nworkflow w { input { File f } }\n",
            ["f=/nonexistent/reads.bam"],
            "/nonexistent/reads.bam",
        ),
        ("version 1.0\nworkflow w { input { Int n } }\n", ["n=abc"], "n"),
    ],
)
def test_bad_input_fails_before_any_job(run_cli, tmp_path, source, args, message):
    wdl = write(tmp_path / "bad.wdl", source)
    code, stdout, stderr = run_cli([wdl, *args, "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 2
    assert stdout == ""
    assert message in stderr


def test_a_wdl_error_shows_its_source_line_with_a_caret(run_cli, tmp_path):
    wdl = write(tmp_path / "typo.wdl", 'version 1.0\nworkflow w {\n  Int x = "a" + 1.5 * []\n}\n')
    code, _, stderr = run_cli([wdl, "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 2
    message, line, caret = stderr.strip().splitlines()[-3:]
    assert message.startswith("miniwdl-serverless: ") and f"{wdl}:3:" in message
    assert line == '      Int x = "a" + 1.5 * []'
    assert caret.strip() and set(caret.strip()) == {"^"}
    assert line[caret.index("^") :].startswith(("1.5", '"a"'))


def _execution_fails(embedded, execution_input) -> dict:
    arn = embedded.start(execution_input)
    description = embedded.wait(arn)
    assert description["status"] == "FAILED"
    assert not run_items(embedded)  # nothing was planned, nothing submitted
    return description


@pytest.mark.parametrize(
    "execution_input, error, message",
    [
        ({"workflow": "/nonexistent/wf.wdl"}, "WorkflowNotFound", "/nonexistent/wf.wdl"),
        ({"workflow": "https://127.0.0.1:9/wf.wdl"}, "WorkflowNotFound", "127.0.0.1:9"),
        ({"workflow_source": "version 1.0\nworkflow w {\n call nope\n}"}, "NoSuchTask", ":3:"),
        (
            {
                "workflow_source": "version 1.0\nworkflow w { input { Int n } }",
                "inputs": {"w.n": "x"},
            },
            "InputError",
            "w.n",
        ),
        (
            {"workflow_source": "version 1.0\nworkflow w { input { Int n } }"},
            "InputError",
            "missing required",
        ),
        (
            {
                "workflow_source": "version 1.0\nworkflow w { input { Int n } }",
                "inputs": {"w.n": 1, "w.zz": 2},
            },
            "InputError",
            "zz",
        ),
        ({"workflow": "relative.wdl"}, "InvalidSubmission", "absolute path"),
        (
            {
                "workflow_source": "version 1.0\nworkflow w { input { File f } }",
                "inputs": {"w.f": "s3://b/k"},
            },
            "DownloadError",  # probed at start: no such bucket
            "s3://b/k (",
        ),
        (
            {"workflow": "/x.wdl", "delete_after": "always"},
            "InvalidSubmission",
            "requires s3upload",
        ),
        (
            {"workflow": "/x.wdl", "s3upload": "x"},
            "InvalidSubmission",
            's3upload: must be an s3://bucket/prefix URI, got \\"x\\"',
        ),
        (
            {"workflow": "/x.wdl", "input": {}},
            "InvalidSubmission",
            "unknown field(s) in execution input: input",
        ),
    ],
)
def test_start_execution_rejects_bad_submissions(embedded, execution_input, error, message):
    description = _execution_fails(embedded, execution_input)
    assert description["error"] == error
    assert message in description["cause"]


def test_s3upload_and_delete_after(run_cli, embedded, tmp_path):
    wdl = write(
        tmp_path / "up.wdl",
        """
version 1.0
workflow up {
  call t
  output { File report = t.report  Int n = t.n }
}
task t { command <<< echo hello > report.txt >>> output { File report = "report.txt"  Int n = 3 } }
""",
    )
    code, stdout, stderr = run_cli(
        [
            wdl,
            "--dir",
            str(tmp_path),
            "--s3upload",
            "s3://uploads/results",
            "--delete-after",
            "success",
        ],
        cwd=str(tmp_path),
    )
    assert code == 0, stderr
    result = json.loads(stdout)
    folder = f"s3://uploads/results/{os.path.basename(result['dir'])}/"
    assert result["s3upload"] == folder
    assert result["outputs"] == {"up.report": folder + "report/report.txt", "up.n": 3}
    s3 = boto3.client("s3")
    prefix = folder[len("s3://uploads/") :]
    body = s3.get_object(Bucket="uploads", Key=prefix + "report/report.txt")["Body"].read()
    assert body == b"hello\n"
    uploaded = json.loads(
        s3.get_object(Bucket="uploads", Key=prefix + "outputs.json")["Body"].read()
    )
    assert uploaded == result["outputs"]
    assert not os.path.exists(result["dir"])  # deleted after the successful upload


def test_finish_continues_in_further_invocations_until_every_file_is_uploaded(
    run_cli, embedded, tmp_path, monkeypatch
):
    """The real state machine: Finish returns "continue" when its time runs low (here at
    once: the reserve is the whole invocation, so each invocation uploads one file) and
    MoreToUpload invokes it again, until every file is uploaded and the directory deleted."""
    monkeypatch.setenv("FINISH_RESERVE_SECONDS", "900")  # the embedded Lambda's whole timeout
    wdl = write(
        tmp_path / "three.wdl",
        """
version 1.0
task three {
  command <<< echo a > a.txt; echo b > b.txt; echo c > c.txt >>>
  output { Array[File] files = ["a.txt", "b.txt", "c.txt"] }
}
""",
    )
    code, stdout, stderr = run_cli(
        [wdl, "--task", "three", "--dir", str(tmp_path), "--s3upload", "s3://continued/x/"]
        + ["--delete-after", "success"],
        cwd=str(tmp_path),
    )
    assert code == 0, stderr
    result = json.loads(stdout)
    folder = "s3://continued/x/"
    assert result["outputs"] == {
        "three.files": [f"{folder}files/{i}/{n}.txt" for i, n in enumerate("abc")]
    }
    s3 = boto3.client("s3")
    for i, name in enumerate("abc"):
        key = f"x/files/{i}/{name}.txt"
        assert s3.get_object(Bucket="continued", Key=key)["Body"].read() == f"{name}\n".encode()
    assert not os.path.exists(result["dir"])
    history = boto3.client("stepfunctions").get_execution_history(
        executionArn=embedded.last_execution_arn, maxResults=1000
    )["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]
    assert entered.count("Finish") == 3 and entered.count("MoreToUpload") == 3
    log = s3.get_object(Bucket="continued", Key="x/workflow.log")["Body"].read().decode()
    assert "continuing in invocation 2" in log and "in 3 invocations" in log


def test_failed_run_uploads_error_and_stderr(run_cli, tmp_path):
    wdl = write(
        tmp_path / "f.wdl", "version 1.0\ntask t { command <<< echo bad >&2; exit 3 >>> }\n"
    )
    code, _, stderr = run_cli(
        [wdl, "--task", "t", "--dir", str(tmp_path), "--s3upload", "s3://failures/x/"],
        cwd=str(tmp_path),
    )
    assert code == 3
    s3 = boto3.client("s3")
    error = json.loads(s3.get_object(Bucket="failures", Key="x/error.json")["Body"].read())
    assert error["cause"]["exit_status"] == 3
    assert error["cause"]["stderr_s3file"] == "s3://failures/x/CommandFailed_stderr.txt"
    assert (
        s3.get_object(Bucket="failures", Key="x/CommandFailed_stderr.txt")["Body"].read()
        == b"bad\n"
    )
    assert error["cause"]["stdout_s3file"] == "s3://failures/x/CommandFailed_stdout.txt"
    log = s3.get_object(Bucket="failures", Key="x/workflow.log")["Body"].read().decode()
    assert "uploaded 2 files" in log  # the failed task's stderr and stdout


def test_run_timeout_stops_the_run(run_cli, embedded, tmp_path):
    wdl = write(tmp_path / "slow.wdl", "version 1.0\ntask t { command <<< sleep 60 >>> }\n")
    code, _, stderr = run_cli(
        [wdl, "--task", "t", "--dir", str(tmp_path), "--timeout", "2"], cwd=str(tmp_path)
    )
    assert code == 2
    assert "RunTimeout" in stderr
    embedded.drain()
    job = next(j for j in run_items(embedded) if j.job_id == "call-t")
    assert (
        boto3.client("batch").describe_jobs(jobs=[job.batch_job_id])["jobs"][0]["status"]
        == "FAILED"
    )


def test_copy_input_files(run_cli, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("original\n")
    wdl = write(
        tmp_path / "copy.wdl",
        """
version 1.0
task t {
  input { File f }
  command <<< test ! -L ~{f} && echo copied > out.txt >>>
  output { String how = read_string("out.txt") }
}
""",
    )
    code, stdout, stderr = run_cli(
        [wdl, "--task", "t", f"f={data}", "--copy-input-files", "--dir", str(tmp_path)],
        cwd=str(tmp_path),
    )
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"]["t.how"] == "copied"


def test_task_cannot_read_controller_files_through_its_logs(run_cli, tmp_path):
    wdl = write(
        tmp_path / "sneaky.wdl",
        """
version 1.0
task sneaky {
  command <<< rm -f ../stdout.txt; ln -s /proc/self/environ ../stdout.txt >>>
  output { String env = read_string(stdout()) }
}
""",
    )
    code, stdout, stderr = run_cli(
        [wdl, "--task", "sneaky", "--dir", str(tmp_path)], cwd=str(tmp_path)
    )
    assert code != 0 and stdout == ""
    assert "replaced its stdout.txt" in stderr


def test_only_run_files_are_uploaded(run_cli, tmp_path):
    wdl = write(
        tmp_path / "paths.wdl",
        """
version 1.0
task paths {
  command <<< echo ok > mine.txt >>>
  output { String other = "/etc/hostname"  File mine = "mine.txt" }
}
""",
    )
    code, stdout, stderr = run_cli(
        [wdl, "--task", "paths", "--dir", str(tmp_path), "--s3upload", "s3://only-run/x/"],
        cwd=str(tmp_path),
    )
    assert code == 0, stderr
    outputs = json.loads(stdout)["outputs"]
    assert outputs["paths.other"] == "/etc/hostname"
    assert outputs["paths.mine"] == "s3://only-run/x/mine/mine.txt"


def test_defect_15_a_run_with_outputs_larger_than_a_payload_succeeds(run_cli, embedded, tmp_path):
    wdl = write(
        tmp_path / "big.wdl",
        """
version 1.0
workflow big {
  call t
  output { String s = t.s }
}
task t {
  command <<< head -c 5242880 /dev/zero | tr '\\0' 'x' > big.txt >>>
  output { String s = read_string("big.txt") }
}
""",
    )
    code, stdout, stderr = run_cli([wdl, "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"big.s": "x" * 5242880}  # read from outputs.json
    description = embedded.sfn.describe_execution(executionArn=embedded.last_execution_arn)
    assert len(description["output"].encode()) < 4096  # the execution's output: a reference
    assert json.loads(description["output"])["outputs_json"].endswith("/outputs.json")


def test_a_throttled_submission_is_retried_by_the_work_tables_stream(
    run_cli, embedded, tmp_path, monkeypatch
):
    from miniwdl_serverless.adapters.batch import BatchAdapter
    from miniwdl_serverless.controller.ports import Throttled

    real_submit = BatchAdapter.submit
    calls: list[str] = []

    def throttled_once(self, submission):
        calls.append(submission.name)
        if len(calls) == 1:  # the submitter reports the item failed; the stream delivers it again
            raise Throttled("SubmitJob: TooManyRequestsException (retries ran out)")
        return real_submit(self, submission)

    monkeypatch.setattr(BatchAdapter, "submit", throttled_once)
    wdl = write(
        tmp_path / "two.wdl",
        """
version 1.0
workflow two {
  scatter (i in [1, 2]) { call t { input: i = i } }
  output { Array[Int] out = t.out }
}
task t { input { Int i } command <<< true >>> output { Int out = i * 10 } }
""",
    )
    code, stdout, stderr = run_cli([wdl, "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"two.out": [10, 20]}
    assert len(calls) == 3  # the throttled submission was made again, once


def test_progress_on_a_terminal_is_a_bar_redrawn_in_place_then_a_final_line(tmp_path):
    """The real CLI with its stderr on a pseudo-terminal, as a person sees it."""
    import os
    import pty
    import subprocess
    import sys

    wdl = write(
        tmp_path / "fan.wdl",
        """
version 1.0
workflow fan {
  scatter (i in range(3)) { call t { input: i = i } }
}
task t { input { Int i } command <<< sleep 1 >>> }
""",
    )
    leader, follower = pty.openpty()
    cli = Path(sys.executable).parent / "miniwdl-serverless"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [str(cli), "run", wdl, "--dir", str(tmp_path), "--no-state"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        cwd=tmp_path,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0, shown.decode()
    assert json.loads(out)["outputs"] == {}
    text = shown.decode()
    # a bar redrawn in place ...
    assert "\r[" in text and "] calls: " in text and " of 3 done" in text
    # ... cleared for the final line, which says how the run ended
    assert (
        text.rstrip()
        .splitlines()[-1]
        .endswith("calls: 3 of 3 done, 0 running, 0 queued, 0 failed: run succeeded")
    )
