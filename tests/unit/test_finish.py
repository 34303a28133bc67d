"""Finish with ``s3upload``: every output is uploaded (Files and Directories, in any WDL type)
and confirmed before ``delete_after`` deletes anything, and a re-invoked Finish returns what
was uploaded (issue 9, defect 14)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.controller.ports import TransientError
from miniwdl_serverless.core import payloads
from miniwdl_serverless.core.uploads import Deadline, Transfer

from .harness import Harness

DIRECTORIES = """
version development
workflow w {
  call make
  output { Directory d = make.d  Array[File] fs = [make.f]  String s = "not a file" }
}
task make {
  command <<< mkdir -p out/sub; echo a > out/a.txt; echo b > out/sub/b.txt; echo f > f.txt >>>
  output { Directory d = "out"  File f = "f.txt" }
}
"""
UPLOAD = "s3://results/runs/"


def finished(harness: Harness) -> dict:
    return finish_run({"result": {"run_id": harness.run_id}}, harness.run_id, harness.ports)


def test_defect_14_directory_outputs_are_uploaded_before_delete_after(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start(DIRECTORIES, s3upload=UPLOAD, delete_after="success")
    harness.play(harness.execute)
    run_dir = harness.run().run_dir
    result = finished(harness)
    assert result["status"] == "succeeded"
    uploads = harness.ports.uploads
    assert result["outputs"] == {
        "w.d": UPLOAD + "d/out/",
        "w.fs": [UPLOAD + "fs/0/f.txt"],
        "w.s": "not a file",
    }
    assert {UPLOAD + "d/out/a.txt", UPLOAD + "d/out/sub/b.txt"} <= set(uploads.files)
    assert uploads.objects[UPLOAD + "outputs.json"] == result["outputs"]
    assert not os.path.exists(run_dir)  # deleted only after everything was uploaded


def test_defect_14_finish_again_after_delete_after_returns_what_was_uploaded(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    harness.start(DIRECTORIES, s3upload=UPLOAD, delete_after="always")
    harness.play(harness.execute)
    first = finished(harness)
    assert harness.run().uploaded_to == UPLOAD
    again = finished(harness)  # Step Functions retries Finish, the run directory is gone
    assert again == first
    assert harness.ports.uploads.objects[UPLOAD + "outputs.json"] == first["outputs"]


def test_defect_14_an_output_that_cannot_be_uploaded_keeps_the_run_directory(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    harness.start(DIRECTORIES, s3upload=UPLOAD, delete_after="success")
    harness.play(harness.execute)
    run_dir = harness.run().run_dir
    real_upload = harness.ports.uploads.upload_file

    def refuses_b(path: str, uri: str) -> Transfer:
        if path.endswith("b.txt"):
            raise OSError("swapped for a FIFO")  # what the guarded read refuses
        return real_upload(path, uri)

    harness.ports.uploads.upload_file = refuses_b  # type: ignore[method-assign]
    result = finished(harness)
    assert result["outputs"]["w.d"].endswith("/out/d/out")  # still on EFS (its link under out/)
    assert os.path.isdir(run_dir) and harness.run().uploaded_to is None
    log = Path(run_dir, "workflow.log").read_text()
    assert "not deleting" in log and "not uploaded: w.d" in log


BIG_OUTPUT = """
version 1.0
workflow w {
  call big
  output { String s = big.s  Int n = 3 }
}
task big {
  command <<< head -c 5242880 /dev/zero | tr '\\0' 'x' > big.txt >>>
  output { String s = read_string("big.txt") }
}
"""


def test_defect_15_outputs_larger_than_a_step_functions_payload_travel_by_reference(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    harness.start(BIG_OUTPUT)
    harness.play(harness.execute)
    result = finished(harness)
    assert result["status"] == "succeeded"
    assert payloads.size_of(result) < 4096  # was the 5 MB string: States.DataLimitExceeded
    assert "outputs" not in result
    outputs = json.loads(Path(result["outputs_json"]).read_text())
    assert outputs == {"w.s": "x" * 5242880, "w.n": 3}
    assert result["outputs_json"] == os.path.join(result["dir"], "outputs.json")


def test_defect_15_uploaded_large_outputs_are_referenced_in_s3(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start(BIG_OUTPUT, s3upload=UPLOAD, delete_after="success")
    harness.play(harness.execute)
    first = finished(harness)
    again = finished(harness)  # a retried Finish after delete_after
    for result in (first, again):
        assert payloads.size_of(result) < 4096 and "outputs" not in result
        assert result["outputs_json"] == UPLOAD + "outputs.json"
    assert harness.ports.uploads.objects[UPLOAD + "outputs.json"]["w.s"] == "x" * 5242880


def test_defect_15_a_huge_error_cause_travels_by_reference(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start("version 1.0\nworkflow w { call t }\ntask t { command <<< exit 1 >>> }")
    harness.play(harness.execute)
    run = harness.run()
    huge = {"error": "RunFailed", "message": "y" * 1_000_000}  # more than a cause holds
    run.error = huge
    harness.store.put_run(run)
    result = finished(harness)
    assert result["status"] == "failed" and len(result["cause"]) <= payloads.CAUSE_LIMIT
    assert json.loads(result["cause"])["error_json"] == result["error_json"]
    assert json.loads(Path(result["error_json"]).read_text()) == huge


# ---- issue 10: uploads that scale ------------------------------------------------------------

MANY = """
version development
workflow w {
  call make
  output { Array[File] fs = make.fs  Directory d = make.d }
}
task make {
  command <<< mkdir out; for i in 1 2 3; do echo f$i > f$i.txt; echo o$i > out/o$i.txt; done >>>
  output { Array[File] fs = ["f1.txt", "f2.txt", "f3.txt"]  Directory d = "out" }
}
"""
MANY_FILES = [f"fs/{i}/f{i + 1}.txt" for i in range(3)] + [f"d/out/o{i}.txt" for i in (1, 2, 3)]


class Clock:
    """The invocation's clock; each upload takes ``per_upload`` seconds of it."""

    def __init__(self, per_upload: float = 100.0) -> None:
        self.now = 1000.0
        self.per_upload = per_upload

    def __call__(self) -> float:
        return self.now


def timed_uploads(harness: Harness, clock: Clock) -> dict[str, str]:
    """Uploads that take time on ``clock``; returns workflow.log as each upload of it sent it."""
    uploads = harness.ports.uploads
    real_upload = uploads.upload_file
    logs: dict[str, str] = {}

    def upload_file(path: str, uri: str) -> Transfer:
        clock.now += clock.per_upload
        if uri.endswith("workflow.log"):
            logs[uri] = Path(path).read_text()
        return real_upload(path, uri)

    uploads.upload_file = upload_file  # type: ignore[method-assign]
    return logs


def invocations(harness: Harness, clock: Clock, seconds: float) -> list[dict]:
    """Finish as the state machine runs it: invoked again with its result while that says
    ``continue`` (MoreToUpload), each invocation ``seconds`` before its deadline; the run
    directory must still be there after every invocation but the last."""
    state: dict = {"result": {"run_id": harness.run_id}}
    results = []
    run_dir = str(harness.run().run_dir)
    for _ in range(20):
        deadline = Deadline(clock.now + seconds, clock)
        results.append(finish_run(state, harness.run_id, harness.ports, deadline))
        if results[-1]["status"] != "continue":
            return results
        assert os.path.isdir(run_dir), "deleted before the last invocation uploaded everything"
        state = results[-1]
    raise AssertionError("Finish kept continuing")


def test_a_finish_cut_short_by_its_deadline_continues_and_completes(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start(MANY, s3upload=UPLOAD, delete_after="success")
    harness.play(harness.execute)
    run_dir = harness.run().run_dir
    clock = Clock(per_upload=100.0)
    logs = timed_uploads(harness, clock)
    results = invocations(harness, clock, seconds=150.0)  # a file and a half per invocation
    # then each invocation sent what it had time for, and the last one finished the run
    assert [r["status"] for r in results] == ["continue"] * 5 + ["succeeded"]
    assert all(payloads.size_of(r) < 2048 for r in results[:-1])
    uploads = harness.ports.uploads
    outputs = [uri for uri in uploads.sent if not uri.endswith(("workflow.log", "outputs.json"))]
    assert sorted(outputs) == sorted(UPLOAD + name for name in MANY_FILES)  # each once
    assert results[-1]["outputs"] == {
        "w.fs": [UPLOAD + name for name in MANY_FILES[:3]],
        "w.d": UPLOAD + "d/out/",
    }
    assert uploads.objects[UPLOAD + "outputs.json"] == results[-1]["outputs"]
    assert not os.path.exists(run_dir)  # deleted once, by the last invocation
    assert harness.run().uploaded_to == UPLOAD
    log = logs[UPLOAD + "workflow.log"]
    assert "continuing in invocation 5" in log
    assert (
        "uploaded 6 files (18 bytes), skipped 0 already uploaded (0 bytes), in 6 invocations" in log
    )
    assert harness.metrics.counts["FinishContinued"] == 5
    assert harness.metrics.counts["UploadedFiles"] == 6


def test_a_continuation_sends_nothing_an_earlier_invocation_sent(tmp_path: Path) -> None:
    """The progress a continuation gets is not trusted blindly: a changed plan (a file added
    before the cursor) is checked file by file, and the objects sent already are skipped."""
    harness = Harness(tmp_path)
    harness.start(MANY, s3upload=UPLOAD)
    harness.play(harness.execute)
    clock = Clock()
    timed_uploads(harness, clock)
    state = finish_run(
        {"result": {"run_id": harness.run_id}},
        harness.run_id,
        harness.ports,
        Deadline(clock.now + 150.0, clock),
    )
    assert state["status"] == "continue" and state["progress"]["done"] == 1
    out = Path(harness.outputs()["w.d"])
    (out / "a-new-file.txt").write_text("new\n")  # sorts before the files sent: a changed plan
    state["progress"]["done"] = 5  # even a progress that claims more changes nothing
    result = finish_run(state, harness.run_id, harness.ports)
    assert result["status"] == "succeeded"
    sent = [uri for uri in harness.ports.uploads.sent if "workflow.log" not in uri]
    assert len(sent) == len(set(sent)) == len(MANY_FILES) + 2  # the new file and outputs.json
    assert UPLOAD + "d/out/a-new-file.txt" in sent


def test_delete_after_keeps_the_directory_when_an_earlier_invocation_could_not_upload(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    harness.start(MANY, s3upload=UPLOAD, delete_after="always")
    harness.play(harness.execute)
    run_dir = harness.run().run_dir
    clock = Clock()
    timed_uploads(harness, clock)
    timed = harness.ports.uploads.upload_file

    def refuses_f2(path: str, uri: str) -> Transfer:
        if path.endswith("f2.txt"):
            raise OSError("swapped for a FIFO")  # in the second of six invocations
        return timed(path, uri)

    harness.ports.uploads.upload_file = refuses_f2  # type: ignore[method-assign]
    results = invocations(harness, clock, seconds=150.0)
    assert results[-1]["status"] == "succeeded" and len(results) > 2
    assert results[-1]["outputs"]["w.fs"][1].endswith(
        "/out/fs/1/f2.txt"
    )  # on EFS (its link under out/)
    assert results[-1]["outputs"]["w.fs"][2] == UPLOAD + "fs/2/f3.txt"
    assert os.path.isdir(run_dir) and harness.run().uploaded_to is None
    assert "not deleting" in Path(run_dir, "workflow.log").read_text()


def test_an_upload_failure_at_the_port_keeps_the_directory_until_a_retry_uploads_the_rest(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    harness.start(MANY, s3upload=UPLOAD, delete_after="success")
    harness.play(harness.execute)
    run_dir = harness.run().run_dir
    uploads = harness.ports.uploads
    real_upload = uploads.upload_file

    def throttled(path: str, uri: str) -> Transfer:
        if len(uploads.sent) == 3:  # the fourth file
            raise TransientError("upload_file: SlowDown (after 6 tries)")
        return real_upload(path, uri)

    uploads.upload_file = throttled  # type: ignore[method-assign]
    state = {"result": {"run_id": harness.run_id}}
    with pytest.raises(TransientError):  # the Finish state retries TransientError
        finish_run(state, harness.run_id, harness.ports)
    assert os.path.isdir(run_dir) and harness.run().uploaded_to is None
    assert len(uploads.sent) == 3
    uploads.upload_file = real_upload  # type: ignore[method-assign]
    result = finish_run(state, harness.run_id, harness.ports)  # the retry, with the same state
    assert result["status"] == "succeeded" and not os.path.exists(run_dir)
    sent = [uri for uri in uploads.sent if not uri.endswith(("workflow.log", "outputs.json"))]
    assert sorted(sent) == sorted(UPLOAD + name for name in MANY_FILES)  # nothing sent twice
    assert harness.metrics.counts["UploadSkippedFiles"] == 3


FAILS = "version 1.0\ntask t { command <<< echo out; echo err >&2; exit 3 >>> }"


def test_a_failed_run_uploads_error_json_workflow_log_and_the_failed_tasks_logs(
    tmp_path: Path,
) -> None:
    """As miniwdl-aws names them: error.json (with the cause's ``stderr_s3file``) and
    CommandFailed_stderr.txt; stdout likewise, and workflow.log."""
    harness = Harness(tmp_path)
    harness.start(FAILS, task="t", s3upload=UPLOAD, delete_after="failure")
    harness.play(harness.execute)
    run_dir = str(harness.run().run_dir)
    call_dir = os.path.join(run_dir, "call-t")
    result = finished(harness)
    assert result["status"] == "failed" and result["error_json"] == UPLOAD + "error.json"
    uploads = harness.ports.uploads
    assert uploads.files == {
        UPLOAD + "CommandFailed_stderr.txt": call_dir + "/stderr.txt",
        UPLOAD + "CommandFailed_stdout.txt": call_dir + "/stdout.txt",
        UPLOAD + "workflow.log": run_dir + "/workflow.log",
    }
    error = uploads.objects[UPLOAD + "error.json"]
    assert error["cause"]["exit_status"] == 3
    assert error["cause"]["stderr_s3file"] == UPLOAD + "CommandFailed_stderr.txt"
    assert error["cause"]["stdout_s3file"] == UPLOAD + "CommandFailed_stdout.txt"
    assert json.loads(result["cause"])["cause"]["stderr_s3file"] == error["cause"]["stderr_s3file"]
    assert not os.path.exists(run_dir)  # delete_after: failure, once all of it was uploaded


def test_a_retried_finish_of_a_failed_run_sends_only_the_log_that_changed(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start(FAILS, task="t", s3upload=UPLOAD)
    harness.play(harness.execute)
    first = finished(harness)
    uploads = harness.ports.uploads
    sent = len(uploads.sent)
    again = finished(harness)  # Step Functions retries a Finish that crashed after its uploads
    assert again == first
    assert uploads.sent[sent:] == [UPLOAD + "workflow.log"]  # it has the retry's line
    log = Path(str(harness.run().run_dir), "workflow.log").read_text()
    assert "skipped 2 already uploaded (8 bytes)" in log


def test_a_failed_run_whose_log_could_not_be_uploaded_keeps_its_directory(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start(FAILS, task="t", s3upload=UPLOAD, delete_after="always")
    harness.play(harness.execute)
    run_dir = str(harness.run().run_dir)
    real_upload = harness.ports.uploads.upload_file

    def refuses_stderr(path: str, uri: str) -> Transfer:
        if path.endswith("stderr.txt"):
            raise OSError("swapped for a FIFO")
        return real_upload(path, uri)

    harness.ports.uploads.upload_file = refuses_stderr  # type: ignore[method-assign]
    result = finished(harness)
    assert result["status"] == "failed"
    error = harness.ports.uploads.objects[UPLOAD + "error.json"]
    assert "stderr_s3file" not in error["cause"] and "stdout_s3file" in error["cause"]
    assert os.path.isdir(run_dir)
    assert "not uploaded: stderr_file" in Path(run_dir, "workflow.log").read_text()
