"""core/arrays.py and the array shapes of core/events.py, over tests/events/batch_array_*.json;
the children's prologue run with bash on a temporary run directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from miniwdl_serverless.core.arrays import (
    ARRAY_SIZE_LIMIT,
    CHILD_MARKER,
    ShardArray,
    after_failed_child,
    array_script,
    array_submission,
    child_ran,
    child_ref,
    classify_array_event,
    plan_arrays,
    shape,
)
from miniwdl_serverless.core.decisions import EventKind
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import TAG_ARRAY, TAG_ARRAY_RECORD, TAG_JOB, TAG_RUN
from miniwdl_serverless.core.resources import Resources, TaskSubmission

EVENTS = Path(__file__).resolve().parent.parent / "events"
RUN = "6f1c2b7e-3d4a-4c59-9e8f-2a7b0c1d5e93"
PARENT = "3e8a1f5c-7b2d-4e9a-a6c1-0d4f8b2e7a93"
SHARDS = ("call-fastqc-0", "call-fastqc-1", "call-fastqc-2")


def detail(name: str) -> BatchJobDetail:
    return BatchJobDetail.model_validate(json.loads((EVENTS / name).read_text())["detail"])


# ---- events ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "index", "kind"),
    [
        ("batch_array_child_succeeded.json", 0, EventKind.SUCCEEDED),
        ("batch_array_child_failed_exit.json", 1, EventKind.FAILED_WITH_EXIT),
        ("batch_array_child_spot_interrupted.json", 2, EventKind.INTERRUPTED),
    ],
)
def test_a_child_event_names_its_parent_index_and_shard(
    name: str, index: int, kind: EventKind
) -> None:
    child = detail(name)
    assert child.array_child == (PARENT, index)
    assert not child.is_array_parent
    ref = child_ref(child)
    assert ref is not None
    assert (ref.run_id, ref.parent_batch_id, ref.index) == (RUN, PARENT, index)
    array = ShardArray(SHARDS)
    assert ref.array_id == array.array_id and ref.record == array.record
    data = array.index_bytes()[ref.offset : ref.offset + ref.record]
    assert ref.shard(data) == SHARDS[index]
    assert child.job_id is None  # no job tag: a controller without arrays ignores it
    assert classify_array_event(child, ran=True) == kind
    assert child.jobName == array.name(RUN)  # the parent's name


@pytest.mark.parametrize(
    ("name", "status", "summary"),
    [
        ("batch_array_parent_pending.json", "PENDING", {"RUNNABLE": 3}),
        ("batch_array_parent_succeeded.json", "SUCCEEDED", {"SUCCEEDED": 3}),
        ("batch_array_parent_failed.json", "FAILED", {"FAILED": 2, "SUCCEEDED": 1}),
    ],
)
def test_the_parent_is_recognised_and_ignored(
    name: str, status: str, summary: dict[str, int]
) -> None:
    parent = detail(name)
    assert parent.is_array_parent and parent.array_child is None
    assert parent.status == status and parent.batch_job_id == PARENT
    assert {k: v for k, v in parent.status_summary.items() if v} == summary
    assert child_ref(parent) is None
    assert classify_array_event(parent, ran=False) == EventKind.ARRAY_PARENT


def test_single_job_events_are_no_array_jobs() -> None:
    for path in EVENTS.glob("batch_job_*.json"):
        single = BatchJobDetail.model_validate(json.loads(path.read_text())["detail"])
        assert single.array_child is None and not single.is_array_parent
        assert child_ref(single) is None and single.status_summary == {}


def raw(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text())["detail"])


@pytest.mark.parametrize(
    "change",
    [
        {"jobId": PARENT},  # an index but no ':<index>'
        {"jobId": f"{PARENT}:1"},  # disagrees with arrayProperties.index 0
        {"jobId": f"{PARENT}:00"},
        {"jobId": f"{PARENT}:10000"},
        {"arrayProperties": {}},
    ],
)
def test_half_a_child_is_no_child(change: dict[str, Any]) -> None:
    child = BatchJobDetail.model_validate({**raw("batch_array_child_succeeded.json"), **change})
    assert child.array_child is None and child_ref(child) is None


def test_a_child_without_tags_is_recognised_but_needs_its_parent() -> None:
    untagged = BatchJobDetail.model_validate(
        {**raw("batch_array_child_succeeded.json"), "tags": {}}
    )
    assert untagged.array_child == (PARENT, 0)
    assert untagged.run_id is None and child_ref(untagged) is None


def test_a_record_that_is_not_ours_names_no_shard() -> None:
    ref = child_ref(detail("batch_array_child_succeeded.json"))
    assert ref is not None
    width = ref.record
    for bad in (
        b"../../etc".ljust(width - 1) + b"\n",
        b"x" * width,
        b"call-a\n",
        b"/abs".ljust(width),
    ):
        assert ref.shard(bad[:width] if len(bad) > width else bad) is None
    assert ref.shard("call-é".encode().ljust(width - 1) + b"\n") is None


# ---- the plan -------------------------------------------------------------------------------


def ids(n: int) -> list[str]:
    return [f"call-t-{i:05d}" for i in range(n)]


@pytest.mark.parametrize(
    ("width", "limit", "sizes", "singles"),
    [
        (1, ARRAY_SIZE_LIMIT, [], 1),
        (2, ARRAY_SIZE_LIMIT, [2], 0),
        (10_000, ARRAY_SIZE_LIMIT, [10_000], 0),
        (10_001, ARRAY_SIZE_LIMIT, [5_001, 5_000], 0),
        (25_000, ARRAY_SIZE_LIMIT, [8_334, 8_333, 8_333], 0),
        (7, 3, [3, 2, 2], 0),
        (4, 3, [2, 2], 0),
    ],
)
def test_shards_split_into_arrays_of_2_to_the_limit(
    width: int, limit: int, sizes: list[int], singles: int
) -> None:
    shards = ids(width)
    plan = plan_arrays([(j, "same") for j in shards], limit)
    assert [a.size for a in plan.arrays] == sizes and len(plan.singles) == singles
    assert [j for a in plan.arrays for j in a.job_ids] + list(plan.singles) == shards
    assert len({a.array_id for a in plan.arrays}) == len(plan.arrays)


def test_shards_submitted_differently_go_in_different_arrays() -> None:
    shards = [("call-t-0", "a"), ("call-t-1", "b"), ("call-t-2", "a"), ("call-t-3", "a")]
    plan = plan_arrays(shards)
    assert [a.job_ids for a in plan.arrays] == [("call-t-0", "call-t-2", "call-t-3")]
    assert plan.singles == ("call-t-1",)


def test_shards_no_record_can_name_go_single() -> None:
    odd = ["call-t-0", "call-t-1-a b", "call-t-2", "call-t-3/..", "call-t-4-" + "x" * 300]
    plan = plan_arrays([(j, 0) for j in odd])
    assert plan.arrays[0].job_ids == ("call-t-0", "call-t-2")
    assert set(plan.singles) == set(odd) - {"call-t-0", "call-t-2"}


@pytest.mark.parametrize("limit", [0, 1, 10_001])
def test_limit_outside_what_batch_takes_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        plan_arrays([("call-t-0", 0)], limit)


def test_index_file_has_one_fixed_width_record_per_child() -> None:
    array = ShardArray(("call-sub/call-t-9", "call-t-10", "call-t-1"))
    data = array.index_bytes()
    assert array.record == len("call-sub/call-t-9") + 1
    assert len(data) == 3 * array.record
    width = len("call-sub/call-t-9")
    assert data.decode().splitlines() == [j.ljust(width) for j in array.job_ids]


def submission() -> TaskSubmission:
    return TaskSubmission(
        name="n",
        queue="spot",
        image="ubuntu:22.04",
        resources=Resources(vcpus=2, memory_mib=4096),
        script="cd x",
        environment={"A": "1"},
        tags={"x": "y"},
    )


def test_the_array_submission_is_the_first_shards_with_the_arrays_name_tags_and_size() -> None:
    array = ShardArray(SHARDS)
    sub = array_submission(array, submission(), RUN, "/mnt/efs/run", {"project": "p"})
    assert sub.array_size == 3 and sub.name == array.name(RUN)
    assert sub.name == detail("batch_array_child_succeeded.json").jobName
    assert sub.tags == {
        "project": "p",
        TAG_RUN: RUN,
        TAG_ARRAY: "call-fastqc-0+3",
        TAG_ARRAY_RECORD: str(len("call-fastqc-0") + 1),
        "miniwdl-serverless:attempt": "0",
    }
    assert TAG_JOB not in sub.tags
    assert array.index_path(RUN, "/mnt/efs/run") in sub.script
    assert shape(sub) == shape(submission())
    assert shape(submission()) != shape(TaskSubmission(**{**submission().__dict__, "image": "x"}))


# ---- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "interrupted", "expected"),
    [
        ({}, False, None),
        ({}, True, None),
        ({"maxRetries": 1}, False, (1, 0, "spot")),
        ({"preemptible": 1}, True, (1, 1, "ondemand")),
        ({"preemptible": 2}, True, (1, 1, "spot")),
        ({"preemptible": 1}, False, None),
        ({"preemptible": 1, "maxRetries": 1}, False, (1, 0, "spot")),
    ],
)
def test_a_failed_child_is_retried_as_a_single_job_by_miniwdls_rules(
    runtime: dict[str, Any], interrupted: bool, expected: tuple[int, int, str] | None
) -> None:
    retry = after_failed_child(runtime, interrupted, "spot", "ondemand")
    got = None if retry is None else (retry.attempt, retry.interruptions, retry.queue)
    assert got == expected


def test_a_child_that_did_not_run_its_command_failed_to_run() -> None:
    failed = detail("batch_array_child_failed_exit.json")
    assert classify_array_event(failed, ran=False) == EventKind.FAILED_WITHOUT_EXIT
    succeeded = detail("batch_array_child_succeeded.json")
    assert classify_array_event(succeeded, ran=False) == EventKind.FAILED_WITHOUT_EXIT
    assert child_ran("1\n", 1) and not child_ran("2\n", 1) and not child_ran(None, 1)


# ---- the prologue, run with bash ------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for job_id in SHARDS:
        work = run / job_id / "work"
        work.mkdir(parents=True)
        (run / job_id / "command").write_text(f'echo "ran {job_id} in $PWD"\nexit 0\n')
    array = ShardArray(SHARDS)
    index = Path(array.index_path(RUN, str(run)))
    index.parent.mkdir()
    index.write_bytes(array.index_bytes())
    return run


def run_child(
    run: Path, index: str | None, path: str = os.environ["PATH"]
) -> subprocess.CompletedProcess[str]:
    script = array_script(str(run), ShardArray(SHARDS).index_path(RUN, str(run)))
    env = {"PATH": path}
    if index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = index
    return subprocess.run(
        ["/bin/bash", "-ec", script], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_child_runs_its_shards_command_in_its_work_directory(
    run_dir: Path, index: int
) -> None:
    done = run_child(run_dir, str(index))
    assert done.returncode == 0, done.stderr
    call = run_dir / SHARDS[index]
    assert (call / "stdout.txt").read_text() == f"ran {SHARDS[index]} in {call / 'work'}\n"
    assert child_ran((call / CHILD_MARKER).read_text(), index)
    others = [s for s in SHARDS if s != SHARDS[index]]
    assert not any((run_dir / s / "stdout.txt").exists() for s in others)


def test_the_commands_exit_code_is_the_childs(run_dir: Path) -> None:
    (run_dir / SHARDS[1] / "command").write_text("echo oops >&2\nexit 7\n")
    done = run_child(run_dir, "1")
    assert done.returncode == 7
    assert (run_dir / SHARDS[1] / "stderr.txt").read_text() == "oops\n"


def test_a_fifo_the_command_puts_at_stderr_txt_does_not_hang_the_job(
    run_dir: Path, tmp_path: Path
) -> None:
    """The stderr ``tee`` starts beside the command: a slow one (here made slow on purpose)
    used to open the FIFO the command had put in place of stderr.txt, and the job waited on it
    for ever (under load in the hostile suite)."""
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "tee").write_text(f'#!/bin/bash\nsleep 1\nexec {shutil.which("tee")} "$@"\n')
    (slow / "tee").chmod(0o755)
    stderr_txt = run_dir / SHARDS[1] / "stderr.txt"
    (run_dir / SHARDS[1] / "command").write_text(
        "rm -f ../stderr.txt && mkfifo ../stderr.txt && echo oops >&2\n"
    )
    done = run_child(run_dir, "1", path=f"{slow}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    assert "oops" in done.stderr  # still on the job's log
    assert stderr_txt.is_fifo()  # the command's, left alone


@pytest.mark.parametrize("index", [None, "", "x", "-1", "1 ", "3", "10000", "0x1", "1;ls"])
def test_a_bad_index_runs_nothing(run_dir: Path, index: str | None) -> None:
    done = run_child(run_dir, index)
    assert done.returncode == 3 and "miniwdl-serverless array child" in done.stderr
    assert not any((run_dir / s / CHILD_MARKER).exists() for s in SHARDS)


def test_a_leading_zero_is_still_decimal(run_dir: Path) -> None:
    done = run_child(run_dir, "02")  # not octal (bash's $((02)) would be; $((08)) an error)
    assert done.returncode == 0, done.stderr
    assert child_ran((run_dir / SHARDS[2] / CHILD_MARKER).read_text(), 2)


@pytest.mark.parametrize("record", ["../../outside", "/etc", "call-fastqc-0/../..", "a b"])
def test_a_tampered_record_runs_nothing(run_dir: Path, record: str) -> None:
    array = ShardArray(SHARDS)
    index = Path(array.index_path(RUN, str(run_dir)))
    records = index.read_bytes().splitlines()
    records[1] = record.encode()
    index.write_bytes(b"\n".join(records) + b"\n")
    done = run_child(run_dir, "1")
    assert done.returncode == 3, done.stderr
    assert not (run_dir / SHARDS[1] / CHILD_MARKER).exists()


def test_a_call_directory_linked_outside_the_run_runs_nothing(
    run_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "work").mkdir(parents=True)
    (outside / "command").write_text("echo escaped\n")
    call = run_dir / SHARDS[2]
    for item in call.iterdir():
        if item.is_dir():
            item.rmdir()
        else:
            item.unlink()
    call.rmdir()
    call.symlink_to(outside)
    done = run_child(run_dir, "2")
    assert done.returncode == 3 and "outside the run" in done.stderr
    assert not (outside / "stdout.txt").exists()


def test_a_linked_index_file_is_refused(run_dir: Path, tmp_path: Path) -> None:
    index = Path(ShardArray(SHARDS).index_path(RUN, str(run_dir)))
    real = tmp_path / "planted.idx"
    real.write_bytes(index.read_bytes())
    index.unlink()
    index.symlink_to(real)
    assert run_child(run_dir, "0").returncode == 3
