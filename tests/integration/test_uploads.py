"""Finish's uploads on S3 (moto): the real ``S3Uploads`` under the real controller (the unit
harness: in-memory store, real files, task scripts run with bash). Large files go up as
multipart uploads, parts in parallel; a retried Finish sends nothing it sent before (counted
PutObject and UploadPart calls); a file that changed while it was sent leaves no object."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from miniwdl_serverless.adapters.s3 import FileChanged, S3Uploads
from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.core.uploads import MiB, UploadSettings

from ..unit.harness import Harness

REGION = "us-east-1"
SMALL_PARTS = UploadSettings(multipart_threshold=5 * MiB, part_size=5 * MiB, concurrency=3)


class LambdaDied(BaseException):
    """The invocation killed (its timeout, its memory): nothing of the controller catches it."""


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Dummy credentials, then moto. Other tests in the process may hold an embedded AWS
    (moto's state is shared while any mock is active): the bucket's name is the test's own."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        # No CRC32 of every body (botocore's default, sent as aws-chunked encoding, which moto
        # decodes slowly); S3 itself gets them on AWS.
        config = Config(request_checksum_calculation="when_required")
        yield boto3.client("s3", region_name=REGION, config=config)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"msls-uploads-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


class Sent:
    """Every PutObject and UploadPart the client makes: (operation, key, bytes sent)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, str, int]] = []
        for operation in ("PutObject", "UploadPart"):
            client.meta.events.register(f"before-parameter-build.s3.{operation}", self._sent)

    def _sent(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        body = params.get("Body")
        self.calls.append((model.name, params["Key"], len(body) if body is not None else 0))

    def since(self, start: int, but: str = "") -> list[tuple[str, str, int]]:
        return [call for call in self.calls[start:] if not (but and call[1].endswith(but))]


def finished(harness: Harness) -> dict[str, Any]:
    return finish_run({"result": {"run_id": harness.run_id}}, harness.run_id, harness.ports)


def on_s3(harness: Harness, s3: Any, root: Path, settings: UploadSettings) -> None:
    harness.ports.uploads = S3Uploads(s3, root=str(root), settings=settings)


BIG = """
version 1.0
task big {
  command <<< printf head > big.bin; truncate -s 200M big.bin; printf tail >> big.bin >>>
  output { File f = "big.bin" }
}
"""


@pytest.mark.big_upload  # about 10 s; alone: `make big-upload`
def test_a_200_mb_output_is_uploaded_in_parallel_parts(
    tmp_path: Path, s3: Any, bucket: str
) -> None:
    harness = Harness(tmp_path)
    harness.start(BIG, task="big", s3upload=f"s3://{bucket}/x/", delete_after="success")
    harness.play(harness.execute)  # a sparse file: 200 MiB and 4 bytes, hardly any on disk
    path = Path(harness.outputs()["big.f"])
    size, digest = path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    on_s3(harness, s3, tmp_path, UploadSettings())  # the defaults: 64 MiB parts, 10 at a time
    sent = Sent(s3)
    began = time.monotonic()
    result = finished(harness)
    seconds = time.monotonic() - began
    assert result["outputs"] == {"big.f": f"s3://{bucket}/x/f/big.bin"}
    head = s3.head_object(Bucket=bucket, Key="x/f/big.bin")
    assert head["ContentLength"] == size == 200 * MiB + 4
    assert head["ETag"].strip('"').endswith("-4")  # made by a multipart upload of 4 parts
    parts = [call for call in sent.calls if call[0] == "UploadPart"]
    assert [part[2] for part in parts if part[2] == 64 * MiB] == [64 * MiB] * 3
    assert sum(part[2] for part in parts) == size and len(parts) == 4
    assert head["Metadata"]["sha256"] == digest
    assert not path.exists()  # delete_after, once the upload was confirmed
    print(f"200 MiB uploaded in {len(parts)} parts in {seconds:.1f} s")


TWO = """
version 1.0
workflow w {
  call make
  output { File big = make.big  File small = make.small }
}
task make {
  command <<< head -c 12582912 /dev/urandom > big.bin; echo small > small.txt >>>
  output { File big = "big.bin"  File small = "small.txt" }
}
"""


def test_a_file_past_the_threshold_goes_up_in_parts_of_the_settings_size(
    tmp_path: Path, s3: Any, bucket: str
) -> None:
    harness = Harness(tmp_path)
    harness.start(TWO, s3upload=f"s3://{bucket}/x/")
    harness.play(harness.execute)
    on_s3(harness, s3, tmp_path, SMALL_PARTS)
    sent = Sent(s3)
    result = finished(harness)
    assert result["status"] == "succeeded"
    parts = [call[2] for call in sent.calls if call[0] == "UploadPart"]  # sent 3 at a time
    assert sorted(parts, reverse=True) == [5 * MiB, 5 * MiB, 2 * MiB]
    head = s3.head_object(Bucket=bucket, Key="x/big/big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    small = s3.head_object(Bucket=bucket, Key="x/small/small.txt")
    assert "-" not in small["ETag"]  # below the threshold: one PutObject


def _dies_after_first_output(harness: Harness) -> None:
    uploads = harness.ports.uploads
    real = uploads.upload_file
    calls = []

    def upload_file(path: str, uri: str) -> Any:
        calls.append(uri)
        if len(calls) == 2:
            raise LambdaDied()
        return real(path, uri)

    uploads.upload_file = upload_file  # type: ignore[method-assign]


def _dies_before_recording(harness: Harness) -> None:
    def record_upload(run_id: str, folder: str) -> None:
        raise LambdaDied()

    harness.store.record_upload = record_upload  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "crash",
    [_dies_after_first_output, _dies_before_recording],
    ids=["after the first output", "after every upload"],
)
def test_a_retried_finish_uploads_nothing_twice(
    tmp_path: Path, s3: Any, bucket: str, crash: Any
) -> None:
    harness = Harness(tmp_path)
    harness.start(TWO, s3upload=f"s3://{bucket}/x/", delete_after="success")
    harness.play(harness.execute)
    run_dir = str(harness.run().run_dir)
    on_s3(harness, s3, tmp_path, SMALL_PARTS)
    real_uploads, real_record = harness.ports.uploads.upload_file, harness.store.record_upload
    sent = Sent(s3)
    crash(harness)
    with pytest.raises(LambdaDied):
        finished(harness)
    assert os.path.isdir(run_dir)  # nothing deleted before every upload is confirmed
    first = sent.since(0)
    harness.ports.uploads.upload_file = real_uploads  # type: ignore[method-assign]
    harness.store.record_upload = real_record  # type: ignore[method-assign]
    retry = len(sent.calls)
    result = finished(harness)  # Step Functions' Retry, with the same state
    assert result["status"] == "succeeded" and not os.path.exists(run_dir)
    again = sent.since(retry, but="workflow.log")  # the log gained the retry's line
    keys_before = {key for _, key, _ in first}
    assert not {key for _, key, _ in again} & keys_before  # nothing sent twice
    if crash is _dies_before_recording:
        assert again == [] and sum(size for *_, size in again) == 0  # 0 bytes on the retry
    log = s3.get_object(Bucket=bucket, Key="x/workflow.log")["Body"].read().decode()
    assert "skipped" in log.splitlines()[-1]
    assert s3.head_object(Bucket=bucket, Key="x/big/big.bin")["ContentLength"] == 12 * MiB


def test_an_identical_file_is_not_sent_again_even_touched_and_a_changed_one_is(
    tmp_path: Path, s3: Any, bucket: str
) -> None:
    path = tmp_path / "out.txt"
    path.write_bytes(b"x" * 1000)
    uploads = S3Uploads(s3, root=str(tmp_path), settings=SMALL_PARTS)
    sent = Sent(s3)
    uri = f"s3://{bucket}/out.txt"
    assert not uploads.upload_file(str(path), uri).skipped
    assert uploads.upload_file(str(path), uri).skipped  # its stamp: not even read
    os.utime(path)  # a new stamp, the same content: read, and skipped by its SHA-256
    assert uploads.upload_file(str(path), uri).skipped
    path.write_bytes(b"y" * 1000)
    assert not uploads.upload_file(str(path), uri).skipped
    assert len(sent.calls) == 2
    assert s3.get_object(Bucket=bucket, Key="out.txt")["Body"].read() == b"y" * 1000
    s3.put_object(Bucket=bucket, Key="other.txt", Body=b"y" * 1000)  # no digest: not ours
    assert not uploads.upload_file(str(path), f"s3://{bucket}/other.txt").skipped
    assert uploads.put_json(f"s3://{bucket}/o.json", {"a": 1}).skipped is False
    assert uploads.put_json(f"s3://{bucket}/o.json", {"a": 1}).skipped is True


def test_a_file_changed_while_it_was_sent_leaves_no_object(
    tmp_path: Path, s3: Any, bucket: str
) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(os.urandom(12 * MiB))
    uploads = S3Uploads(s3, root=str(tmp_path), settings=SMALL_PARTS)

    def a_task_writes(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            with open(path, "r+b") as file:
                file.write(b"changed")

    s3.meta.events.register("before-parameter-build.s3.UploadPart", a_task_writes)
    with pytest.raises(FileChanged):
        uploads.upload_file(str(path), f"s3://{bucket}/out.bin")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
