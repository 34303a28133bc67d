"""Hostile tasks (issue 9): a task, run with bash on real files under a confined EFS root,
plants a link (to a file or directory outside the root, to /proc/self/environ, to the runs'
parent, to /dev/zero), a FIFO, an oversized sparse file or a directory at every place the
controller reads or writes: its stdout.txt, stderr.txt, command, an output, its working
directory, its call directory, the run directory, workflow.log, the WDL bundle, the state
directory, inputs.json, outputs.json, error.json, the next call's directory.

Property: the controller never hangs; the run succeeds with the right outputs or fails with a
named error; nothing outside the root is read into any answer, output, upload or log, written,
changed or deleted; no store item exceeds DynamoDB's 400 KB. Finish uploads (with the real
S3 uploads) and deletes the run directory after, so deletion is held to it too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.core.records import RUN_FAILED, RUN_SUCCEEDED

from .world import (
    DYNAMODB_ITEM_LIMIT,
    SECRET,
    Confined,
    assert_clear_failure,
    finishes_within,
    measured,
    with_uploads,
)

WDL = """
version 1.0
workflow w {
  input { String plant  String pad }
  call t { input: plant = plant, big = pad }
  call u { input: x = t.s, big = t.xs }
  output {
    String s = t.s  File f = t.f  String said = t.said  String y = u.y  String padded = u.xs
  }
}
task t {
  input { String plant  String big }
  command <<<
    echo out > out.txt
    echo hello
    ~{plant}
  >>>
  output {
    String s = read_string("out.txt")
    File f = "out.txt"
    String said = read_string(stdout())
    String xs = big
  }
}
task u {
  input { String x  String big }
  command <<< echo "~{x}" >>>
  output { String y = read_string(stdout())  String xs = big }
}
"""

PAD = "p" * 40_000  # spilled: call inputs, task state and outputs go to .state/ files

# where (a bash word, from the task's working directory)
PLACES = {
    "output": "out.txt",
    "stdout": "../stdout.txt",
    "stderr": "../stderr.txt",
    "command": "../command",
    "work dir": '"$PWD"',
    "call dir": '"$(cd .. && pwd)"',
    "run dir": '"$(cd ../.. && pwd)"',
    "workflow.log": "../../workflow.log",
    "bundle": "../../wdl/bundle.json",
    "state dir": "../../.state",
    "inputs.json": "../../inputs.json",
    "outputs.json": "../../outputs.json",
    "error.json": "../../error.json",
    "next call dir": "../../call-u",
}
# what (a bash command making $P; {outside} and {efs} filled in)
KINDS = {
    "link to outside file": 'ln -s {outside}/victim.txt "$P"',
    "link to outside dir": 'ln -s {outside}/dir "$P"',
    "link to environ": 'ln -s /proc/self/environ "$P"',
    "link to the runs' parent": 'ln -s {efs} "$P"',
    "fifo": 'mkfifo "$P"',
    "link to /dev/zero": 'ln -s /dev/zero "$P"',
    "oversized file": 'truncate -s 300M "$P"',
    "directory": 'mkdir "$P"',
}


def plant(place: str, kind: str, world: Confined) -> str:
    make = KINDS[kind].format(outside=world.outside, efs=world.efs)
    return f'P={PLACES[place]}; rm -rf "$P.old"; mv "$P" "$P.old" 2>/dev/null || true; {make}'


def everything_told(harness: Any, finished: dict[str, Any], client: Any) -> str:
    run = harness.store.get_run(harness.run_id)
    text = json.dumps([run.as_dict() if run else None, harness.answer(), finished], default=str)
    return text + repr(client.bodies)


def cold(harness: Any) -> None:
    """Every event in a fresh Lambda container: the WDL bundle is read back from EFS (and
    checked) each time instead of being taken from the container's cache."""
    from miniwdl_serverless.controller import context

    event = harness.event

    def in_a_new_container(*args: Any, **kwargs: Any) -> str:
        with context._documents_lock:
            context._documents.clear()
        return str(event(*args, **kwargs))

    harness.event = in_a_new_container


def play_hostile(world: Confined, place: str, kind: str) -> None:
    harness = world.harness()
    cold(harness)
    store = measured(harness)
    client = with_uploads(harness, world.efs)
    harness.start(
        WDL,
        {"plant": plant(place, kind, world), "pad": PAD},
        dir=str(world.efs / "runs"),
        s3upload="s3://bucket/out/",
        delete_after="always",
    )
    harness.play(harness.execute)
    state: dict[str, Any] = {"result": {"run_id": harness.run_id}}
    finished = finish_run(state, harness.run_id, harness.ports)
    status = harness.run().status
    assert status in (RUN_SUCCEEDED, RUN_FAILED)
    if status == RUN_FAILED:
        assert_clear_failure(harness)
        assert finished["status"] == "failed"
    else:
        assert finished["status"] == "succeeded"
        outputs = finished["outputs"]
        assert outputs["w.s"] == "out" and outputs["w.y"] == "out" and outputs["w.padded"] == PAD
    told = everything_told(harness, finished, client)
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode(errors="replace")
    assert SECRET not in told and environ not in told
    assert world.untouched(), "something outside the EFS root changed"
    assert store.largest <= DYNAMODB_ITEM_LIMIT, (store.largest, store.where)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("place", sorted(PLACES))
def test_hostile_task_files(tmp_path, place, kind):
    world = Confined.make(tmp_path)
    try:
        finishes_within(lambda: play_hostile(world, place, kind), 60)
    finally:
        release_fifos(world.efs)


def release_fifos(root: Path) -> None:
    """Open every FIFO left for writing once, so that a read blocked on one (a hang the test
    reports) returns and the test process can exit."""
    for here, _, names in os.walk(root):
        for name in names:
            path = Path(here) / name
            if path.is_fifo():
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass


ONE_CALL = """
version 1.0
task t {
  input { String where }
  command <<< ~{where} >>>
  output { String s = read_string(stdout()) }
}
"""


@pytest.mark.parametrize("how", ["changed", "fifo", "link to outside"])
def test_found_6_a_bundle_a_task_changed_fails_the_run_instead_of_every_event(tmp_path, how):
    """Before: load_context raised (TamperedState, UnsafePath) out of on_batch_event, before
    the driver: the Lambda failed on every delivery and the run waited for its timeout."""
    world = Confined.make(tmp_path)
    harness = world.harness()
    cold(harness)
    swap = {
        "changed": 'echo "{}" > ../../wdl/bundle.json',
        "fifo": "rm ../../wdl/bundle.json; mkfifo ../../wdl/bundle.json",
        "link to outside": f"rm ../../wdl/bundle.json; ln -s {world.outside}/victim.txt"
        " ../../wdl/bundle.json",
    }[how]
    harness.start(ONE_CALL, {"where": swap + "; echo hi"}, task="t", dir=str(world.efs / "runs"))
    finishes_within(lambda: harness.play(harness.execute), 30)
    name, info = assert_clear_failure(harness)
    assert name == ("TamperedState" if how == "changed" else "UnsafePath"), info
    assert harness.open_jobs() == [] and world.untouched()
    release_fifos(world.efs)


def test_found_6_finish_fails_a_timed_out_run_whose_bundle_was_swapped(tmp_path):
    """Before: Finish, failing a run that Start's timeout ended, raised from load_context."""
    world = Confined.make(tmp_path)
    harness = world.harness()
    cold(harness)
    harness.start(ONE_CALL, {"where": "echo hi"}, task="t", dir=str(world.efs / "runs"))
    bundle = Path(str(harness.run().bundle_path))
    bundle.unlink()
    os.mkfifo(bundle)
    from miniwdl_serverless.controller import context

    context._documents.clear()
    state = {"error": {"Error": "States.Timeout", "Cause": "timed out"}}
    finished = finishes_within(lambda: finish_run(state, harness.run_id, harness.ports), 10)
    assert finished["status"] == "failed" and finished["error"] == "RunTimeout"
    assert harness.run().status == RUN_FAILED
    harness.work.drain()  # the terminations are the submitter's work items (outside the VPC)
    assert all(job.terminated for job in harness.batch.jobs.values())
    release_fifos(world.efs)


DEEP = """
version 1.0
task deep {
  command <<<
    D=tree/$(printf 'd/%.0s' $(seq 1100))
    mkdir -p $D && echo leaf > ${D}leaf.txt
    echo done
  >>>
  output { String said = read_string(stdout()) }
}
"""


def test_found_8_a_tree_nested_past_the_recursion_limit_is_deleted(tmp_path):
    """Before: Finish's delete_after (shutil.rmtree, recursive) raised RecursionError on 1,100
    nested directories a task left in its working directory."""
    world = Confined.make(tmp_path)
    harness = world.harness()
    with_uploads(harness, world.efs)
    harness.start(
        DEEP,
        task="deep",
        dir=str(world.efs / "runs"),
        s3upload="s3://bucket/o/",
        delete_after="always",
    )
    harness.play(harness.execute)
    run_dir = Path(str(harness.run().run_dir))
    try:
        state = {"result": {"run_id": harness.run_id}}
        finished = finishes_within(lambda: finish_run(state, harness.run_id, harness.ports), 60)
        assert finished["status"] == "succeeded", finished
        assert not run_dir.exists() and world.untouched()
    finally:
        world.remove()


def test_found_8_a_directory_output_nested_past_the_recursion_limit_is_listed(tmp_path):
    """Before: listing a Directory output to upload it (os.walk, recursive) raised
    RecursionError."""
    from miniwdl_serverless.adapters.efs import EfsRunFiles

    world = Confined.make(tmp_path)
    subprocess.run(
        [
            "bash",
            "-ec",
            "cd \"$1\"; D=$(printf 'd/%.0s' $(seq 1100)); mkdir -p $D; echo x > ${D}f",
            "-",
            str(world.efs),
        ],
        check=True,
    )
    os.symlink(world.outside / "victim.txt", world.efs / "d" / "link.txt")
    try:
        found = EfsRunFiles(str(world.efs)).list_files(str(world.efs / "d"))
        assert len(found) == 1 and found[0].endswith("/d/f")
    finally:
        world.remove()
