"""Issue 10: `miniwdl-serverless submit` stages File/Directory inputs that are on the
submitter's machine to the stack's bucket, content-addressed, uploading each once. The real CLI
in a subprocess (its S3 calls counted by a botocore hook in that process) against the embedded
AWS served over HTTP, as in test_submit_cli.py.

The session's stack runs its functions with the whole machine as "EFS" (root /), where no path
is local; these tests use a second stack, as deployed: its functions mount EFS at /mnt/efs (the
logs function's environment says so, which is where the CLI reads it). Its state machine only
records the execution input, since localizing the staged inputs is the controller's part."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import boto3
import pytest

from miniwdl_serverless.core.input_staging import directory_digest
from miniwdl_serverless.local.resources import ACCOUNT, LOCAL_ACCESS_POINT
from tests.e2e.test_submit_cli import environment

pytestmark = pytest.mark.xdist_group("server")

EFS_STACK = "miniwdl-serverless-efs-mounted"
WORKFLOW = """
version 1.2
workflow align {
  input { File reads  File big  Directory refs  Array[File] more }
}
"""
# The CLI, with every S3 request it makes (operation, key) written to $S3_CALLS on exit.
COUNTING_CLI = """
import atexit, json, os, sys
import boto3
calls = []
boto3.setup_default_session()
boto3.DEFAULT_SESSION.events.register(
    "before-parameter-build.s3",
    lambda params, model, **_: calls.append([model.name, params.get("Key")]),
)
atexit.register(lambda: open(os.environ["S3_CALLS"], "w").write(json.dumps(calls)))
from miniwdl_serverless.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def efs_stack(aws_server) -> dict[str, str]:
    """A CloudFormation stack like the session's, whose functions mount EFS at /mnt/efs and
    whose state machine (a Pass state) starts nothing; returns its outputs."""
    awslambda, sfn = boto3.client("lambda"), boto3.client("stepfunctions")
    role = f"arn:aws:iam::{ACCOUNT}:role/local"
    awslambda.create_function(
        FunctionName="EfsMountedLogsFunction",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": _stub_zip()},
        Environment={
            "Variables": {"MSLS_EFS_ROOT": "/mnt/efs", "EFS_ACCESS_POINT_ID": LOCAL_ACCESS_POINT}
        },
    )
    definition = {"StartAt": "Record", "States": {"Record": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(
        name="RecordInput", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    outputs = {
        **aws_server.stack_outputs(),
        "StateMachineArn": machine,
        "LogsFunctionName": "EfsMountedLogsFunction",
    }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items() if v},
    }
    with warnings.catch_warnings():  # moto does not model the placeholder; only Outputs matter
        warnings.simplefilter("ignore")
        boto3.client("cloudformation").create_stack(
            StackName=EFS_STACK, TemplateBody=json.dumps(template)
        )
    return outputs


def _stub_zip() -> bytes:
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return archive.getvalue()


def counted_cli(aws, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list]:
    calls = tmp_path / f"s3-calls-{uuid.uuid4().hex}.json"
    result = subprocess.run(
        [sys.executable, "-c", COUNTING_CLI, *args],
        env=environment(aws, S3_CALLS=str(calls)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, json.loads(calls.read_text()) if calls.exists() else []


def uploads(calls: list) -> list[tuple[str, str]]:
    """The object writes among the S3 calls, under inputs/."""
    writes = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
    return [(op, key) for op, key in calls if op in writes and (key or "").startswith("inputs/")]


def executions(machine: str) -> list[dict]:
    sfn = boto3.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
    return [e for page in pages for e in page["executions"]]


def sent_inputs(machine: str, run: str) -> dict:
    sfn = boto3.client("stepfunctions")
    (arn,) = [e["executionArn"] for e in executions(machine) if e["name"] == run]
    return dict(json.loads(sfn.describe_execution(executionArn=arn)["input"]))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_local_inputs_are_staged_once_and_the_run_gets_their_s3_uris(
    aws_server, efs_stack, tmp_path
):
    bucket = efs_stack["BucketName"]
    (tmp_path / "align.wdl").write_text(WORKFLOW)
    data = tmp_path / "data"
    (data / "refs" / "sub").mkdir(parents=True)
    reads = f"@read {uuid.uuid4()}\nACGT\n+\nIIII\n".encode()  # new content: new keys
    big = os.urandom(9 * 1024 * 1024)  # two parts of 8 MiB
    ref, index = f">chr1 {uuid.uuid4()}\nACGT\n".encode(), b"chr1\t4\n"
    (data / "reads.fq").write_bytes(reads)
    (data / "big.bin").write_bytes(big)
    (data / "refs" / "ref.fa").write_bytes(ref)
    (data / "refs" / "sub" / "ref.fa.fai").write_bytes(index)
    args = [
        "submit",
        str(tmp_path / "align.wdl"),
        f"reads={data / 'reads.fq'}",
        "big=data/big.bin",  # relative to the working directory, as miniwdl run takes it
        f"refs={data / 'refs'}",
        "more=/mnt/efs/shared/other.fq",  # on the stack's file system: as it is
        "more=data/reads.fq",  # the same file again: staged once
        "--stack",
        EFS_STACK,
    ]

    first, calls = counted_cli(aws_server, tmp_path, *args)
    assert first.returncode == 0, first.stderr
    listing = directory_digest([("ref.fa", sha256(ref)), ("sub/ref.fa.fai", sha256(index))])
    keys = {
        "reads": f"inputs/{sha256(reads)}/reads.fq",
        "big": f"inputs/{sha256(big)}/big.bin",
        "ref": f"inputs/{listing}/refs/ref.fa",
        "index": f"inputs/{listing}/refs/sub/ref.fa.fai",
    }
    assert sorted(uploads(calls)) == sorted(
        [
            ("PutObject", keys["reads"]),
            ("PutObject", keys["ref"]),
            ("PutObject", keys["index"]),
            ("CreateMultipartUpload", keys["big"]),
            ("UploadPart", keys["big"]),
            ("UploadPart", keys["big"]),
            ("CompleteMultipartUpload", keys["big"]),
        ]
    )
    assert "staged 4 files (9.4 MB), 0 already there" in first.stderr.splitlines()
    sent = sent_inputs(efs_stack["StateMachineArn"], first.stdout.strip())["inputs"]
    assert sent == {
        "align.reads": f"s3://{bucket}/{keys['reads']}",
        "align.big": f"s3://{bucket}/{keys['big']}",
        "align.refs": f"s3://{bucket}/inputs/{listing}/refs/",  # a prefix: ends in '/'
        "align.more": ["/mnt/efs/shared/other.fq", f"s3://{bucket}/{keys['reads']}"],
    }
    s3 = boto3.client("s3")
    for key, content in zip(keys.values(), (reads, big, ref, index), strict=True):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content, key

    second, calls = counted_cli(aws_server, tmp_path, *args)
    assert second.returncode == 0, second.stderr
    assert uploads(calls) == []  # every object already there, with S3's SHA-256 of its content
    assert "staged 0 files, 4 already there" in second.stderr.splitlines()
    assert sent_inputs(efs_stack["StateMachineArn"], second.stdout.strip())["inputs"] == sent
    for key in keys.values():  # the bucket is versioned: one version, one upload
        versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        assert len([v for v in versions if v["Key"] == key]) == 1, key


def _link_out(tmp_path: Path) -> list[str]:
    (tmp_path / "refs").mkdir()
    (tmp_path / "secret.txt").write_text("not the Directory's\n")
    (tmp_path / "refs" / "escape").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "reads.fq").write_text("r\n")
    return ["reads=reads.fq", "big=/mnt/efs/big", "refs=refs", "--empty", "more"]


def _missing(tmp_path: Path) -> list[str]:
    return ["reads=absent.fq", "big=/mnt/efs/big", "refs=/mnt/efs/refs", "--empty", "more"]


def _no_stage(tmp_path: Path) -> list[str]:
    (tmp_path / "reads.fq").write_text("r\n")
    return ["reads=reads.fq", "big=/mnt/efs/big", "refs=/mnt/efs/refs", "--empty", "more",
            "--no-stage"]  # fmt: skip


@pytest.mark.parametrize(
    "make, message",
    [
        (_no_stage, "--no-stage: File {tmp}/reads.fq is on this machine, not on the stack's"),
        (_missing, "File input absent.fq: no such file on this machine"),
        (_link_out, "Directory input refs: escape is a link out of the Directory"),
    ],
    ids=["no-stage", "missing", "link-out"],
)
def test_local_inputs_that_cannot_be_staged_start_nothing(
    aws_server, efs_stack, tmp_path, make, message
):
    (tmp_path / "align.wdl").write_text(WORKFLOW)
    before = executions(efs_stack["StateMachineArn"])
    result, calls = counted_cli(
        aws_server, tmp_path, "submit", "align.wdl", *make(tmp_path), "--stack", EFS_STACK
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("miniwdl-serverless: error: ")
    assert message.format(tmp=tmp_path) in line
    assert uploads(calls) == [] and executions(efs_stack["StateMachineArn"]) == before
