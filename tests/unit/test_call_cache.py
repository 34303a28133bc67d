"""The call cache on the harness: a call run before (same task, same inputs) is completed with
the earlier outputs by reference and submits no Batch job; a changed or removed file, or a
changed S3 object, is a miss; MINIWDL__CALL_CACHE__GET/PUT are honoured; tasks with no
outputs are cached too."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.unit.harness import Harness

PIPELINE = """
version 1.0
workflow w {
  input { File reads  Boolean fail = false }
  call stamp { input: f = reads }
  call nothing { input: f = reads }
  call finish { input: f = stamp.out, fail = fail }
  output { File out = finish.out  File first = stamp.out }
}
task stamp {
  input { File f }
  command <<< cat ~{f} > out.txt; date +%s%N >> out.txt >>>
  output { File out = "out.txt" }
}
task nothing {
  input { File f }
  command <<< true >>>
}
task finish {
  input { File f  Boolean fail }
  command <<< ~{if fail then "exit 3" else "true"}; cp ~{f} final.txt >>>
  output { File out = "final.txt" }
}
"""


def run(h: Harness, inputs: dict, **config: str) -> None:
    h.start(PIPELINE, inputs, call_cache=True, config=config or None)
    h.play(h.execute)


def real(outputs: dict) -> dict:
    """The files the outputs' out/ links name."""
    return {k: os.path.realpath(v) if isinstance(v, str) else v for k, v in outputs.items()}


def submitted(h: Harness) -> list[str]:
    return sorted(j.submission.tags["miniwdl-serverless:job"] for j in h.batch.jobs.values())


def test_a_second_run_reuses_every_call_by_reference_and_submits_nothing(tmp_path):
    h = Harness(tmp_path)
    reads = tmp_path / "reads.txt"
    reads.write_text("ACGT\n")
    run(h, {"reads": str(reads)})
    first = real(h.outputs())
    assert submitted(h) == ["call-finish", "call-nothing", "call-stamp"]
    h.batch.jobs.clear()
    run(h, {"reads": str(reads)})
    assert real(h.outputs()) == first  # the same files: the first run's, not copies
    assert submitted(h) == []
    run_record = h.run()
    assert run_record.calls_cached == 3 and run_record.calls_submitted == 0
    assert h.job("call-stamp").cached_from == str(Path(first["w.first"]).parent.parent)
    log = (Path(str(run_record.run_dir)) / "workflow.log").read_text()
    assert "call-nothing: call cache hit" in log  # a task without outputs is cached too
    assert h.metrics.counts["TasksCached"] == 3


def test_a_changed_input_file_is_a_miss_for_its_calls_only(tmp_path):
    h = Harness(tmp_path)
    reads = tmp_path / "reads.txt"
    reads.write_text("ACGT\n")
    run(h, {"reads": str(reads)})
    stamp = Path(h.outputs()["w.first"]).read_text()
    h.batch.jobs.clear()
    time.sleep(0.01)
    reads.write_text("TTTT\n")  # same path, new content: the entry names it, a miss
    run(h, {"reads": str(reads)})
    assert submitted(h) == ["call-finish", "call-nothing", "call-stamp"]
    assert Path(h.outputs()["w.first"]).read_text() != stamp


def test_a_removed_output_is_a_miss(tmp_path):
    h = Harness(tmp_path)
    reads = tmp_path / "reads.txt"
    reads.write_text("A\n")
    run(h, {"reads": str(reads)})
    Path(real(h.outputs())["w.out"]).unlink()  # finish's output is gone (stamp's is still there)
    h.batch.jobs.clear()
    run(h, {"reads": str(reads)})
    assert submitted(h) == ["call-finish"]
    assert Path(h.outputs()["w.out"]).exists()


def test_a_changed_s3_object_is_a_miss(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put("s3://data/reads.txt", b"A\n")
    config = {"MINIWDL__DOWNLOAD_CACHE__DIR": "cache"}
    run(h, {"reads": "s3://data/reads.txt"}, **config)
    h.batch.jobs.clear()
    run(h, {"reads": "s3://data/reads.txt"}, **config)
    assert submitted(h) == []
    assert h.remotes.fetches == {"s3://data/reads.txt": 1}
    h.remotes.put("s3://data/reads.txt", b"B\n")
    run(h, {"reads": "s3://data/reads.txt"}, **config)
    assert submitted(h) == ["call-finish", "call-nothing", "call-stamp"]
    assert Path(h.outputs()["w.first"]).read_text().startswith("B\n")


def test_get_and_put_are_honoured(tmp_path):
    h = Harness(tmp_path)
    reads = tmp_path / "reads.txt"
    reads.write_text("A\n")
    run(h, {"reads": str(reads)}, MINIWDL__CALL_CACHE__PUT="false")
    assert not h.cache.entries
    run(h, {"reads": str(reads)})
    assert len(h.cache.entries) == 3
    h.batch.jobs.clear()
    run(h, {"reads": str(reads)}, MINIWDL__CALL_CACHE__GET="false")
    assert len(submitted(h)) == 3


def test_a_rerun_after_a_failure_runs_only_the_failed_call(tmp_path):
    h = Harness(tmp_path)
    reads = tmp_path / "reads.txt"
    reads.write_text("A\n")
    h.start(PIPELINE, {"reads": str(reads), "fail": True}, call_cache=True)
    h.play(h.execute)
    answer = h.answer()
    assert answer is not None and answer[0] == "failure"
    entries = {json.dumps(e.data["task"]) for e in h.cache.entries.values()}
    assert entries == {'"stamp"', '"nothing"'}  # the failed call left no entry
    h.batch.jobs.clear()
    run(h, {"reads": str(reads), "fail": False})
    assert submitted(h) == ["call-finish"]


def test_reused_outputs_are_uploaded_with_s3upload(tmp_path):
    from miniwdl_serverless.controller.finish import finish_run

    h = Harness(tmp_path)
    reads = tmp_path / "reads.txt"
    reads.write_text("A\n")
    run(h, {"reads": str(reads)})
    h.start(PIPELINE, {"reads": str(reads)}, call_cache=True, s3upload="s3://results/")
    h.play(h.execute)
    result = finish_run({"result": {"run_id": h.run_id}}, h.run_id, h.ports)
    assert result["status"] == "succeeded"
    folder = result["outputs_json"].rsplit("/", 1)[0]
    assert result["outputs"]["w.first"] == f"{folder}/first/out.txt"  # from the first run
    assert h.ports.uploads.files[f"{folder}/first/out.txt"].startswith(str(tmp_path / "runs"))
