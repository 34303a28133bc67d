"""core/uploads.py: the transfer settings, when an object is already uploaded identically, what
Finish counts, when it stops for a further invocation and where that one picks up."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from miniwdl_serverless.adapters.s3 import S3Uploads
from miniwdl_serverless.core import payloads, uploads
from miniwdl_serverless.core.uploads import (
    Deadline,
    MiB,
    Progress,
    Remote,
    Tally,
    Throughput,
    Transfer,
    UploadSettings,
)

from .fake_s3 import RecordingS3


def test_settings_default_to_64_mib_parts_ten_at_a_time() -> None:
    settings = UploadSettings.from_environment({})
    assert settings == UploadSettings(64 * MiB, 64 * MiB, 10, 120.0)
    assert settings.problem(2048 * MiB) is None  # the template's 2048 MB finish function


def test_only_the_finish_function_checks_its_memory() -> None:
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}  # a start function made smaller
    assert UploadSettings.from_environment(env) == UploadSettings()
    with pytest.raises(ValueError, match="more than 3/4 of the function's 512 MiB"):
        UploadSettings.from_environment(env, check_memory=True)


def test_settings_come_from_the_environment_in_mib() -> None:
    env = {
        "UPLOAD_MULTIPART_THRESHOLD_MIB": "8",
        "UPLOAD_PART_SIZE_MIB": "16",
        "UPLOAD_CONCURRENCY": "4",
        "FINISH_RESERVE_SECONDS": "30.5",
    }
    assert UploadSettings.from_environment(env) == UploadSettings(8 * MiB, 16 * MiB, 4, 30.5)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"UPLOAD_PART_SIZE_MIB": "4"}, "UPLOAD_PART_SIZE_MIB: parts must be 5 to 5120 MiB"),
        ({"UPLOAD_PART_SIZE_MIB": "6000"}, "UPLOAD_PART_SIZE_MIB"),
        ({"UPLOAD_MULTIPART_THRESHOLD_MIB": "1"}, "UPLOAD_MULTIPART_THRESHOLD_MIB"),
        ({"UPLOAD_CONCURRENCY": "0"}, "UPLOAD_CONCURRENCY: 1 to 64"),
        ({"UPLOAD_CONCURRENCY": "ten"}, "UPLOAD_CONCURRENCY: not a number: 'ten'"),
        ({"FINISH_RESERVE_SECONDS": "-1"}, "FINISH_RESERVE_SECONDS"),
        (
            {"UPLOAD_CONCURRENCY": "20", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"},
            "(1280 MiB in memory) is more than 3/4 of the function's 1024 MiB",
        ),
    ],
)
def test_settings_s3_or_the_memory_cannot_take_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError) as raised:
        UploadSettings.from_environment(env, check_memory=True)
    assert named in str(raised.value)


def test_an_object_is_skipped_by_the_files_stamp_or_by_its_size_and_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"content")
    stamp = uploads.stamp(os.stat(path))
    stored = Remote(7, uploads.metadata("abc", stamp))
    assert uploads.unchanged(stored, 7, stamp)
    assert not uploads.unchanged(None, 7, stamp)
    assert not uploads.unchanged(Remote(7, {"source-stamp": stamp}), 7, stamp)  # no digest
    assert not uploads.unchanged(stored, 8, stamp)
    os.utime(path)  # any change moves the change time: the stamp is another
    assert not uploads.unchanged(stored, 7, uploads.stamp(os.stat(path)))
    assert uploads.identical(stored, 7, "abc")
    assert not uploads.identical(stored, 7, "abd") and not uploads.identical(stored, 6, "abc")
    assert not uploads.identical(Remote(7, {}), 7, "abc")  # uploaded by someone else


def test_the_tally_line_counts_uploaded_and_skipped_files_and_bytes() -> None:
    tally = Tally().add(Transfer(10)).add(Transfer(5, skipped=True)).add(Transfer(7))
    assert tally.line() == "uploaded 2 files (17 bytes), skipped 1 already uploaded (5 bytes)"
    assert tally.plus(tally) == Tally(4, 34, 2, 10)
    assert Tally.from_json(tally.as_json()) == tally
    assert Tally.from_json([1, 2, "x", 4]) == Tally() == Tally.from_json(None)
    assert tally.metrics()["UploadedBytes"] == 17


def test_finish_stops_before_a_file_that_would_not_be_sent_in_time() -> None:
    rate = 100.0  # bytes a second
    assert not uploads.stop_before(1000, 20, rate, started=True)
    assert uploads.stop_before(3000, 20, rate, started=True)
    assert uploads.stop_before(1, 0, rate, started=True)  # the deadline has passed
    # the invocation's first file is always tried: every invocation gets on
    assert not uploads.stop_before(10**12, -5, rate, started=False)


def test_the_rate_is_assumed_until_it_is_measured() -> None:
    assert Throughput().rate() == uploads.ASSUMED_RATE
    assert Throughput(10 * MiB, 0.1).rate() == uploads.ASSUMED_RATE  # too short to tell
    assert Throughput(100, 2.0).add(100, 2.0).rate() == 50.0


def test_a_deadline_is_the_remaining_time_less_the_reserve() -> None:
    now = [1000.0]
    deadline = Deadline.within(900, 120, clock=lambda: now[0])
    assert deadline.left() == 780
    now[0] += 800
    assert deadline.left() == -20


KEYS = [(f"/efs/run/f{i}", f"s3://b/f{i}") for i in range(5)]


def test_progress_picks_up_after_the_files_done() -> None:
    progress = Progress().stopped_at(KEYS, 3, [1], Tally(2, 20))
    again = Progress.from_json(progress.as_json())
    assert again == progress and again.invocations == 1
    assert again.resumed(KEYS) == progress
    assert again.resumed([*KEYS, ("/efs/run/f9", "s3://b/f9")]) == progress  # a file more


def test_a_changed_plan_is_checked_from_the_first_file_again() -> None:
    progress = Progress().stopped_at(KEYS, 3, [1], Tally(2, 20))
    changed = [KEYS[0], ("/efs/run/new", "s3://b/new"), *KEYS[1:]]  # sorts before the cursor
    assert progress.resumed(changed) == Progress(tally=Tally(2, 20), invocations=1)
    assert progress.resumed(KEYS[:2]) == Progress(tally=Tally(2, 20), invocations=1)


def test_too_many_failed_files_to_hand_on_are_all_checked_again() -> None:
    keys = [(f"/p{i}", f"s3://b/{i}") for i in range(uploads.MAX_FAILED + 2)]
    progress = Progress().stopped_at(keys, len(keys), list(range(len(keys))), Tally())
    assert progress.done == 0 and progress.failed == () and progress.invocations == 1


@pytest.mark.parametrize(
    "value",
    [
        None,
        "x",
        {"done": -1, "failed": [], "invocations": 0},
        {"done": 2, "failed": [2], "invocations": 0},  # a failed file past the ones done
        {"done": True, "failed": [], "invocations": 0},
        {"done": 1, "failed": "0", "invocations": 1},
    ],
)
def test_anything_but_a_progress_starts_from_the_first_file(value: object) -> None:
    assert Progress.from_json(value) == Progress()


def test_the_continue_result_stays_small() -> None:
    keys = [(f"/efs/run/{'d' * 200}/{i}", f"s3://b/{'k' * 200}/{i}") for i in range(100_000)]
    failed = list(range(0, 100_000, 101))[: uploads.MAX_FAILED]
    progress = Progress().stopped_at(keys, 99_999, failed, Tally(10**6, 10**15))
    error = {"Error": "E" * 10_000, "Cause": "c" * 100_000}
    result = payloads.continuing("run-1", progress.as_json(), error)
    assert result["status"] == "continue" and result["result"] == {"run_id": "run-1"}
    assert payloads.size_of(result) < 48 * 1024  # whatever the outputs: within a state's 256 KiB
    assert len(result["error"]["Cause"]) == payloads.CAUSE_LIMIT
    assert "error" not in payloads.continuing("run-1", progress.as_json())


def test_the_finish_function_gives_the_controller_a_deadline_not_its_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from miniwdl_serverless.handlers.wiring import finish_deadline
    from miniwdl_serverless.local.embedded import FakeContext

    monkeypatch.setenv("FINISH_RESERVE_SECONDS", "100")
    deadline = finish_deadline(FakeContext("FinishFunction"))  # 900 s left
    assert 799 < deadline.left() <= 800


class NoListBucket(RecordingS3):
    """S3 as the finish function's role sees it: without s3:ListBucket a missing key is 403."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def head_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
        if f"s3://{Bucket}/{Key}" in self.bodies:
            return super().head_object(Bucket, Key)
        error = {
            "Error": {"Code": str(self.code)},
            "ResponseMetadata": {"HTTPStatusCode": self.code},
        }
        raise ClientError(error, "HeadObject")  # type: ignore[arg-type]


def test_a_key_s3_calls_forbidden_to_look_at_is_uploaded(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("result\n")
    client = NoListBucket(403)
    sent = S3Uploads(client, root=str(tmp_path)).upload_file(str(tmp_path / "out.txt"), "s3://b/o")
    assert sent == Transfer(7) and client.bodies == {"s3://b/o": b"result\n"}
    assert client.metadata["s3://b/o"]["sha256"] == hashlib.sha256(b"result\n").hexdigest()


def test_another_error_looking_at_the_key_is_not_taken_for_a_missing_object(
    tmp_path: Path,
) -> None:
    (tmp_path / "out.txt").write_text("result\n")
    client = NoListBucket(500)
    with pytest.raises(ClientError):  # Retrying (handlers/wiring.py) makes it TransientError
        S3Uploads(client, root=str(tmp_path)).upload_file(str(tmp_path / "out.txt"), "s3://b/o")
    assert client.bodies == {}
