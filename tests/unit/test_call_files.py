"""core/call_files.py: an attempt's files under miniwdl's own names, and everything that
finds them (out/ links, the logs CLI, the failed call's stderr, -v's stderr streamer)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from miniwdl_serverless.cli.local_run import StderrStreamer
from miniwdl_serverless.cli.remote import log_path
from miniwdl_serverless.cli.report import _failed_stderr
from miniwdl_serverless.core import call_files, out_links


def test_miniwdls_names_for_each_attempt():
    assert [call_files.work_dir(a) for a in range(4)] == ["work", "work2", "work3", "work4"]
    assert call_files.streams(0) == ("stdout.txt", "stderr.txt")
    assert call_files.streams(1) == ("stdout2.txt", "stderr2.txt")
    assert call_files.stderr_txt(10) == "stderr11.txt"
    with pytest.raises(ValueError):
        call_files.work_dir(-1)


@pytest.mark.parametrize("attempt", [0, 1, 2, 9, 10, 99])
def test_a_name_gives_its_attempt_back(attempt):
    assert call_files.attempt_of_work_dir(call_files.work_dir(attempt)) == attempt
    assert call_files.stream_attempt(call_files.stdout_txt(attempt), "stdout") == attempt
    assert call_files.stream_attempt(call_files.stderr_txt(attempt), "stderr") == attempt


@pytest.mark.parametrize(
    "name", ["work0", "work1", "work01", "workers", "work2/", "Work", "attempt-0", ""]
)
def test_other_names_are_no_attempts(name):
    assert call_files.attempt_of_work_dir(name) is None
    assert call_files.stream_attempt(name + ".txt", "stderr") is None
    assert call_files.stream_attempt("stderr1.txt", "stderr") is None
    assert call_files.stream_attempt("stderr2.txt", "stdout") is None


def test_a_retrys_output_links_relative_to_its_own_work2():
    run = "/efs/runs/20260101_000000_w"
    assert out_links.relative_link(f"{run}/call-t/work2/sub/x.txt", run) == "sub/x.txt"
    assert out_links.relative_link(f"{run}/call-t/work12/x.txt", run) == "x.txt"
    assert out_links.relative_link(f"{run}/call-t/workers/x.txt", run) == "x.txt"  # its name


def test_logs_reads_the_newest_attempts_stream():
    assert log_path(None, False) == "workflow.log"
    first = SimpleNamespace(job_id="call-t", attempt=0)
    assert log_path(first, False) == "call-t/stderr.txt"
    assert log_path(first, True) == "call-t/stdout.txt"
    retried = SimpleNamespace(job_id="call-s/call-t-2", attempt=2)
    assert log_path(retried, False) == "call-s/call-t-2/stderr3.txt"
    assert log_path(retried, True) == "call-s/call-t-2/stdout3.txt"


def test_the_failed_attempts_stderr_is_the_one_its_error_names():
    run = "/efs/runs/r"
    error = {"cause": {"node": "call-t", "stderr_file": f"{run}/call-t/stderr2.txt"}}
    assert _failed_stderr(error, run, "call-t") == "call-t/stderr2.txt"
    elsewhere = {"cause": {"node": "call-t", "stderr_file": "/etc/passwd"}}
    assert _failed_stderr(elsewhere, run, "call-t") == "call-t/stderr.txt"
    up = {"cause": {"node": "call-t", "stderr_file": f"{run}/../other/stderr.txt"}}
    assert _failed_stderr(up, run, "call-t") == "call-t/stderr.txt"
    assert _failed_stderr(None, None, "call-t") == "call-t/stderr.txt"


def test_minus_v_streams_every_attempts_stderr(tmp_path):
    call = tmp_path / "call-t"
    call.mkdir()
    (call / "stderr.txt").write_text("try 1\n")
    (call / "stderr2.txt").write_text("try 2\n")
    (call / "stderr-not.txt").write_text("not a stream\n")
    printed: list[str] = []
    err = SimpleNamespace(write=printed.append, flush=lambda: None)
    StderrStreamer(lambda: str(tmp_path), err).poll()
    text = "".join(printed)
    assert "[call-t] try 1" in text and "[call-t] try 2" in text
    assert "not a stream" not in text
