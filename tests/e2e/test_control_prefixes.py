"""Issue 9, defect 6, on the embedded AWS (the real state machine and handlers, wired from the
environment the template gives them): uploads under the stack bucket's control prefixes are
refused before any job."""

from __future__ import annotations

import json

import boto3
import pytest

from miniwdl_serverless.local.resources import LOCAL_BUCKET

TASK = "version 1.0\ntask t { command <<< echo hi >>> output { String s = read_string(stdout()) } }"


@pytest.mark.parametrize("folder", ["submit/", "errors/", "wdl/", "inputs/"])
def test_defect_06_start_refuses_uploads_under_control_prefixes(embedded, tmp_path, folder):
    s3upload = f"s3://{LOCAL_BUCKET}/{folder}"
    execution_input = {
        "workflow_source": TASK,
        "task": "t",
        "dir": str(tmp_path),
        "s3upload": s3upload,
    }
    description = embedded.wait(embedded.start(execution_input))
    assert description["status"] == "FAILED"
    assert description["error"] == "InvalidSubmission"
    cause = json.loads(description["cause"])
    assert f"may not upload under s3://{LOCAL_BUCKET}/{folder}" in cause["message"]
    run_id = embedded.last_execution_arn.rsplit(":", 1)[-1]
    assert list(embedded.store.query_jobs(run_id)) == []  # nothing was planned or submitted


@pytest.mark.xdist_group("server")
@pytest.mark.parametrize(
    "args",
    [
        ["--s3upload", f"s3://{LOCAL_BUCKET}/submit/"],
        ["--s3upload", f"s3://{LOCAL_BUCKET}/wdl"],
        ["--s3upload", f"s3://{LOCAL_BUCKET}"],  # with --dir D/.: into <basename of D>/
    ],
)
def test_defect_06_submit_refuses_s3upload_under_control_prefixes(aws_server, tmp_path, args):
    from tests.e2e.test_submit_cli import STACK, cli, executions

    (tmp_path / "ok.wdl").write_text(TASK + "\n")
    run_dir = tmp_path / "errors"
    run_dir.mkdir()
    s3 = boto3.client("s3")
    staged_before = s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="wdl/").get("KeyCount", 0)
    before = executions(aws_server)
    result = cli(
        aws_server,
        "submit",
        str(tmp_path / "ok.wdl"),
        "--task",
        "t",
        "--stack",
        STACK,
        "--dir",
        f"{run_dir}/.",
        *args,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("miniwdl-serverless: error: --s3upload: may not upload under ")
    assert "the stack's control prefix" in line
    assert executions(aws_server) == before  # nothing started
    assert s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="wdl/").get("KeyCount", 0) == (
        staged_before
    )  # nothing staged either


@pytest.mark.xdist_group("server")
def test_defect_06_submit_replaces_a_staged_zip_that_is_not_what_its_name_says(
    aws_server, tmp_path
):
    import hashlib
    import logging

    import WDL
    import WDL.Zip

    from tests.e2e.test_submit_cli import STACK, cli

    (tmp_path / "ok.wdl").write_text(TASK + "\n")
    archive = tmp_path / "ok.wdl.zip"
    WDL.Zip.build(WDL.load(str(tmp_path / "ok.wdl")), str(archive), logging.getLogger("test"))
    data = archive.read_bytes()
    key = f"wdl/{hashlib.sha256(data).hexdigest()}.zip"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=LOCAL_BUCKET, Key=key, Body=b"not the archive")  # planted under its name
    result = cli(
        aws_server, "submit", str(archive), "--task", "t", "--wait", "--stack", STACK,
        "--dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"] == {"t.s": "hi"}
    assert s3.get_object(Bucket=LOCAL_BUCKET, Key=key)["Body"].read() == data  # staged again
