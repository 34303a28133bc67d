"""The run directory's out/ folder as miniwdl lays it out (core/out_links.py): the links'
places for each WDL type, use_relative_output_paths and its collision, the link texts."""

from __future__ import annotations

import pytest
import WDL

from miniwdl_serverless.core import out_links

RUN = "/efs/runs/20260101_000000_w"
File, Directory = WDL.Type.File(), WDL.Type.Directory()


def plan(outputs, types, relative=False):
    return out_links.plan(outputs, types, "w", RUN, relative, lambda path: path)


def work(call: str, rel: str) -> str:
    return f"{RUN}/{call}/work/{rel}"


def test_a_file_is_linked_under_its_output_name_and_the_outputs_name_the_link():
    result = plan({"w.report": work("call-t", "sub/report.txt")}, {"report": File})
    assert result.outputs == {"w.report": f"{RUN}/out/report/report.txt"}
    assert result.links == [
        out_links.OutLink(f"{RUN}/out/report/report.txt", work("call-t", "sub/report.txt"), False)
    ]
    assert result.marks == []


def test_array_indices_are_zero_padded_to_the_digits_the_length_needs():
    files = [work(f"call-t-{i}", "r.txt") for i in range(11)]
    result = plan({"w.rs": files}, {"rs": WDL.Type.Array(File)})
    assert result.outputs["w.rs"][0] == f"{RUN}/out/rs/00/r.txt"
    assert result.outputs["w.rs"][10] == f"{RUN}/out/rs/10/r.txt"
    one = plan({"w.rs": files[:1]}, {"rs": WDL.Type.Array(File)})
    assert one.outputs["w.rs"] == [f"{RUN}/out/rs/0/r.txt"]


def test_map_keys_name_folders_unless_one_cannot_then_indices():
    mapping = WDL.Type.Map((WDL.Type.String(), File))
    good = plan({"w.m": {"a": work("call-t", "x"), "b.1": work("call-u", "y")}}, {"m": mapping})
    assert good.outputs["w.m"] == {"a": f"{RUN}/out/m/a/x", "b.1": f"{RUN}/out/m/b.1/y"}
    bad = plan({"w.m": {"a b": work("call-t", "x"), "c": work("call-u", "y")}}, {"m": mapping})
    assert bad.outputs["w.m"] == {"a b": f"{RUN}/out/m/0/x", "c": f"{RUN}/out/m/1/y"}


def test_pairs_and_structs_by_side_and_member_and_strings_stay():
    pair = WDL.Type.Pair(File, WDL.Type.String())
    result = plan({"w.p": {"left": work("call-t", "x"), "right": "/not/a/file"}}, {"p": pair})
    assert result.outputs["w.p"] == {"left": f"{RUN}/out/p/left/x", "right": "/not/a/file"}
    struct = WDL.Type.StructInstance("S")
    struct.members = {"f": File, "n": WDL.Type.Int()}
    result = plan({"w.s": {"f": work("call-t", "x"), "n": 3}}, {"s": struct})
    assert result.outputs["w.s"] == {"f": f"{RUN}/out/s/f/x", "n": 3}


def test_a_directory_gets_a_mark_beside_its_link_and_null_stays_null():
    result = plan({"w.d": work("call-t", "d/"), "w.o": None}, {"d": Directory, "o": File})
    assert result.outputs == {"w.d": f"{RUN}/out/d/d", "w.o": None}
    assert result.links[0].directory
    assert result.marks == [f"{RUN}/out/d/.WDL_Directory"]


def test_relative_paths_keep_the_path_under_the_calls_work_directory():
    outputs = {"w.a": work("call-t-0", "sub/a.txt"), "w.b": work("call-sub/call-u", "b.txt")}
    result = plan(outputs, {"a": File, "b": File}, relative=True)
    assert result.outputs == {"w.a": f"{RUN}/out/sub/a.txt", "w.b": f"{RUN}/out/b.txt"}


def test_relative_paths_of_two_different_files_collide_as_in_miniwdl():
    outputs = {"w.rs": [work("call-t-0", "sub/r.txt"), work("call-t-1", "sub/r.txt")]}
    with pytest.raises(out_links.OutputCollision, match="Output filename collision") as caught:
        plan(outputs, {"rs": WDL.Type.Array(File)}, relative=True)
    assert f"Affected path: {RUN}/out/sub/r.txt" in str(caught.value)


def test_relative_paths_link_the_same_file_named_twice_once():
    same = work("call-t", "r.txt")
    result = plan({"w.a": same, "w.b": same}, {"a": File, "b": File}, relative=True)
    assert result.outputs == {"w.a": f"{RUN}/out/r.txt", "w.b": f"{RUN}/out/r.txt"}
    assert len(result.links) == 1


def test_outside_the_run_a_relative_output_keeps_its_name():
    assert out_links.relative_link("/efs/cache/x/reads.fq", RUN) == "reads.fq"
    assert out_links.relative_link(work("call-t", "work/x"), RUN) == "work/x"


def test_links_are_relative_under_the_run_root_and_absolute_elsewhere():
    link = f"{RUN}/out/r/r.txt"
    assert out_links.symlink_text(work("call-t", "r.txt"), link, RUN) == "../../call-t/work/r.txt"
    other_run = "/efs/runs/20250101_000000_w/call-t/work/r.txt"
    assert out_links.symlink_text(other_run, link, RUN).startswith("../../../20250101")
    assert out_links.symlink_text("/data/r.txt", link, RUN) == "/data/r.txt"


def test_wdl_copies_keep_their_paths_under_the_folder_they_share():
    from miniwdl_serverless.core.wdl_source import source_copy_names

    keys = ["/home/u/wf/main.wdl", "/home/u/wf/lib/tasks.wdl"]
    assert source_copy_names(keys) == {keys[0]: "main.wdl", keys[1]: "lib/tasks.wdl"}
    assert source_copy_names(["/tmp/x/w.wdl"]) == {"/tmp/x/w.wdl": "w.wdl"}
    odd = ["/a/b/../c.wdl", "/a/ok.wdl"]
    assert source_copy_names(odd)[odd[0]] == "a_b_.._c.wdl"
