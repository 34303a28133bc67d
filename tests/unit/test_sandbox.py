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


def test_bwrap_binds_inputs_read_only_over_a_tmpfs_and_the_call_read_write():
    call = "/runs/r/call-a"
    inside = f"{call}/work/_miniwdl_inputs/0/data.txt"
    argv = sandbox.bwrap_argv(
        call, {inside: "/home/u/data.txt"}, {"/usr": None, "/bin": "usr/bin"}, ["bash", "-c", "x"]
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
    argv = sandbox.bwrap_argv("/r/call-a", {}, {}, ["true"])
    assert "/r/call-a/work/_miniwdl_inputs" not in argv
