"""The local state directory (local/state.py) and its readers (cli/local_runs.py): the
three-way merge that keeps concurrent runs' records, expiry, atomic replacement under a lock,
unreadable and newer files, signals during a save, and which command reads local runs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from miniwdl_serverless.adapters.dynamodb_items import JobItem, RunItem
from miniwdl_serverless.cli import local_run, local_runs
from miniwdl_serverless.cli.main import parse_remote_args, parse_run_args
from miniwdl_serverless.cli.submit import UsageError
from miniwdl_serverless.core.records import Job, Run
from miniwdl_serverless.local.persistence import EXECUTIONS
from miniwdl_serverless.local.state import (
    FORMAT,
    STATE_DIR_ENV,
    Collection,
    Snapshot,
    StateDir,
    StateError,
    deferred_signals,
    merge,
    state_dir_path,
)

KEY = ["pk"]
ROOT = Path(__file__).resolve().parents[2]


def item(pk: str, value: str = "v", **numbers: float) -> dict:
    found = {"pk": {"S": pk}, "value": {"S": value}}
    found.update({name: {"N": str(n)} for name, n in numbers.items()})
    return found


def snapshot(*items: dict, name: str = "t") -> Snapshot:
    return Snapshot({name: Collection.of(KEY, list(items))})


def values(snap: Snapshot, name: str = "t") -> dict[str, str]:
    return {i["pk"]["S"]: i["value"]["S"] for i in snap.collections[name].items.values()}


def quiet(messages: list[str]) -> StateDir:
    return StateDir(Path("."), warn=messages.append)


# ---- the merge -------------------------------------------------------------------------------


def test_merge_applies_only_what_this_process_changed():
    base = snapshot(item("kept"), item("changed"), item("deleted"), item("theirs-changed"))
    ours = snapshot(item("kept"), item("changed", "ours"), item("theirs-changed"), item("new"))
    disk = snapshot(
        item("kept"),
        item("changed"),
        item("deleted"),
        item("theirs-changed", "theirs"),
        item("theirs-new"),
    )
    merged = merge(disk, base, ours)
    assert values(merged) == {
        "kept": "v",
        "changed": "ours",  # ours changed it: ours
        "theirs-changed": "theirs",  # only the other process changed it: theirs
        "new": "v",
        "theirs-new": "v",  # another run's record saved meanwhile is not lost
    }  # and "deleted" (deleted by us) is gone


def test_merge_ours_wins_when_both_changed_an_item_and_keeps_collections_we_do_not_hold():
    base = snapshot(item("x"))
    disk = snapshot(item("x", "theirs"))
    disk.collections["other"] = Collection.of(KEY, [item("o")])
    merged = merge(disk, base, snapshot(item("x", "ours")))
    assert values(merged) == {"x": "ours"}
    assert values(merged, "other") == {"o": "v"}


def test_merge_of_a_table_whose_key_changed_takes_ours():
    disk = Snapshot({"t": Collection.of(["other"], [{"other": {"S": "a"}}])})
    merged = merge(disk, Snapshot(), snapshot(item("x")))
    assert merged.collections["t"].key_names == KEY and values(merged) == {"x": "v"}


# ---- expiry ----------------------------------------------------------------------------------


def test_expired_items_are_dropped_by_their_ttl_attribute():
    now = time.time()
    collection = Collection.of(
        KEY,
        [
            item("old", expires_at=now - 1),
            item("young", expires_at=now + 3600),
            item("forever"),
            {"pk": {"S": "odd"}, "expires_at": {"S": "soon"}},  # not a number: DynamoDB keeps it
        ],
    )
    kept = Snapshot({"t": collection}).live(now)
    assert sorted(k[0][1] for k in kept.collections["t"].items) == ["forever", "odd", "young"]
    other = Collection.of(KEY, [item("a", gone_at=now - 1), item("b", expires_at=now - 1)])
    other.ttl_attribute = "gone_at"
    assert [k[0][1] for k in Snapshot({"t": other}).live(now).collections["t"].items] == ["b"]


def test_expired_items_are_dropped_on_load(tmp_path):
    state = StateDir(tmp_path)
    now = time.time()
    state.save(snapshot(item("old", expires_at=now + 0.5), item("new")), Snapshot())
    assert len(state.read().collections["t"].items) == 2
    time.sleep(0.6)
    assert values(state.read().live()) == {"new": "v"}


# ---- the files -------------------------------------------------------------------------------


def test_save_replaces_the_file_atomically_and_privately(tmp_path):
    state = StateDir(tmp_path / "state")
    saved = state.save(snapshot(item("a")), Snapshot())
    assert values(state.read()) == {"a": "v"} and values(saved) == {"a": "v"}
    assert sorted(p.name for p in state.path.iterdir()) == ["state.json", "state.lock"]
    assert state.file.stat().st_mode & 0o777 == 0o600
    assert state.path.stat().st_mode & 0o777 == 0o700
    data = json.loads(state.file.read_text())
    assert data["format"] == FORMAT and data["collections"]["t"]["items"] == [item("a")]


def test_a_missing_state_reads_as_empty(tmp_path):
    assert StateDir(tmp_path / "none").read().collections == {}
    assert not (tmp_path / "none").exists()  # reading creates nothing


def test_an_unreadable_file_is_reported_then_set_aside_not_lost(tmp_path):
    messages: list[str] = []
    state = StateDir(tmp_path, warn=messages.append)
    state.file.write_text('{"format": 1, "collections": {')
    assert state.read().collections == {} and "cannot read" in messages[0]
    assert state.file.exists()  # a reader leaves it
    state.save(snapshot(item("a")), Snapshot())
    (aside,) = tmp_path.glob("state.json.unreadable-*")
    assert aside.read_text() == '{"format": 1, "collections": {'
    assert values(state.read()) == {"a": "v"} and "kept it as" in messages[-1]


def test_a_newer_format_is_neither_read_nor_overwritten(tmp_path):
    state = StateDir(tmp_path)
    state.file.write_text(json.dumps({"format": FORMAT + 1, "collections": {}}))
    with pytest.raises(StateError, match="another version"):
        state.read()
    with pytest.raises(StateError):
        state.save(snapshot(item("a")), Snapshot())
    assert json.loads(state.file.read_text())["format"] == FORMAT + 1


def test_a_lock_held_too_long_is_an_error(tmp_path):
    import fcntl

    state = StateDir(tmp_path, lock_timeout=0.2)
    with open(tmp_path / "state.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StateError, match="locked by another process"):
            state.save(snapshot(item("a")), Snapshot())
    state.save(snapshot(item("a")), Snapshot())


SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from miniwdl_serverless.local.state import Collection, Snapshot, StateDir

    state, me, count = StateDir(Path(sys.argv[1])), sys.argv[2], int(sys.argv[3])
    base = state.read()
    mine = []
    for n in range(count):  # each save adds one item, as a run adds its records
        mine.append({"pk": {"S": f"{me}-{n}"}, "value": {"S": "v"}})
        ours = Snapshot({"t": Collection(["pk"], dict(base.collections["t"].items)
                                         if "t" in base.collections else {})})
        for entry in mine:
            ours.collections["t"].items[(("S", entry["pk"]["S"]),)] = entry
        base = state.save(ours, base)
    """
)


def test_concurrent_saves_lose_no_records(tmp_path):
    processes = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), f"p{p}", "15"], cwd=ROOT)
        for p in range(4)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0, 0]
    saved = values(StateDir(tmp_path).read())
    assert sorted(saved) == sorted(f"p{p}-{n}" for p in range(4) for n in range(15))


def test_signals_during_a_save_come_after_it():
    arrived = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: arrived.append(signum))
    try:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert arrived == []  # not yet
        assert arrived == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


# ---- where the state is ---------------------------------------------------------------------


def test_the_state_directory_is_the_flag_else_the_variable_else_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir_path(None, {}) == tmp_path / "home" / ".miniwdl-serverless"
    assert state_dir_path(None, {STATE_DIR_ENV: str(tmp_path / "v")}) == tmp_path / "v"
    flag = state_dir_path(str(tmp_path / "f"), {STATE_DIR_ENV: str(tmp_path / "v")})
    assert flag == tmp_path / "f"


def test_run_keeps_state_unless_told_not_to(tmp_path, local_state_dir):
    assert local_run.state_dir(parse_run_args(["x.wdl"])).path == local_state_dir
    given = local_run.state_dir(parse_run_args(["x.wdl", "--state-dir", str(tmp_path)]))
    assert given.path == tmp_path
    assert local_run.state_dir(parse_run_args(["x.wdl", "--no-state"])) is None
    with pytest.raises(SystemExit):
        parse_run_args(["x.wdl", "--no-state", "--state-dir", str(tmp_path)])


# ---- status and list on local runs -----------------------------------------------------------


def list_args(*argv: str) -> argparse.Namespace:
    return parse_remote_args("list", list(argv))


def test_which_runs_a_command_reads(tmp_path, capsys):
    empty = {"STATE": "unused"}
    with_state = {STATE_DIR_ENV: str(tmp_path)}
    assert local_runs.chosen(list_args("--local"), with_state).path == tmp_path
    assert local_runs.chosen(list_args("--state-dir", str(tmp_path / "x")), empty).path == (
        tmp_path / "x"
    )
    assert local_runs.chosen(list_args("--stack", "s"), with_state) is None
    assert local_runs.chosen(list_args(), {**with_state, "MINIWDL_SERVERLESS_STACK": "s"}) is None
    with pytest.raises(UsageError, match="leave out --stack"):
        local_runs.chosen(list_args("--local", "--stack", "s"), with_state)
    with pytest.raises(UsageError, match="which stack.*no local runs in"):
        local_runs.chosen(list_args(), with_state)  # no stack and no local runs
    StateDir(tmp_path).save(snapshot(item("a")), Snapshot())
    capsys.readouterr()
    assert local_runs.chosen(list_args(), with_state).path == tmp_path
    assert f"no stack given: local runs in {tmp_path}" in capsys.readouterr().err


def saved_runs(now: float) -> Snapshot:
    run = Run("r1", status="succeeded", workflow_name="w", run_dir="/runs/w", created_at=now)
    jobs = [
        Job("r1", "call-a", status="done", batch_job_name="n", batch_job_id="b", started_at=now),
        Job("r1", "decl-x", status="done"),
        Job("r2", "call-a", status="running"),
    ]

    def raw(model: type, record: Run | Job) -> dict:
        values = {k: v for k, v in record.as_dict().items() if v is not None}
        return dict(model(**values).serialize())

    execution = {
        "executionArn": {"S": "arn:aws:states:us-east-1:1:execution:RunWorkflow:r1"},
        "name": {"S": "r1"},
        "status": {"S": "SUCCEEDED"},
        "startDate": {"N": str(now)},
        "stopDate": {"N": str(now + 2)},
    }
    later = dict(execution, name={"S": "r2"}, status={"S": "FAILED"}, startDate={"N": str(now + 5)})
    later["executionArn"] = {"S": "arn:aws:states:us-east-1:1:execution:RunWorkflow:r2"}
    return Snapshot(
        {
            "dynamodb/runs": Collection.of(["run_id"], [raw(RunItem, run)]),
            "dynamodb/jobs": Collection.of(["run_id", "job_id"], [raw(JobItem, j) for j in jobs]),
            EXECUTIONS: Collection.of(["executionArn"], [execution, later]),
        },
        roles={"runs": "dynamodb/runs", "jobs": "dynamodb/jobs"},
    )


def test_local_runs_read_with_the_stores_item_models(tmp_path):
    now = time.time()
    StateDir(tmp_path).save(saved_runs(now), Snapshot())
    runs = local_runs.LocalRuns.read(StateDir(tmp_path))
    assert [e["name"] for e in runs.executions()] == ["r2", "r1"]  # newest first
    assert [e["name"] for e in runs.executions("SUCCEEDED")] == ["r1"]
    execution = runs.execution("arn:aws:states:us-east-1:1:execution:RunWorkflow:r1")
    assert execution == runs.execution("r1")
    assert execution["startDate"].timestamp() == pytest.approx(now)
    assert execution["stopDate"].timestamp() == pytest.approx(now + 2)
    assert runs.execution("r3") is None
    run = runs.run("r1")
    assert run is not None and run.workflow_name == "w" and run.run_dir == "/runs/w"
    assert sorted(j.job_id for j in runs.jobs("r1")) == ["call-a", "decl-x"]
    args = parse_remote_args("status", ["r3", "--local"])
    with pytest.raises(UsageError, match=f"no run r3 among the local runs in {tmp_path}"):
        local_runs.status(args, StateDir(tmp_path))
    listed = local_runs.list_runs(list_args("-n", "1"), StateDir(tmp_path))
    assert [e["name"] for e in listed] == ["r2"]


def test_a_gathers_buckets_are_kept_with_the_jobs(tmp_path):
    """A large run's progress reads its shards' counters from their buckets: saved with the
    jobs table and loaded back, so `status --local` after the run counts them too."""
    from miniwdl_serverless.adapters.memory import MemoryCache, MemoryStore
    from miniwdl_serverless.local.memory_tables import MemoryTables, MotoTables, TableSpec

    store = MemoryStore()
    shard = Job("run", "call-t-0", tally={"gather": "g", "index": 0, "bucket": 0, "size": 2})
    store.tally_shard(shard, {"jobs_done": 1, "calls_cached": 1})
    spec = TableSpec("jobs-table", [], [])
    tables = MemoryTables({"jobs": spec}, store, MemoryCache(), MotoTables("1", "us-east-1"))
    saved = tables.items("jobs-table")
    again = MemoryStore()
    MemoryTables({"jobs": spec}, again, MemoryCache(), MotoTables("1", "us-east-1")).put_items(
        "jobs-table", saved
    )
    assert again.tallied("run") == {"jobs_done": 1, "calls_succeeded": 0, "calls_cached": 1}
    assert again.all_jobs() == []  # a bucket is no job
