"""Finish with ``s3upload``: every output is uploaded (Files and Directories, in any WDL type)
and confirmed before ``delete_after`` deletes anything, and a re-invoked Finish returns what
was uploaded (issue 9, defect 14)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.core import payloads

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
        "w.d": UPLOAD + "w.d/out/",
        "w.fs": [UPLOAD + "w.fs/0/f.txt"],
        "w.s": "not a file",
    }
    assert {UPLOAD + "w.d/out/a.txt", UPLOAD + "w.d/out/sub/b.txt"} <= set(uploads.files)
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

    def refuses_b(path: str, uri: str) -> None:
        if path.endswith("b.txt"):
            raise OSError("swapped for a FIFO")  # what the guarded read refuses
        real_upload(path, uri)

    harness.ports.uploads.upload_file = refuses_b  # type: ignore[method-assign]
    result = finished(harness)
    assert result["outputs"]["w.d"].endswith("/call-make/work/out")  # still on EFS
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
