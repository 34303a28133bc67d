"""One contract for the RunFiles port, run on the in-memory files and on a real directory (the
EFS adapter), so the two cannot drift: run directories, atomic JSON, spilled values with
their digests, workflow.log, call directories and archived attempts."""

from __future__ import annotations

import pytest

from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.adapters.memory_files import MemoryRunFiles
from miniwdl_serverless.controller.ports import RunFiles
from miniwdl_serverless.core import spill
from miniwdl_serverless.core.errors import RunError


@pytest.fixture(params=["memory", "efs"])
def files(request) -> RunFiles:
    return MemoryRunFiles() if request.param == "memory" else EfsRunFiles()


@pytest.fixture
def root(tmp_path) -> str:
    return str(tmp_path / "runs")


def test_run_directories_are_unique_unless_given_exactly(files, root):
    first = files.create_run_dir(root, "20261201_100000_w")
    second = files.create_run_dir(root, "20261201_100000_w")
    assert (first, second) == (f"{root}/20261201_100000_w", f"{root}/20261201_100000_w_2")
    assert files.is_dir(first) and files.is_dir(second)
    exact = files.create_run_dir(f"{root}/here", None)
    assert exact == f"{root}/here" and files.create_run_dir(exact, None) == exact


def test_text_and_json_round_trip(files, root):
    files.write_json(f"{root}/r/inputs.json", {"w.x": [1, 2]})
    assert files.read_text(f"{root}/r/inputs.json") == '{\n  "w.x": [\n    1,\n    2\n  ]\n}'
    files.write_text(f"{root}/r/wdl/main.wdl", "version 1.0")
    files.write_text(f"{root}/r/wdl/main.wdl", "version 1.1")  # replaced, not appended
    assert files.read_text(f"{root}/r/wdl/main.wdl") == "version 1.1"
    assert files.is_file(f"{root}/r/wdl/main.wdl") and not files.is_file(f"{root}/r/wdl")
    with pytest.raises(FileNotFoundError):
        files.read_text(f"{root}/r/nothing.json")


def test_small_values_stay_inline_large_ones_spill_with_their_digest(files, root):
    assert files.store_value({"a": 1}, f"{root}/.state", "x") == {"a": 1}
    large = {"xs": list(range(20_000))}
    stored = files.store_value(large, f"{root}/.state", "call-sub/call-t.outputs")
    assert spill.is_pointer(stored)
    assert stored[spill.SPILL_KEY] == f"{root}/.state/call-sub__call-t.outputs.json"
    assert files.load_value(stored) == large
    assert files.load_value({"a": 1}) == {"a": 1}
    files.write_text(stored[spill.SPILL_KEY], spill.encode({"xs": [666]}))  # a task's doing
    with pytest.raises(RunError, match="changed on EFS"):
        files.load_value(stored)


def test_the_log_is_appended_to(files, root):
    files.make_dirs(root)
    files.append_log(f"{root}/workflow.log", "one\n")
    files.append_log(f"{root}/workflow.log", "two\n")
    assert files.read_text(f"{root}/workflow.log") == "one\ntwo\n"


def test_a_call_directory_and_its_archived_attempts(files, root, tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("data")
    call = f"{root}/call-t"
    inside = f"{call}/work/_miniwdl_inputs/0/input.txt"
    files.prepare_call(call, "echo hi", {str(source): inside}, copy_inputs=False)
    assert files.read_text(f"{call}/command") == "echo hi"
    assert files.is_dir(f"{call}/work") and files.exists(inside)
    assert files.real_path(inside) == str(source)
    for name in ("stdout.txt", "stderr.txt"):
        assert files.read_text(f"{call}/{name}") == ""
        assert files.is_own_file(f"{call}/{name}", call)
    assert not files.is_own_file(inside, call)  # a link to a file outside the call
    files.archive_attempt(call, 0)
    assert files.read_text(f"{call}/attempt-0/command") == "echo hi"
    assert not files.exists(f"{call}/command") and not files.exists(f"{call}/work")
    files.prepare_call(call, "echo again", {}, copy_inputs=False)
    assert files.read_text(f"{call}/command") == "echo again"
    files.remove_tree(call)
    assert not files.exists(f"{call}/attempt-0/command") and not files.is_dir(call)
