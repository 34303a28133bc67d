"""Input localization on the harness: URI inputs downloaded into the download cache before the
calls that need them, in Lambda or (large) by Batch download jobs whose end lets the waiting
calls go; a failed download fails the run naming the URI; a cached copy a task changed is
downloaded again; a waiter nobody told is resubmitted by the reconciler."""

from __future__ import annotations

import json
from pathlib import Path

from miniwdl_serverless.adapters.memory import SubmittedJob
from miniwdl_serverless.core.localizing import DOWNLOAD_TAG
from tests.unit.harness import Harness, Outcome

TASK = """
version 1.2
task count {
  input { File f  Directory? d }
  command <<<
    wc -l < ~{f} | tr -d ' '
    ~{if defined(d) then "ls " + d + " > d.txt" else "touch d.txt"}
  >>>
  output { Int lines = read_int(stdout())  Array[String] d_files = read_lines("d.txt") }
}
"""
SCATTER = (
    TASK
    + """
workflow w {
  input { File f  Array[Int] shards = [1, 2, 3] }
  scatter (i in shards) { call count { input: f = f } }
  output { Array[Int] lines = count.lines }
}
"""
)
ONE = TASK + "workflow w { input { File f  Directory? d }  call count { input: f = f, d = d } }"
SMALL = 100  # the Lambda downloads up to this many bytes in the tests below
URI = "s3://data/reads.txt"


def options(tmp_path: Path, limit: int = SMALL) -> dict:
    return {
        "config": {
            "MINIWDL__DOWNLOAD_CACHE__DIR": "cache",  # relative: under the file system's root
            "MINIWDL__SERVERLESS__LAMBDA_DOWNLOAD_LIMIT": str(limit),
        }
    }


def download_jobs(h: Harness) -> list[SubmittedJob]:
    return [j for j in h.open_jobs() if DOWNLOAD_TAG in j.submission.tags]


def task_jobs(h: Harness) -> list[SubmittedJob]:
    return [j for j in h.open_jobs() if DOWNLOAD_TAG not in j.submission.tags]


def downloads(h: Harness):
    """A behaviour: what ``aws s3 cp`` (or curl) does, writing the objects to the target."""

    def run(job: SubmittedJob) -> Outcome:
        command = job.submission.command or []
        if DOWNLOAD_TAG not in job.submission.tags:
            return h.execute(job)
        uri, target = (command[-2], command[-1]) if command[0] == "s3" else command[-1:-3:-1]
        if "--recursive" in command:
            for name, data in h.remotes.objects.items():
                if name.startswith(uri):
                    path = Path(target) / name[len(uri) :]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_bytes(h.remotes.objects[uri])
        return ("SUCCEEDED", 0, "Essential container in task exited")

    return run


def test_a_small_input_is_downloaded_in_lambda_once_for_every_shard(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"a\nb\n")
    h.start(SCATTER, {"w.f": URI}, **options(tmp_path))
    assert not download_jobs(h) and len(task_jobs(h)) == 3
    h.play(h.execute)
    assert h.outputs() == {"w.lines": [2, 2, 2]}
    assert h.remotes.fetches == {URI: 1}
    assert h.remotes.probes[URI] == 2  # at start, then once for the three shards
    cached = list((tmp_path / "cache" / "files" / "s3" / "data").rglob("reads.txt"))
    assert len(cached) == 1 and cached[0].read_bytes() == b"a\nb\n"


def test_a_large_input_is_downloaded_by_one_batch_job_before_any_shard_runs(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"x\n" * 100)  # 200 bytes: over the limit
    h.start(SCATTER, {"w.f": URI}, **options(tmp_path))
    (job,) = h.open_jobs()  # the download, and no task yet
    command = job.submission.command
    assert command is not None and command[:2] == ["s3", "cp"] and URI in command
    assert job.submission.image.startswith("public.ecr.aws/aws-cli/aws-cli")
    assert all(h.job(f"call-count-{i}-{i + 1}").batch_job_id is None for i in range(3))
    h.play(downloads(h))
    assert h.outputs() == {"w.lines": [100, 100, 100]}
    assert h.remotes.fetches == {}  # the Lambda fetched nothing itself
    assert h.metrics.counts["DownloadJobsSubmitted"] == 1
    log = (Path(h.run().run_dir) / "workflow.log").read_text()
    assert "as a Batch job" in log and "waiting for" in log


def test_a_second_run_waits_for_the_first_ones_download_job(tmp_path):
    first = Harness(tmp_path)
    first.remotes.put(URI, b"x\n" * 100)
    first.start(ONE, {"w.f": URI}, **options(tmp_path))
    second = Harness(tmp_path)
    second.store, second.cache, second.batch, second.remotes = (
        first.store,
        first.cache,
        first.batch,
        first.remotes,
    )
    second.ports = first.ports
    second.start(ONE, {"w.f": URI}, **options(tmp_path))
    assert len(download_jobs(first)) == 1 and not task_jobs(first)  # one download for both
    first.play(downloads(first))
    for run_id in (first.run_id, second.run_id):
        run = first.store.get_run(run_id)
        assert run is not None and run.status == "succeeded", run_id


def test_an_s3_prefix_is_a_directory_input(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"1\n")
    h.remotes.put("s3://data/refs/a.txt", b"a")
    h.remotes.put("s3://data/refs/sub/b.txt", b"b")
    h.start(ONE, {"w.f": URI, "w.d": "s3://data/refs/"}, **options(tmp_path))
    h.play(h.execute)
    assert h.outputs()["w.count.d_files"] == ["a.txt", "sub"]
    call_dir = Path(h.run().run_dir) / "call-count"
    sources = json.loads((call_dir / "downloads.json").read_text())
    assert sorted(s["uri"] for s in sources.values()) == ["s3://data/reads.txt", "s3://data/refs"]


def test_a_failed_download_job_fails_the_run_naming_the_uri_and_the_reason(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"x\n" * 100)
    h.start(SCATTER, {"w.f": URI}, **options(tmp_path))
    (job,) = h.open_jobs()
    h.event(job, "FAILED", 1, "Essential container in task exited")
    answer = h.answer()
    assert answer is not None and answer[0] == "failure"
    run = h.run()
    assert run.status == "failed" and not task_jobs(h)
    text = json.dumps(run.error)
    assert URI in text and "the download job failed" in text and "DownloadError" in text


def test_a_missing_object_fails_the_run_at_start_before_any_job(tmp_path):
    h = Harness(tmp_path)
    result = h.start(ONE, {"w.f": "s3://data/none.txt"}, **options(tmp_path))
    assert result.get("failed") == "DownloadError"
    assert not h.batch.jobs
    assert "s3://data/none.txt (no such object (404))" in h.run().error["message"]


def test_a_cached_copy_changed_by_a_task_is_downloaded_again(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"a\nb\n")
    h.start(ONE, {"w.f": URI}, **options(tmp_path))
    h.play(h.execute)
    (cached,) = (tmp_path / "cache").rglob("reads.txt")
    cached.write_bytes(b"tampered\n")  # any task may write on EFS
    h.start(ONE, {"w.f": URI}, **options(tmp_path))
    h.play(h.execute)
    assert h.outputs()["w.count.lines"] == 2
    assert h.remotes.fetches == {URI: 2}


def test_a_changed_object_is_downloaded_again_beside_the_old_version(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"a\n")
    h.start(ONE, {"w.f": URI}, **options(tmp_path))
    h.play(h.execute)
    h.remotes.put(URI, b"a\nb\nc\n")
    h.start(ONE, {"w.f": URI}, **options(tmp_path))
    h.play(h.execute)
    assert h.outputs()["w.count.lines"] == 3
    assert len(list((tmp_path / "cache").rglob("reads.txt"))) == 2


def test_a_waiter_never_told_is_resubmitted_by_the_reconciler(tmp_path, monkeypatch):
    from miniwdl_serverless.controller import localize

    h = Harness(tmp_path)
    h.remotes.put(URI, b"x\n" * 100)
    h.start(ONE, {"w.f": URI}, **options(tmp_path))
    (job,) = h.open_jobs()

    def lost(*args, **kwargs):
        raise RuntimeError("the invocation died while telling")

    monkeypatch.setattr(localize, "_tell", lost)
    h.event(job, "RUNNING")
    h.event(job, *downloads(h)(job))  # settled, but its waiter was never told
    assert not task_jobs(h) and h.job("call-count").batch_job_id is None
    monkeypatch.undo()
    h.reconcile()
    (task,) = task_jobs(h)
    h.play(h.execute)
    assert h.outputs()["w.count.lines"] == 100


INNER = (
    TASK
    + """
workflow inner {
  input { File g }
  call count { input: f = g }
  output { Int lines = count.lines }
}
"""
)
OUTER = """
version 1.2
import "inner.wdl"
workflow w {
  call inner.inner { input: g = "s3://data/reads.txt" }
  output { Int lines = inner.lines }
}
"""


def test_a_uri_in_a_sub_workflow_call_is_downloaded(tmp_path):
    h = Harness(tmp_path)
    h.remotes.put(URI, b"1\n2\n3\n")
    (tmp_path / "inner.wdl").write_text(INNER)
    (tmp_path / "outer.wdl").write_text(OUTER)
    h.start(str(tmp_path / "outer.wdl"), **options(tmp_path))
    h.play(h.execute)
    assert h.outputs() == {"w.lines": 3}
    assert h.remotes.fetches == {URI: 1}


def test_a_download_cache_outside_the_root_is_refused_before_anything(tmp_path):
    h = Harness(tmp_path, efs_root=tmp_path / "efs")
    (tmp_path / "efs").mkdir()
    h.root = str(tmp_path / "efs" / "runs")
    h.remotes.put(URI, b"1\n")
    config = {"MINIWDL__DOWNLOAD_CACHE__DIR": str(tmp_path / "elsewhere")}
    result = h.start(ONE, {"w.f": URI}, config=config)
    assert result.get("failed") == "InvalidSubmission"
    assert "download_cache" in h.run().error["message"] and not h.batch.jobs
