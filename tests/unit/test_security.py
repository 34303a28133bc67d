"""Issue 9: tasks can write anywhere on EFS (symlinks, FIFOs, huge files, swapped directories)
and submitters control the execution input, while the controller holds AWS credentials. It
must never read, write, follow, delete or echo anything outside the run it serves.

Each ``test_defect_NN_*`` reproduced its defect on the code before the fix. Confined mode
(a file system root other than ``/``, as on AWS) uses a directory of ``tmp_path`` as the EFS
root; local mode (root ``/``, the user's own machine) must keep working with any path.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.adapters.memory import MemoryStore
from miniwdl_serverless.controller import logs
from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.core import spill
from miniwdl_serverless.core.errors import BadSubmission, describe_exception
from miniwdl_serverless.core.options import parse_run_options, schema_problem
from miniwdl_serverless.core.records import RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED, Run

from .fake_s3 import RecordingS3
from .harness import Harness

NO_CALLS = """
version 1.0
workflow hello { output { Int x = 1 } }
"""

READS_ITS_INPUT = """
version 1.0
workflow peek {
  input { File f }
  String s = read_string(f)
  output { String out = s }
}
"""

SECRET = "AWS_SECRET_ACCESS_KEY=not-for-tasks-42"


def everything_said(harness: Harness) -> str:
    """What the controller told anyone about the run: its record, the answer, workflow.log."""
    run = harness.store.get_run(harness.run_id)
    text = json.dumps(run.as_dict() if run else None, default=str)
    text += json.dumps(harness.answer(), default=str)
    if run is not None and run.run_dir:
        log = Path(run.run_dir) / "workflow.log"
        text += log.read_text() if log.is_file() else ""
    return text


def finish(harness: Harness) -> dict[str, Any]:
    return finish_run({"result": {"run_id": harness.run_id}}, harness.run_id, harness.ports)


def finishes_within(call: Callable[[], Any], seconds: float, fifo: Path | None = None) -> Any:
    """``call()``'s result (or its exception, raised), failing if it does not return in time
    (a read blocked on a FIFO is released afterwards, so the test process can exit)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exn:  # handed to the test thread
            outcome["error"] = exn

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        raise AssertionError(f"still blocked after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


@pytest.fixture
def efs(tmp_path) -> Path:
    """An EFS root (confined mode, as /mnt/efs on AWS) with a data directory."""
    root = tmp_path / "efs"
    (root / "data").mkdir(parents=True)
    return root


# ---- 1: delete_after deletes only the run directory the run provisioned ----------------------


def test_defect_01_delete_after_only_deletes_the_provisioned_run_dir(tmp_path):
    existing = tmp_path / "data"
    existing.mkdir()
    (existing / "precious.txt").write_text("years of work\n")
    harness = Harness(tmp_path)
    harness.start(NO_CALLS, dir=f"{existing}/.", s3upload="s3://bucket/out/", delete_after="always")
    assert harness.run().status == RUN_SUCCEEDED and harness.run().run_dir == str(existing)
    assert finish(harness)["status"] == "succeeded"
    assert (existing / "precious.txt").read_text() == "years of work\n"
    assert "not deleting" in (existing / "workflow.log").read_text()


def test_delete_after_still_deletes_what_the_run_created(tmp_path):
    harness = Harness(tmp_path)
    harness.start(NO_CALLS, s3upload="s3://bucket/out/", delete_after="success")
    run_dir = Path(str(harness.run().run_dir))
    assert run_dir.is_dir() and harness.run().run_dir_created is True
    finish(harness)
    assert not run_dir.exists() and (tmp_path / "runs").is_dir()
    fresh = tmp_path / "fresh"  # an exact DIR/. that did not exist: the run made it
    harness.start(NO_CALLS, dir=f"{fresh}/.", s3upload="s3://bucket/out/", delete_after="always")
    assert harness.run().run_dir_created is True
    finish(harness)
    assert not fresh.exists()


def test_defect_01_the_efs_root_itself_is_never_deleted(tmp_path):
    efs = tmp_path / "efs"
    efs.mkdir()
    (efs / "other-run.txt").write_text("someone else's\n")
    harness = Harness(tmp_path, efs_root=efs)
    harness.start(NO_CALLS, dir=f"{efs}/.", s3upload="s3://bucket/out/", delete_after="always")
    finish(harness)
    assert (efs / "other-run.txt").read_text() == "someone else's\n"


@pytest.mark.parametrize("where", ["outside", "through a link", "dotdot"])
def test_defect_01_dir_outside_the_efs_root_is_refused(tmp_path, where):
    efs, outside = tmp_path / "efs", tmp_path / "outside"
    efs.mkdir()
    outside.mkdir()
    os.symlink(outside, efs / "link")
    given = {
        "outside": str(outside / "runs"),
        "through a link": str(efs / "link" / "runs"),
        "dotdot": f"{efs}/../outside/runs",
    }[where]
    harness = Harness(tmp_path, efs_root=efs)
    harness.start(NO_CALLS, dir=given)
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure"
    assert answer[1][0] == "InvalidSubmission" and "inside the EFS root" in answer[1][1]
    assert list(outside.iterdir()) == []


def test_local_mode_runs_in_any_dir(tmp_path):
    """Root '/': the user's own machine; a `dir` anywhere is theirs to use."""
    harness = Harness(tmp_path, efs_root="/")
    harness.start(NO_CALLS, dir=str(tmp_path / "anywhere" / "runs"))
    assert harness.run().status == RUN_SUCCEEDED
    assert str(harness.run().run_dir).startswith(str(tmp_path / "anywhere" / "runs") + "/")


# ---- 2: the controller's environment cannot be read --------------------------------------


def test_defect_02_an_input_outside_the_efs_root_is_refused(tmp_path, efs):
    harness = Harness(tmp_path, efs_root=efs)
    harness.start(READS_ITS_INPUT, {"f": "/proc/self/environ"}, dir=str(efs / "runs"))
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["error"] == "InputError"
    assert "/proc/self/environ" in run.error["message"] and "outside" in run.error["message"]
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode()
    assert environ not in everything_said(harness)


def test_defect_02_an_input_linked_out_of_the_efs_root_is_refused(tmp_path, efs):
    (tmp_path / "secret.txt").write_text(SECRET)
    os.symlink(tmp_path / "secret.txt", efs / "data" / "innocent.txt")
    harness = Harness(tmp_path, efs_root=efs)
    harness.start(READS_ITS_INPUT, {"f": str(efs / "data" / "innocent.txt")}, dir=str(efs))
    run = harness.run()
    assert run.status == RUN_FAILED and "outside" in run.error["message"]
    assert SECRET not in everything_said(harness)


def test_defect_02_a_workflow_outside_the_efs_root_is_refused_without_echoing_it(tmp_path, efs):
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    harness = Harness(tmp_path, efs_root=efs)
    harness.start("", workflow=str(tmp_path / "secret.txt"), workflow_source=None, dir=str(efs))
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure"
    assert answer[1][0] == "WorkflowNotFound" and "outside" in answer[1][1]
    assert SECRET not in everything_said(harness)
    harness.start("", workflow="/proc/self/environ", workflow_source=None, dir=str(efs))
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode()
    assert harness.answer()[1][0] == "WorkflowNotFound"
    assert environ not in everything_said(harness)


def test_defect_02_syntax_errors_name_the_position_not_the_content(tmp_path, efs):
    """A file inside the root that is not WDL: the error says where, never what."""
    (efs / "data" / "notes.txt").write_text("hello\n" + SECRET + "\n")
    harness = Harness(tmp_path, efs_root=efs)
    harness.start("", workflow=str(efs / "data" / "notes.txt"), workflow_source=None, dir=str(efs))
    answer = harness.answer()
    assert answer is not None and answer[1][0] == "SyntaxError"
    assert f"{efs}/data/notes.txt:1:1:" in answer[1][1]
    assert SECRET not in everything_said(harness) and "hello" not in answer[1][1]


def test_defect_02_syntax_errors_of_unexpected_characters_keep_the_content_out(tmp_path):
    import WDL

    with pytest.raises(WDL.Error.SyntaxError) as caught:
        WDL.parse_document("version 1.0\nworkflow w { " + SECRET + " }\n")
    info = describe_exception(caught.value)
    assert info["message"].startswith("(buffer):2:") and "syntax error" in info["message"]
    assert "not-for-tasks-42" not in json.dumps(info)


@pytest.mark.parametrize(
    "key",
    [
        "FILE_IO__ALLOW_ANY_INPUT",
        "MINIWDL__FILE_IO__ALLOW_ANY_INPUT",
        "FILE_IO__ROOT",
    ],
)
def test_defect_02_a_submission_cannot_widen_file_access(tmp_path, efs, key):
    data = {"workflow_source": NO_CALLS, "config": {key: "true"}}
    problem = schema_problem(data)  # the S3 drop refuses it too, before starting anything
    assert problem is not None and key in problem and "cannot be set" in problem
    with pytest.raises(BadSubmission, match=key):
        parse_run_options(data)
    leak = """
version 1.0
workflow leak {
  File f = "/proc/self/environ"
  output { String s = read_string(f) }
}
"""
    harness = Harness(tmp_path, efs_root=efs)
    harness.start(leak, config={key: "true"}, dir=str(efs))
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure" and answer[1][0] == "InvalidSubmission"
    assert key in answer[1][1]


COPIES_ITS_INPUT = """
version 1.0
workflow copies {
  input { File f  String host_path  String secret }
  call swap { input: target = host_path, secret = secret }
  call use { input: f = f, after = swap.done }
  output { String s = use.s }
}
task swap {
  input { String target  String secret }
  command <<< rm -f "~{target}"; ln -s "~{secret}" "~{target}"; echo done >>>
  output { String done = read_string(stdout()) }
}
task use {
  input { File f  String after }
  command <<< cat ~{f} >>>
  output { String s = read_string(stdout()) }
}
"""


def test_defect_02_copy_input_files_never_copies_from_outside_the_efs_root(tmp_path, efs):
    """An input inside the root at the start that a task swaps for a link to outside: the copy
    in Lambda (copy_input_files) refuses it."""
    (tmp_path / "secret.txt").write_text(SECRET)
    data = efs / "data" / "in.txt"
    data.write_text("ok\n")
    harness = Harness(tmp_path, efs_root=efs)
    inputs = {"f": str(data), "host_path": str(data), "secret": str(tmp_path / "secret.txt")}
    harness.start(COPIES_ITS_INPUT, inputs, dir=str(efs / "runs"), copy_input_files=True)
    harness.play(harness.execute)
    run = harness.run()
    assert run.status == RUN_FAILED and "outside" in run.error["message"]
    copied = [
        p for p in efs.rglob("*") if p.is_file() and not p.is_symlink() and SECRET in p.read_text()
    ]
    assert copied == [] and SECRET not in everything_said(harness)


def test_local_mode_reads_inputs_anywhere(tmp_path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "elsewhere.txt"
    elsewhere.write_text("mine\n")
    harness = Harness(tmp_path, efs_root="/")
    harness.start(READS_ITS_INPUT, {"f": str(elsewhere)})
    assert harness.outputs() == {"peek.out": "mine"}


# ---- 3: the logs function resolves from the EFS root, never through a link ---------------


@pytest.fixture
def logs_run(tmp_path, monkeypatch):
    efs = tmp_path / "efs"
    run_dir = efs / "miniwdl_run" / "20260101_000000_w"
    run_dir.mkdir(parents=True)
    (run_dir / "workflow.log").write_text("started\n")
    monkeypatch.setenv("MSLS_EFS_ROOT", str(efs))
    store = MemoryStore()
    store.put_run(Run("logs-run", run_dir=str(run_dir), status=RUN_RUNNING))
    return store, run_dir


def test_defect_03_logs_never_follow_a_run_dir_swapped_for_a_symlink(logs_run):
    store, run_dir = logs_run
    os.rename(run_dir, str(run_dir) + ".old")
    os.symlink("/", run_dir)  # a task swaps the run directory for a link to /
    result = logs.read_run_file({"run_id": "logs-run", "path": "proc/self/environ"}, store)
    assert result["error"] == "Forbidden" and "data" not in result
    result = logs.read_run_file({"run_id": "logs-run", "path": "etc/hostname"}, store)
    assert "data" not in result


def test_defect_03_logs_never_follow_a_parent_swapped_for_a_symlink(logs_run, tmp_path):
    store, run_dir = logs_run
    elsewhere = tmp_path / "elsewhere" / run_dir.name
    elsewhere.mkdir(parents=True)
    (elsewhere / "workflow.log").write_text(SECRET)
    parent = run_dir.parent
    os.rename(parent, str(parent) + ".old")
    os.symlink(tmp_path / "elsewhere", parent)
    result = logs.read_run_file({"run_id": "logs-run"}, store)
    assert result["error"] == "Forbidden" and SECRET not in json.dumps(result)


def test_logs_still_serve_the_run(logs_run):
    store, _ = logs_run
    assert logs.read_run_file({"run_id": "logs-run"}, store)["data"] == "started\n"


def test_defect_03_a_run_dir_outside_the_efs_root_is_not_served(logs_run, tmp_path):
    store, _ = logs_run
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "workflow.log").write_text(SECRET)
    store.put_run(Run("outside-run", run_dir=str(tmp_path / "other"), status=RUN_RUNNING))
    result = logs.read_run_file({"run_id": "outside-run"}, store)
    assert result["error"] == "Forbidden" and SECRET not in json.dumps(result)


# ---- 4: controller writes never follow a planted symlink ---------------------------------


@pytest.fixture
def planted(tmp_path):
    """An EFS root with a run directory, and a file and a directory outside it."""
    efs = tmp_path / "efs"
    run_dir = efs / "runs" / "r"
    (run_dir / "call-t").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched\n")
    return EfsRunFiles(str(efs)), run_dir, outside


def _unchanged(outside: Path) -> bool:
    return (outside / "victim.txt").read_text() == "untouched\n" and sorted(
        p.name for p in outside.iterdir()
    ) == ["victim.txt"]


def _plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def test_defect_04_write_json_never_writes_through_a_planted_tmp_link(planted):
    files, run_dir, outside = planted
    _plant(run_dir / "outputs.json.tmp", outside / "victim.txt")  # the old fixed temp name
    files.write_json(str(run_dir / "outputs.json"), {"w.x": 1})
    assert json.loads((run_dir / "outputs.json").read_text()) == {"w.x": 1}
    assert _unchanged(outside)


def test_defect_04_a_spill_never_writes_through_a_planted_tmp_link(planted):
    files, run_dir, outside = planted
    state = run_dir / ".state"
    _plant(state / "big.json.tmp", outside / "victim.txt")
    stored = files.store_value({"xs": list(range(20_000))}, str(state), "big")
    assert spill.is_pointer(stored) and files.load_value(stored)["xs"][-1] == 19_999
    assert _unchanged(outside)


@pytest.mark.parametrize("name", ["outputs.json", "workflow.log"])
def test_defect_04_a_link_at_the_target_is_refused(planted, name):
    files, run_dir, outside = planted
    _plant(run_dir / name, outside / "victim.txt")
    with pytest.raises(OSError):
        if name == "outputs.json":
            files.write_json(str(run_dir / name), {"w.x": 1})
        else:
            files.append_log(str(run_dir / name), "a line\n")
    assert _unchanged(outside)


@pytest.mark.parametrize("name", ["command", "stdout.txt", "stderr.txt"])
def test_defect_04_a_link_planted_at_a_calls_file_is_replaced_never_written_through(planted, name):
    files, run_dir, outside = planted
    call = run_dir / "call-t"
    _plant(call / name, outside / "victim.txt")
    files.prepare_call(str(call), "echo hi", {}, copy_inputs=False)
    assert _unchanged(outside) and not (call / name).is_symlink()
    assert (call / name).read_text() == ("echo hi" if name == "command" else "")


def test_defect_04_the_copy_destination_is_never_written_through_a_link(planted, tmp_path):
    files, run_dir, outside = planted
    source = run_dir.parent / "input.txt"
    source.write_text("input data\n")
    inside = run_dir / "call-t" / "work" / "_miniwdl_inputs" / "0" / "input.txt"
    _plant(inside, outside / "victim.txt")
    files.prepare_call(str(run_dir / "call-t"), "cat", {str(source): str(inside)}, True)
    assert inside.read_text() == "input data\n" and not inside.is_symlink()
    assert _unchanged(outside)


def test_defect_04_a_parent_directory_swapped_for_a_link_is_never_followed(planted):
    files, run_dir, outside = planted
    os.rename(run_dir / "call-t", run_dir / "call-t.old")
    os.symlink(outside, run_dir / "call-t")
    with pytest.raises(OSError):
        files.prepare_call(str(run_dir / "call-t"), "echo hi", {}, copy_inputs=False)
    with pytest.raises(OSError):
        files.write_json(str(run_dir / "call-t" / "x.json"), {})
    with pytest.raises(OSError):
        files.append_log(str(run_dir / "call-t" / "workflow.log"), "line\n")
    assert _unchanged(outside)
    os.rename(run_dir, str(run_dir) + ".moved")  # the run directory itself, swapped
    os.symlink(outside, run_dir)
    with pytest.raises(OSError):
        files.write_json(str(run_dir / "outputs.json"), {})
    with pytest.raises(OSError):
        files.store_value({"xs": list(range(20_000))}, str(run_dir / ".state"), "big")
    assert _unchanged(outside)


@pytest.mark.parametrize("name", ["work2", "stdout2.txt", "stderr2.txt", "command"])
def test_defect_04_a_retry_never_follows_what_the_first_try_planted(planted, name):
    """Try 1's task plants ``work2 -> outside`` (or a retry's stream, or ``command``) before
    try 2 is prepared: the link itself is replaced; nothing outside is read or written."""
    files, run_dir, outside = planted
    call = run_dir / "call-t"
    files.prepare_call(str(call), "echo hi", {}, copy_inputs=False)
    if name == "command":
        (call / name).unlink()
    _plant(call / name, outside if name == "work2" else outside / "victim.txt")
    source = run_dir.parent / "input.txt"
    source.write_text("input data\n")
    inside = call / "work2" / "_miniwdl_inputs" / "0" / "input.txt"
    files.prepare_call(str(call), "echo again", {str(source): str(inside)}, True, attempt=1)
    assert _unchanged(outside)
    assert (call / "work2").is_dir() and not (call / "work2").is_symlink()
    assert inside.read_text() == "input data\n" and not inside.is_symlink()
    for stream in ("stdout2.txt", "stderr2.txt"):
        assert not (call / stream).is_symlink() and (call / stream).read_text() == ""
    assert (call / "command").read_text() == "echo again"
    assert (call / "stdout.txt").read_text() == "" and (call / "work").is_dir()  # try 1's


def test_defect_04_links_planted_among_a_retrys_inputs_are_gone_before_it_runs(planted):
    """Try 1's task makes ``work2/_miniwdl_inputs/0/secret -> outside`` (the local sandbox
    binds every link there read-only): preparing try 2 makes that folder afresh."""
    files, run_dir, outside = planted
    call = run_dir / "call-t"
    files.prepare_call(str(call), "echo hi", {}, copy_inputs=False)
    _plant(call / "work2" / "_miniwdl_inputs" / "0" / "secret", outside)
    source = run_dir.parent / "input.txt"
    source.write_text("input data\n")
    inside = call / "work2" / "_miniwdl_inputs" / "0" / "input.txt"
    files.prepare_call(str(call), "cat", {str(source): str(inside)}, False, attempt=1)
    assert sorted(p.name for p in inside.parent.iterdir()) == ["input.txt"]
    assert os.readlink(inside) == str(source) and _unchanged(outside)


def test_defect_04_delete_never_follows_a_link_on_the_way(planted):
    files, run_dir, outside = planted
    (outside / "r").mkdir()
    os.rename(run_dir.parent, str(run_dir.parent) + ".old")
    os.symlink(outside, run_dir.parent)  # runs/ → outside: runs/r is outside/r
    with pytest.raises(OSError):
        files.remove_tree(str(run_dir))
    assert (outside / "r").is_dir()


# ---- 5: reads of task-writable files are bounded and never hang --------------------------


def test_defect_05_a_spill_file_swapped_for_a_fifo_does_not_hang(planted):
    files, run_dir, _ = planted
    stored = files.store_value({"xs": list(range(20_000))}, str(run_dir / ".state"), "big")
    path = Path(stored[spill.SPILL_KEY])
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(OSError, match="not a regular file"):
        finishes_within(lambda: files.load_value(stored), 5, fifo=path)


def test_defect_05_a_huge_spill_file_is_refused_unread(planted):
    files, run_dir, _ = planted
    stored = files.store_value({"xs": list(range(20_000))}, str(run_dir / ".state"), "big")
    with open(stored[spill.SPILL_KEY], "r+b") as outfile:
        outfile.truncate(spill.MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(OSError, match="larger than"):
        files.load_value(stored)


def test_defect_05_a_bundle_swapped_for_a_fifo_does_not_hang(planted):
    files, run_dir, _ = planted
    bundle = run_dir / "wdl" / "bundle.json"
    bundle.parent.mkdir()
    os.mkfifo(bundle)
    with pytest.raises(OSError, match="not a regular file"):
        finishes_within(lambda: files.read_text(str(bundle)), 5, fifo=bundle)


def test_a_bundle_linked_to_a_device_is_refused(planted):
    files, run_dir, _ = planted
    bundle = run_dir / "wdl" / "bundle.json"
    _plant(bundle, Path("/dev/zero"))
    with pytest.raises(OSError):
        finishes_within(lambda: files.read_text(str(bundle)), 5)


def test_defect_05_a_log_swapped_for_a_fifo_does_not_hang_the_logs_function(logs_run):
    store, run_dir = logs_run
    (run_dir / "workflow.log").unlink()
    os.mkfifo(run_dir / "workflow.log")
    result = finishes_within(
        lambda: logs.read_run_file({"run_id": "logs-run"}, store), 5, fifo=run_dir / "workflow.log"
    )
    assert result["error"] == "Forbidden"


FIFO_OUTPUT = """
version 1.0
task fifo {
  command <<< mkfifo out.txt >>>
  output { String s = read_string("out.txt") }
}
"""


def test_a_task_output_that_is_a_fifo_fails_the_attempt_without_hanging(tmp_path):
    harness = Harness(tmp_path)
    harness.start(FIFO_OUTPUT, task="fifo")
    (job,) = harness.open_jobs()
    harness.execute(job)
    fifo = next((tmp_path / "runs").glob("*/call-fifo/work/out.txt"))
    finishes_within(lambda: harness.event(job, "SUCCEEDED", 0), 10, fifo=fifo)
    assert harness.run().status == RUN_FAILED


SWAPS_FOR_A_FIFO = """
version 1.0
workflow swaps {
  input { File f  String host_path }
  call swap { input: target = host_path }
  String s = if swap.done then read_string(f) else ""
  output { String out = s }
}
task swap {
  input { String target }
  command <<< rm -f "~{target}"; mkfifo "~{target}" >>>
  output { Boolean done = true }
}
"""


def test_defect_05_an_input_swapped_for_a_fifo_does_not_hang_a_workflow_level_read(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("ok\n")
    harness = Harness(tmp_path)
    harness.start(SWAPS_FOR_A_FIFO, {"f": str(data), "host_path": str(data)})
    (job,) = harness.open_jobs()
    harness.event(job, "RUNNING")
    harness.execute(job)
    finishes_within(lambda: harness.event(job, "SUCCEEDED", 0), 10, fifo=data)
    run = harness.run()
    assert run.status == RUN_FAILED and "not a regular file" in run.error["message"]


BIG_STDOUT = """
version 1.0
task big {
  command <<< head -c 5000 /dev/zero | tr '\\0' x >>>
  output { String s = read_string(stdout()) }
}
"""


def test_defect_05_reading_stdout_is_bounded_by_a_setting(tmp_path):
    harness = Harness(tmp_path)
    harness.start(BIG_STDOUT, task="big", config={"SERVERLESS__READ_LIMIT": "4096"})
    harness.play(harness.execute)
    run = harness.run()
    assert run.status == RUN_FAILED and "larger than 4096 bytes" in run.error["message"]
    harness.start(BIG_STDOUT, task="big")  # the default limit is far larger
    harness.play(harness.execute)
    assert harness.outputs() == {"big.s": "x" * 5000}


SWAPS_AN_INPUT = """
version 1.0
workflow swaps {
  input { File f  String host_path  String secret }
  call swap { input: target = host_path, secret = secret }
  String s = if swap.done then read_string(f) else ""
  output { String out = s }
}
task swap {
  input { String target  String secret }
  command <<< rm -f "~{target}"; ln -s "~{secret}" "~{target}" >>>
  output { Boolean done = true }
}
"""


def test_defect_05_a_workflow_level_read_never_follows_an_input_swapped_out(tmp_path, efs):
    """read_string in Lambda of an input a task swapped for a link to outside the root."""
    (tmp_path / "secret.txt").write_text(SECRET)
    data = efs / "data" / "in.txt"
    data.write_text("ok\n")
    harness = Harness(tmp_path, efs_root=efs)
    inputs = {"f": str(data), "host_path": str(data), "secret": str(tmp_path / "secret.txt")}
    harness.start(SWAPS_AN_INPUT, inputs, dir=str(efs / "runs"))
    harness.play(harness.execute)
    run = harness.run()
    assert run.status == RUN_FAILED and "outside" in run.error["message"]
    assert SECRET not in everything_said(harness)


# ---- 11: concurrent deliveries of one success with spilled outputs -----------------------

LARGE_OUTPUTS = """
version 1.0
task large {
  command <<< true >>>
  output { Array[Int] xs = range(10000) }
}
"""


def test_defect_11_concurrent_deliveries_of_a_success_with_spilled_outputs_both_succeed(
    tmp_path, monkeypatch
):
    harness = Harness(tmp_path)
    harness.start(LARGE_OUTPUTS, task="large")
    (job,) = harness.open_jobs()
    harness.event(job, "RUNNING")
    # both deliveries have written their spill file before either renames it into place
    barrier, replace = threading.Barrier(2, timeout=5), os.replace
    passed = threading.Event()

    def replace_together(*args: Any, **kwargs: Any) -> None:
        if ".state" in str(args[0]) or kwargs.get("src_dir_fd") is not None:
            if not passed.is_set():
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
                passed.set()
        replace(*args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_together)
    detail = harness.detail(job, "SUCCEEDED", 0, "Essential container in task exited")
    from miniwdl_serverless.controller.advance import on_batch_event

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(on_batch_event(detail, harness.ports)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    run = harness.run()
    assert run.status == RUN_SUCCEEDED, run.error
    assert harness.outputs()["large.xs"] == list(range(10000))


# ---- noticed: uploads read what they upload the same way -------------------------------------


def test_uploads_never_read_outside_the_efs_root_nor_a_fifo(tmp_path, efs):
    from miniwdl_serverless.adapters.s3 import S3Uploads

    (tmp_path / "secret.txt").write_text(SECRET)
    (efs / "data" / "out.txt").write_text("result\n")
    os.symlink(tmp_path / "secret.txt", efs / "data" / "swapped.txt")
    os.mkfifo(efs / "data" / "fifo.txt")
    client = RecordingS3()
    uploads = S3Uploads(client, root=str(efs))
    uploads.upload_file(str(efs / "data" / "out.txt"), "s3://b/out.txt")
    for path in ("/proc/self/environ", efs / "data" / "swapped.txt", efs / "data" / "fifo.txt"):
        with pytest.raises(OSError):
            finishes_within(lambda p=path: uploads.upload_file(str(p), "s3://b/x"), 5)
    assert client.bodies == {"s3://b/out.txt": b"result\n"}


def test_finish_keeps_an_output_it_refuses_to_upload_as_a_path(tmp_path, monkeypatch):
    """An output swapped after Finish checked it: not uploaded, not renamed to a URI."""
    harness = Harness(tmp_path)
    harness.start(
        """
version 1.0
task t { command <<< echo hi > out.txt >>> output { File f = "out.txt" } }
""",
        task="t",
        s3upload="s3://bucket/out/",
    )
    harness.play(harness.execute)

    def refuse(path: str, uri: str) -> None:
        raise OSError(f"not a regular file: {path}")

    monkeypatch.setattr(harness.ports.uploads, "upload_file", refuse)
    result = finish(harness)
    assert result["status"] == "succeeded"
    assert result["outputs"]["t.f"].startswith(str(harness.run().run_dir))


def test_the_python_3_10_tree_removal_follows_no_link_either(tmp_path):
    """safe_fs.remove_tree_at stands in for shutil.rmtree(dir_fd=) before Python 3.11."""
    from miniwdl_serverless.core import safe_fs

    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    tree = tmp_path / "efs" / "run"
    (tree / "call-t" / "work").mkdir(parents=True)
    (tree / "call-t" / "work" / "out.txt").write_text("x")
    os.symlink(outside, tree / "call-t" / "work" / "link")
    with safe_fs.directory(str(tmp_path / "efs"), str(tmp_path / "efs")) as fd:
        safe_fs.remove_tree_at(fd, "run")
    assert not tree.exists() and (outside / "keep").is_dir()
