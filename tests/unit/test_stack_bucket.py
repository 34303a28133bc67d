"""Issue 9, defect 6: the stack's bucket holds control state (submit/, errors/, wdl/, and since
issue 10 inputs/). A run may not upload there, and a staged wdl/<sha256>.zip must be what its
name says."""

from __future__ import annotations

import json

import pytest

from miniwdl_serverless.core.records import RUN_FAILED, RUN_RUNNING

from .harness import Harness

STACK_BUCKET = "stack-bucket"
CHAIN = """
version 1.0
workflow chain {
  input { Int x = 3 }
  call double { input: x = x }
  output { Int result = double.y }
}
task double {
  input { Int x }
  command {}
  output { Int y = x * 2 }
}
"""


@pytest.fixture
def harness() -> Harness:
    harness = Harness()
    harness.ports.stack_bucket = STACK_BUCKET
    return harness


# ---- s3upload under a control prefix --------------------------------------------------------


@pytest.mark.parametrize(
    "options, prefix",
    [
        ({"s3upload": "s3://stack-bucket/submit/"}, "submit/"),
        ({"s3upload": "s3://stack-bucket/submit/2026/"}, "submit/"),
        ({"s3upload": "s3://stack-bucket/submit"}, "submit/"),  # into submit/<run name>/
        ({"s3upload": "s3://stack-bucket/results/../submit/"}, "submit/"),
        ({"s3upload": "s3://stack-bucket", "dir": "/efs/runs/submit/."}, "submit/"),
        ({"s3upload": "s3://stack-bucket/errors/"}, "errors/"),
        ({"s3upload": "s3://stack-bucket/wdl/"}, "wdl/"),
        ({"s3upload": "s3://stack-bucket/wdl"}, "wdl/"),
        ({"s3upload": "s3://stack-bucket/inputs/"}, "inputs/"),  # staged inputs (issue 10)
        ({"s3upload": "s3://stack-bucket/inputs/" + "0" * 64 + "/"}, "inputs/"),
    ],
)
def test_defect_06_s3upload_under_submit_is_refused(harness, options, prefix):
    result = harness.start(CHAIN, {"x": 1}, **options)
    assert result == {"run_id": harness.run_id, "failed": "InvalidSubmission"}
    assert harness.batch.jobs == {}  # refused before any job
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["error"] == "InvalidSubmission"
    message = run.error["message"]
    assert message.startswith("s3upload: ") and f"s3://{STACK_BUCKET}/{prefix}" in message
    assert json.dumps(options["s3upload"]) in message  # names the value, as schema problems do
    kind, (name, cause) = harness.answer()
    assert (kind, name) == ("failure", "InvalidSubmission")
    assert json.loads(cause)["message"] == message


@pytest.mark.parametrize(
    "options",
    [
        {"s3upload": "s3://stack-bucket/results/"},
        {"s3upload": "s3://stack-bucket/submitted/"},  # not under submit/
        {"s3upload": "s3://stack-bucket/results/submit/"},
        {"s3upload": "s3://stack-bucket/results/inputs/"},
        {"s3upload": "s3://stack-bucket"},  # into <run name>/ at the top
        {"s3upload": "s3://other-bucket/submit/"},  # another bucket's submit/ is not ours
    ],
)
def test_defect_06_other_upload_targets_still_start(harness, options):
    result = harness.start(CHAIN, {"x": 1}, **options)
    assert "failed" not in result, harness.run().error
    assert harness.run().status == RUN_RUNNING and len(harness.batch.jobs) == 1


def test_defect_06_without_a_known_stack_bucket_nothing_is_refused():
    harness = Harness()  # ports.stack_bucket unset (e.g. a hand-wired controller)
    result = harness.start(CHAIN, {"x": 1}, s3upload="s3://stack-bucket/submit/")
    assert "failed" not in result and len(harness.batch.jobs) == 1


@pytest.mark.parametrize(
    "s3upload, directory, refused",
    [
        ("s3://stack-bucket/submit/", None, True),
        ("s3://stack-bucket", "/mnt/efs/wdl/.", True),
        ("s3://stack-bucket", "/mnt/efs/runs", False),  # <timestamp>_<name>/ at the top
        ("s3://stack-bucket/results/", None, False),
        ("s3://elsewhere/submit/", None, False),
        (None, None, False),
    ],
)
def test_defect_06_submit_checks_the_upload_target_before_staging(s3upload, directory, refused):
    import argparse

    from miniwdl_serverless.cli import remote
    from miniwdl_serverless.cli.stack import Stack
    from miniwdl_serverless.cli.submit import UsageError

    stack = Stack("arn:aws:states:us-east-1:1:stateMachine:s", name="st", bucket=STACK_BUCKET)
    settings = argparse.Namespace(s3upload=s3upload, dir=directory)
    if refused:
        with pytest.raises(UsageError, match=r"^--s3upload: may not upload under s3://stack-b"):
            remote._check_upload_target(settings, stack, "chain")
    else:
        remote._check_upload_target(settings, stack, "chain")


# ---- the staged wdl/<sha256>.zip ------------------------------------------------------------


class BucketSources:
    """The WorkflowSources port over a few objects (s3:// URI → bytes)."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def fetch(self, uri: str, limit: int) -> bytes:
        return self.objects[uri][: limit + 1]


def miniwdl_zip(tmp_path, name: str, source: str) -> bytes:
    import logging

    import WDL
    import WDL.Zip

    (tmp_path / name).mkdir()
    (tmp_path / name / "main.wdl").write_text(source)
    archive = tmp_path / name / "main.wdl.zip"
    doc = WDL.load(str(tmp_path / name / "main.wdl"))
    WDL.Zip.build(doc, str(archive), logging.getLogger("test"))
    return archive.read_bytes()


def start_staged(harness: Harness, key: str, data: bytes) -> dict:
    uri = f"s3://{STACK_BUCKET}/{key}"
    harness.ports.sources = BucketSources({uri: data})
    harness.run_id = "run-staged-" + key.replace("/", "-")[:20]
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{harness.run_id}"
    execution_input = {"workflow": uri, "dir": harness.root, "inputs": {"x": 2}}
    from miniwdl_serverless.controller.start import start_run

    started = start_run(execution_input, harness.token, arn, "2026-12-01T10:00:00Z", harness.ports)
    harness.work.drain()
    return started


OTHER = CHAIN.replace("x * 2", "x * 1000")


def test_defect_06_a_staged_zip_that_is_not_what_its_name_says_is_refused(harness, tmp_path):
    import hashlib

    genuine = miniwdl_zip(tmp_path, "genuine", CHAIN)
    replaced = miniwdl_zip(tmp_path, "replaced", OTHER)  # a valid archive, another workflow
    key = f"wdl/{hashlib.sha256(genuine).hexdigest()}.zip"
    result = start_staged(harness, key, replaced)
    assert result == {"run_id": harness.run_id, "failed": "TamperedState"}
    assert harness.batch.jobs == {}
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["error"] == "TamperedState"
    assert hashlib.sha256(replaced).hexdigest() in run.error["message"]
    assert key in run.error["message"]


def test_defect_06_a_staged_zip_that_matches_its_name_runs(harness, tmp_path):
    import hashlib

    genuine = miniwdl_zip(tmp_path, "genuine", CHAIN)
    key = f"wdl/{hashlib.sha256(genuine).hexdigest()}.zip"
    assert "failed" not in start_staged(harness, key, genuine)
    harness.play()
    assert harness.outputs() == {"chain.result": 4}


def test_defect_06_other_zips_are_not_held_to_a_digest(harness, tmp_path):
    replaced = miniwdl_zip(tmp_path, "replaced", OTHER)
    assert "failed" not in start_staged(harness, "src/wdl/" + "0" * 64 + ".zip", replaced)


class FakeS3:
    """head_object and put_object of one bucket, as S3 answers them (ChecksumSHA256 only for
    objects uploaded with that checksum)."""

    def __init__(self, objects: dict[str, dict]):
        self.objects = objects
        self.puts: list[dict] = []

    def head_object(self, Bucket: str, Key: str, ChecksumMode: str | None = None) -> dict:
        from botocore.exceptions import ClientError

        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        head = dict(self.objects[Key])
        if ChecksumMode != "ENABLED":
            head.pop("ChecksumSHA256", None)
        return head

    def put_object(self, **kwargs) -> dict:
        self.puts.append(kwargs)
        return {}


class FakeClients:
    def __init__(self, s3: FakeS3):
        self.s3 = s3

    def client(self, service: str) -> FakeS3:
        assert service == "s3"
        return self.s3


def sha256_b64(data: bytes) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(data).digest()).decode()


ARCHIVE = b"PK\x03\x04 a miniwdl zip"


@pytest.mark.parametrize(
    "existing, uploaded",
    [
        (None, True),  # not there yet
        ({"ChecksumSHA256": sha256_b64(ARCHIVE)}, False),  # S3's own digest of it matches
        ({"ChecksumSHA256": sha256_b64(b"something else")}, True),  # replaced meanwhile
        ({}, True),  # no SHA-256 checksum (staged by an older CLI, or put by someone else)
        ({"ChecksumSHA256": sha256_b64(ARCHIVE) + "-2"}, True),  # multipart: composite
    ],
)
def test_defect_06_staging_verifies_an_existing_object(existing, uploaded):
    from miniwdl_serverless.cli.stack import stage_archive
    from miniwdl_serverless.core.stack_bucket import staged_key

    key = staged_key(ARCHIVE)
    s3 = FakeS3({} if existing is None else {key: existing})
    uri = stage_archive(FakeClients(s3), STACK_BUCKET, key, ARCHIVE)  # type: ignore[arg-type]
    assert uri == f"s3://{STACK_BUCKET}/{key}"
    if uploaded:
        (put,) = s3.puts
        assert put["Key"] == key and put["Body"] == ARCHIVE
        assert put["ChecksumAlgorithm"] == "SHA256"  # S3 checks it, and keeps it for next time
    else:
        assert s3.puts == []
