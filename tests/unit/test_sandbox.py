"""core/sandbox.py: which call a job's script runs, and the bubblewrap command confining it."""

from __future__ import annotations

import logging

from WDL.runtime.config import Loader

from miniwdl_serverless.controller.task_call import job_script
from miniwdl_serverless.core import arrays, sandbox


def test_the_call_directory_of_a_job_script_and_of_an_array_member():
    cfg = Loader(logging.getLogger("test"), [])
    assert sandbox.call_dir_of(job_script(cfg, "/runs/r 1/call-a")) == "/runs/r 1/call-a"
    members = arrays.members_script(["/runs/r/call-a", "/runs/r/call-b-1"])
    assert sandbox.call_dir_of(members, "1") == "/runs/r/call-b-1"
    assert sandbox.call_dir_of(members, "2") is None
    assert sandbox.call_dir_of("echo hi\ncd /x/work") is None
    assert sandbox.call_dir_of("") is None


def test_a_retrys_script_runs_in_its_own_work_directory():
    cfg = Loader(logging.getLogger("test"), [])
    script = job_script(cfg, "/runs/r 1/call-a", 1)
    assert script.startswith("cd '/runs/r 1/call-a/work2'\n")
    assert "exec 3>> ../stderr2.txt\n" in script and ">> ../stdout2.txt" in script
    assert "../command" in script  # one command file, the newest try's (as miniwdl's)
    assert sandbox.work_dir_of(script) == "/runs/r 1/call-a/work2"
    assert sandbox.call_dir_of(script) == "/runs/r 1/call-a"
    assert sandbox.work_dir_of(job_script(cfg, "/r/call-a", 9)) == "/r/call-a/work10"
    members = arrays.members_script(["/runs/r/call-a", "/runs/r/call-b-1"])
    assert sandbox.work_dir_of(members, "1") == "/runs/r/call-b-1/work"  # first tries only
    for other in ("cd /x/work0", "cd /x/work1", "cd /x/workers", "cd work2"):
        assert sandbox.work_dir_of(other) is None


def test_bwrap_binds_inputs_read_only_over_a_tmpfs_and_the_call_read_write():
    call = "/runs/r/call-a"
    inside = f"{call}/work/_miniwdl_inputs/0/data.txt"
    argv = sandbox.bwrap_argv(
        f"{call}/work",
        {inside: "/home/u/data.txt"},
        {"/usr": None, "/bin": "usr/bin"},
        ["bash", "-c", "x"],
    )
    text = " ".join(argv)
    assert "--ro-bind /usr /usr" in text and "--symlink usr/bin /bin" in text
    assert f"--bind {call} {call}" in text
    # the tmpfs hides the links; the bind that follows puts the input there, read-only
    assert text.index(f"--tmpfs {call}/work/_miniwdl_inputs") < text.index(
        f"--ro-bind /home/u/data.txt {inside}"
    )
    assert argv[-5:] == [f"{call}/work", "--", "bash", "-c", "x"]
    assert "--tmpfs /tmp" in text and "--share-net" in text
    assert "/home" not in text.replace("/home/u/data.txt", "")  # nothing else of the user's


def test_no_inputs_no_tmpfs_over_them():
    argv = sandbox.bwrap_argv("/r/call-a/work", {}, {}, ["true"])
    assert "/r/call-a/work/_miniwdl_inputs" not in argv


def test_a_retry_is_confined_to_its_call_and_runs_in_its_work2():
    call = "/runs/r/call-a"
    inside = f"{call}/work2/_miniwdl_inputs/0/data.txt"
    argv = sandbox.bwrap_argv(f"{call}/work2", {inside: "/home/u/data.txt"}, {}, ["true"])
    text = " ".join(argv)
    assert f"--bind {call} {call}" in text and f"--tmpfs {call}/work2/_miniwdl_inputs" in text
    assert argv[-3:] == [f"{call}/work2", "--", "true"]
