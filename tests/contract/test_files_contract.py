"""One contract for the RunFiles port, run on the in-memory files and on a real directory (the
EFS adapter), so the two cannot drift: run directories, atomic JSON, spilled values with
their digests, workflow.log, call directories and their retries; and, because tasks can
write anywhere on EFS, the same refusals: nothing outside the file system's root, no symlink
followed at a path or on the way to it, regular files only, bounded reads."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.adapters.memory_files import MemoryRunFiles
from miniwdl_serverless.controller.ports import RunFiles, UnsafePath
from miniwdl_serverless.core import spill
from miniwdl_serverless.core.errors import RunError


@pytest.fixture(params=["memory", "efs"])
def files(request, tmp_path) -> RunFiles:
    """The port confined to ``tmp_path/efs`` (its root, as /mnt/efs on AWS)."""
    efs = str(tmp_path / "efs")
    os.makedirs(efs)  # the mount point exists
    return MemoryRunFiles(efs) if request.param == "memory" else EfsRunFiles(efs)


@pytest.fixture
def root(files) -> str:
    return f"{files.root}/runs"


@pytest.fixture
def outside(files, tmp_path) -> str:
    """A file outside the root that nothing may change."""
    path = str(tmp_path / "outside.txt")
    if isinstance(files, MemoryRunFiles):
        files.files[path] = "untouched"
    else:
        with open(path, "w") as outfile:
            outfile.write("untouched")
    return path


def outside_text(files: RunFiles, path: str) -> str:
    if isinstance(files, MemoryRunFiles):
        return files.files[path]
    with open(path) as infile:
        return infile.read()


def plant_link(files: RunFiles, link: str, target: str) -> None:
    """What a task can do on EFS: put a symlink anywhere."""
    files.make_dirs(os.path.dirname(link))
    if isinstance(files, MemoryRunFiles):
        files.links[link] = target
    else:
        os.symlink(target, link)


def test_run_directories_are_unique_unless_given_exactly(files, root):
    first = files.create_run_dir(root, "20261201_100000_w")
    second = files.create_run_dir(root, "20261201_100000_w")
    assert (first, second) == (
        (f"{root}/20261201_100000_w", True),
        (f"{root}/20261201_100000_w_2", True),
    )
    assert files.is_dir(first[0]) and files.is_dir(second[0])
    exact = files.create_run_dir(f"{root}/here", None)
    assert exact == (f"{root}/here", True)  # made by this call
    assert files.create_run_dir(f"{root}/here", None) == (f"{root}/here", False)  # it existed
    assert files.create_run_dir(files.root, None) == (files.root, False)  # the root itself


def test_run_directories_resolve_inside_the_root_or_are_refused(files, root, tmp_path):
    plant_link(files, f"{files.root}/latest", root)  # a link that stays inside: resolved
    files.make_dirs(root)
    assert files.create_run_dir(f"{files.root}/latest", "r") == (f"{root}/r", True)
    plant_link(files, f"{files.root}/away", str(tmp_path / "elsewhere"))
    for given in (str(tmp_path / "elsewhere"), f"{files.root}/away", f"{files.root}/../x"):
        assert not files.inside_root(given)
        with pytest.raises(UnsafePath):
            files.create_run_dir(given, "r")
    assert files.inside_root(f"{root}/r/anything") and files.inside_root(files.root)


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


def test_a_line_appended_to_a_long_log_does_not_copy_it(files, root):
    """As O_APPEND on EFS: a wide run's workflow.log grows by a line per event, and appending
    must not cost the log's size (the whole text copied per line made a completion's CPU
    grow with the scatter's width)."""
    log = f"{root}/workflow.log"
    files.make_dirs(root)
    files.append_log(log, "x" * (8 << 20) + "\n")
    tracemalloc.start()
    try:
        for index in range(20):
            files.append_log(log, f"line {index}\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated to append 20 lines"
    assert files.file_size(log) == (8 << 20) + 1 + sum(len(f"line {i}\n") for i in range(20))
    files.append_log(log, "last\n")
    assert files.read_text(log).endswith("line 19\nlast\n")
    files.write_text(log, "replaced\n")
    files.append_log(log, "after\n")
    assert files.read_text(log) == "replaced\nafter\n"


def test_a_call_directory_and_its_retries_under_miniwdls_names(files, root):
    source = f"{files.root}/data/input.txt"
    files.write_text(source, "data")
    call = f"{root}/call-t"
    inside = f"{call}/work/_miniwdl_inputs/0/input.txt"
    files.prepare_call(call, "echo hi", {source: inside}, copy_inputs=False)
    assert files.read_text(f"{call}/command") == "echo hi"
    assert files.is_dir(f"{call}/work") and files.exists(inside)
    assert files.real_path(inside) == source
    for name in ("stdout.txt", "stderr.txt"):
        assert files.read_text(f"{call}/{name}") == ""
        assert files.is_own_file(f"{call}/{name}", call)
    assert not files.is_own_file(inside, call)  # a link to a file outside the call
    files.write_text(f"{call}/stdout.txt", "try 1")
    files.write_text(f"{call}/work/left.txt", "by try 1")
    again = f"{call}/work2/_miniwdl_inputs/0/input.txt"
    files.prepare_call(call, "echo again", {source: again}, copy_inputs=False, attempt=1)
    assert files.read_text(f"{call}/command") == "echo again"  # miniwdl's: the newest try's
    assert files.is_dir(f"{call}/work2") and files.real_path(again) == source
    assert files.read_text(f"{call}/stdout2.txt") == files.read_text(f"{call}/stderr2.txt") == ""
    assert files.read_text(f"{call}/stdout.txt") == "try 1"  # the first try's, where it was
    assert files.read_text(f"{call}/work/left.txt") == "by try 1" and files.exists(inside)
    files.write_text(f"{call}/stdout2.txt", "try 2 running")
    files.prepare_call(call, "echo again", {source: again}, copy_inputs=False, attempt=1)
    assert files.read_text(f"{call}/stdout2.txt") == "try 2 running"  # never truncated
    files.remove_tree(call)
    assert not files.exists(f"{call}/work2") and not files.is_dir(call)
    with pytest.raises(UnsafePath):
        files.remove_tree(files.root)


def test_copied_inputs_come_from_inside_the_root_only(files, root, outside):
    source = f"{files.root}/data/in.txt"
    files.write_text(source, "data")
    call = f"{root}/call-t"
    inside = f"{call}/work/_miniwdl_inputs/0/in.txt"
    files.prepare_call(call, "cat", {source: inside}, copy_inputs=True)
    assert files.read_text(inside) == "data" and files.is_own_file(inside, call)
    plant_link(files, f"{files.root}/data/escape.txt", outside)
    for host in (outside, f"{files.root}/data/escape.txt"):
        with pytest.raises(UnsafePath):
            files.prepare_call(call, "cat", {host: inside}, copy_inputs=True)
    assert not files.exists(outside) and not files.is_file(f"{files.root}/data/escape.txt")


def test_a_copied_directory_input_holds_its_files_not_its_links(files, root, outside):
    top = f"{files.root}/data/folder"
    files.write_text(f"{top}/a.txt", "a")
    files.write_text(f"{top}/sub/b.txt", "b")
    plant_link(files, f"{top}/escape.txt", outside)
    call = f"{root}/call-t"
    inside = f"{call}/work/_miniwdl_inputs/0/folder/"
    files.prepare_call(call, "ls", {top + "/": inside}, copy_inputs=True)
    copy = inside.rstrip("/")
    assert files.is_dir(copy) and files.real_path(copy) == copy  # a folder of its own
    assert files.read_text(f"{copy}/a.txt") == "a" and files.is_own_file(f"{copy}/a.txt", call)
    assert files.read_text(f"{copy}/sub/b.txt") == "b"
    assert not files.exists(f"{copy}/escape.txt")  # a link in the input is left out
    with pytest.raises(UnsafePath):
        files.prepare_call(call, "ls", {f"{top}/escape.txt/": inside}, copy_inputs=True)


@pytest.mark.parametrize(
    "name",
    ["outputs.json", "workflow.log", ".state/big.json"],
)
def test_a_link_at_the_target_is_refused_and_nothing_outside_changes(files, root, outside, name):
    run = f"{root}/r"
    files.make_dirs(f"{run}/call-t")
    plant_link(files, f"{run}/{name}", outside)
    with pytest.raises(UnsafePath):
        if name == "outputs.json":
            files.write_json(f"{run}/{name}", {"w.x": 1})
        elif name == "workflow.log":
            files.append_log(f"{run}/{name}", "a line\n")
        elif name == ".state/big.json":
            files.store_value({"xs": list(range(20_000))}, f"{run}/.state", "big")
        else:
            files.prepare_call(f"{run}/call-t", "echo hi", {}, copy_inputs=False)
    with pytest.raises(UnsafePath):
        files.read_text(f"{run}/{name}")
    assert outside_text(files, outside) == "untouched"
    assert not files.is_own_file(f"{run}/{name}", run)


def test_a_link_on_the_way_is_never_followed(files, root, tmp_path, outside):
    run = f"{root}/r"
    files.write_text(f"{run}/call-t/command", "echo hi")
    stored = files.store_value({"xs": list(range(20_000))}, f"{run}/.state", "big")
    plant_link(files, f"{root}/swapped", str(tmp_path))  # a run directory swapped for a link
    for write in (
        lambda: files.write_text(f"{root}/swapped/outside.txt", "changed"),
        lambda: files.append_log(f"{root}/swapped/outside.txt", "changed"),
        lambda: files.make_dirs(f"{root}/swapped/call-t"),
        lambda: files.prepare_call(f"{root}/swapped/call-t", "x", {}, copy_inputs=False),
        lambda: files.remove_tree(f"{root}/swapped"),
        lambda: files.read_text(f"{root}/swapped/outside.txt"),
        lambda: files.load_value({**stored, spill.SPILL_KEY: f"{root}/swapped/outside.txt"}),
    ):
        with pytest.raises(UnsafePath):
            write()
    plant_link(files, f"{run}/call-t/work2/_miniwdl_inputs/0", str(tmp_path))
    source = f"{files.root}/data/input.txt"
    files.write_text(source, "data")
    inside = f"{run}/call-t/work2/_miniwdl_inputs/0/input.txt"
    files.prepare_call(f"{run}/call-t", "x", {source: inside}, copy_inputs=True, attempt=1)
    assert files.read_text(inside) == "data" and files.real_path(inside) == inside
    assert not os.path.exists(tmp_path / "input.txt")  # made in the call, not through the link
    assert outside_text(files, outside) == "untouched"
    assert files.read_text(f"{run}/call-t/command") == "x"


@pytest.mark.parametrize(
    "name", ["command", "work2", "stdout2.txt", "stderr2.txt", "work2/_miniwdl_inputs"]
)
def test_what_an_earlier_try_planted_at_a_retrys_names_is_replaced_never_followed(
    files, root, tmp_path, outside, name
):
    """A task of try 1 may put links where try 2's files go (``work2 -> /etc``): preparing
    try 2 removes the link itself and makes its own file or folder there."""
    call = f"{root}/call-t"
    files.prepare_call(call, "echo hi", {}, copy_inputs=False)
    target = outside if name in ("command", "stdout2.txt", "stderr2.txt") else str(tmp_path)
    if name == "command":  # the task removes it first
        if isinstance(files, MemoryRunFiles):
            del files.files[f"{call}/command"]
        else:
            os.unlink(f"{call}/command")
    plant_link(files, f"{call}/{name}", target)
    source = f"{files.root}/data/input.txt"
    files.write_text(source, "data")
    inside = f"{call}/work2/_miniwdl_inputs/0/input.txt"
    files.prepare_call(call, "echo again", {source: inside}, copy_inputs=False, attempt=1)
    assert outside_text(files, outside) == "untouched"
    assert files.read_text(f"{call}/command") == "echo again"
    assert files.is_dir(f"{call}/work2") and files.real_path(f"{call}/work2") == f"{call}/work2"
    assert files.real_path(inside) == source
    for stream in ("stdout2.txt", "stderr2.txt"):
        assert files.is_own_file(f"{call}/{stream}", call)
        assert files.read_text(f"{call}/{stream}") == ""
    if not isinstance(files, MemoryRunFiles):
        assert sorted(os.listdir(tmp_path / "efs" / "runs" / "call-t" / "work2")) == [
            "_miniwdl_inputs"
        ]


def test_paths_outside_the_root_are_neither_used_nor_seen(files, outside):
    for use in (
        lambda: files.write_text(outside, "changed"),
        lambda: files.append_log(outside, "changed"),
        lambda: files.read_text(outside),
        lambda: files.make_dirs(os.path.dirname(outside) + "/d"),
    ):
        with pytest.raises(UnsafePath):
            use()
    assert not files.exists(outside) and not files.is_file(outside)
    assert not files.is_dir(os.path.dirname(outside)) and not files.inside_root(outside)
    assert outside_text(files, outside) == "untouched"


def test_reads_are_bounded(files, root):
    files.write_text(f"{root}/big.txt", "x" * 100)
    assert files.read_text(f"{root}/big.txt", 100) == "x" * 100
    with pytest.raises(UnsafePath, match="larger than 99 bytes"):
        files.read_text(f"{root}/big.txt", 99)


def test_local_mode_is_rooted_at_slash(files, tmp_path):
    local = MemoryRunFiles("/") if isinstance(files, MemoryRunFiles) else EfsRunFiles("/")
    anywhere = str(tmp_path / "anywhere")
    assert local.inside_root(anywhere) and local.inside_root("/proc/self/environ")
    assert local.create_run_dir(anywhere, "r") == (f"{anywhere}/r", True)
    local.write_json(f"{anywhere}/r/outputs.json", {})
    assert local.read_text(f"{anywhere}/r/outputs.json") == "{}"


def test_the_regular_files_of_a_directory_are_listed(files, root):
    files.write_text(f"{root}/run/out/a.txt", "a")
    files.write_text(f"{root}/run/out/sub/b.txt", "b")
    files.write_text(f"{root}/run/other.txt", "c")
    listed = files.list_files(f"{root}/run/out")
    assert listed == [f"{root}/run/out/a.txt", f"{root}/run/out/sub/b.txt"]


def test_a_files_size_is_known_without_reading_it_and_only_inside_the_root(files, root, outside):
    files.write_text(f"{root}/out.txt", "12345")
    assert files.file_size(f"{root}/out.txt") == 5
    plant_link(files, f"{root}/away.txt", outside)
    for path in (f"{root}/away.txt", outside, f"{root}/missing.txt", root):
        assert files.file_size(path) == 0, path
