"""The read-only logs function: the tail of a file inside one run's directory, and nothing
outside it (absolute paths, '..', symlinks planted by a task)."""

from __future__ import annotations

import os

import pytest

from miniwdl_serverless.controller import logs
from miniwdl_serverless.core.records import RUN_RUNNING, Run
from miniwdl_serverless.local.embedded import FakeContext


@pytest.fixture
def run_dir(embedded, tmp_path):
    directory = tmp_path / "20260101_000000_w"
    (directory / "call-t").mkdir(parents=True)
    (directory / "workflow.log").write_text("".join(f"line {i}\n" for i in range(100)))
    (directory / "call-t" / "stderr.txt").write_text("oops\n")
    (tmp_path / "secret.txt").write_text("not yours\n")
    os.symlink(
        tmp_path / "secret.txt", directory / "call-t" / "stdout.txt"
    )  # a task's escape attempt
    os.symlink(tmp_path, directory / "call-t" / "up")
    embedded.store.put_run(Run("logs-run-1", run_dir=str(directory), status=RUN_RUNNING))
    return directory


def invoke(embedded, **event):
    return embedded.handlers["LogsFunction"](event, FakeContext("LogsFunction"))


def test_tail_and_offsets(embedded, run_dir):
    size = (run_dir / "workflow.log").stat().st_size
    tail = invoke(embedded, run_id="logs-run-1", tail_bytes=16)
    assert tail == {
        "path": "workflow.log",
        "size": size,
        "offset": size - 16,
        "next_offset": size,
        "data": "line 98\nline 99\n",
    }
    head = invoke(embedded, run_id="logs-run-1", offset=0, max_bytes=14)
    assert head["data"] == "line 0\nline 1\n" and head["next_offset"] == 14
    assert invoke(embedded, run_id="logs-run-1", offset=size)["data"] == ""
    assert invoke(embedded, run_id="logs-run-1", path="call-t/stderr.txt")["data"] == "oops\n"


@pytest.mark.parametrize(
    "path, error",
    [
        ("../secret.txt", "Forbidden"),
        ("/etc/passwd", "Forbidden"),
        ("call-t/stdout.txt", "Forbidden"),  # symlink to outside
        ("call-t/up/secret.txt", "Forbidden"),  # through a symlinked directory
        ("call-t", "Forbidden"),  # not a regular file
        ("call-t/missing.txt", "NotFound"),
    ],
)
def test_refuses_anything_outside_the_run(embedded, run_dir, path, error):
    result = invoke(embedded, run_id="logs-run-1", path=path)
    assert result["error"] == error, result
    assert "data" not in result


def test_unknown_run_and_bad_requests(embedded, run_dir):
    assert invoke(embedded, run_id="no-such-run")["error"] == "NotFound"
    assert invoke(embedded)["error"] == "BadRequest"
    assert invoke(embedded, run_id="logs-run-1", tail_bytes=-1)["error"] == "BadRequest"


def test_path_in_run_is_pure_path_logic(tmp_path):
    root = str(tmp_path)
    run_dir = f"{root}/runs/r"
    assert logs.path_in_run(run_dir, "a/./b.txt", root) == f"{run_dir}/a/b.txt"
    for path in ("a/../b.txt", "../b.txt", "/etc/passwd", ""):
        with pytest.raises(logs.LogsRefused):
            logs.path_in_run(run_dir, path, root)
    with pytest.raises(logs.LogsRefused):
        logs.path_in_run("/elsewhere/r", "workflow.log", root)


def test_a_directory_swapped_for_a_symlink_after_the_check_is_refused(
    embedded, run_dir, tmp_path, monkeypatch
):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "stderr.txt").write_text("not yours either\n")
    checked = logs.path_in_run

    def check_then_swap(run: str, path: str, root: str) -> str:
        target = checked(run, path, root)  # the check passes on the real directory...
        os.rename(
            run_dir / "call-t", run_dir / "call-t.old"
        )  # ...then a task swaps it for a symlink
        os.symlink(tmp_path / "elsewhere", run_dir / "call-t")
        return target

    monkeypatch.setattr(logs, "path_in_run", check_then_swap)
    result = invoke(embedded, run_id="logs-run-1", path="call-t/stderr.txt")
    assert result["error"] == "Forbidden" and "data" not in result
