"""miniwdl's run directory through `miniwdl-serverless run`: out/ links that the outputs
name, use_relative_output_paths (and its collision), output_hardlinks, and the upload's keys in
miniwdl-aws's layout of out/. The links are made without following anything a task planted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.core.safe_fs import UnsafePath

WDL_SOURCE = """
version development
task t {
  input { Int x }
  command <<< mkdir -p sub d~{x}; echo ~{x} > sub/r~{x}.txt; echo ~{x} > sub/same.txt
    echo a > d~{x}/a >>>
  output { File r = "sub/r~{x}.txt"  File same = "sub/same.txt"  Directory d = "d~{x}" }
}
workflow w {
  input { Array[Int] xs = [1, 2] }
  scatter (x in xs) { call t { input: x = x } }
  output { Array[File] rs = t.r  File first = t.r[0]  Array[Directory] ds = t.d }
}
"""


def run(run_cli, tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    wdl = tmp_path / "w.wdl"
    wdl.write_text(WDL_SOURCE)
    code, stdout, stderr = run_cli([str(wdl), "--dir", str(tmp_path / "runs"), *args])
    return code, json.loads(stdout) if stdout.strip() else {}, stderr


def test_outputs_are_linked_under_out_as_miniwdl_does(run_cli, tmp_path):
    code, result, stderr = run(run_cli, tmp_path)
    assert code == 0, stderr
    run_dir = Path(result["dir"])
    outputs = result["outputs"]
    assert outputs["w.rs"] == [str(run_dir / "out/rs/0/r1.txt"), str(run_dir / "out/rs/1/r2.txt")]
    assert outputs["w.first"] == str(run_dir / "out/first/r1.txt")
    assert outputs["w.ds"][1] == str(run_dir / "out/ds/1/d2")
    first = run_dir / "out/first/r1.txt"
    assert first.is_symlink() and not os.path.isabs(os.readlink(first))
    assert first.read_text() == "1\n"
    assert (run_dir / "out/ds/1/.WDL_Directory").is_file()
    assert (run_dir / "out/ds/1/d2/a").read_text() == "a\n"
    assert json.loads((run_dir / "outputs.json").read_text()) == outputs


def test_relative_output_paths_keep_the_work_paths(run_cli, tmp_path):
    code, result, stderr = run(run_cli, tmp_path, "--cfg", "FILE_IO__USE_RELATIVE_OUTPUT_PATHS=1")
    assert code == 0, stderr
    run_dir = Path(result["dir"])
    assert result["outputs"]["w.rs"] == [
        str(run_dir / "out/sub/r1.txt"),
        str(run_dir / "out/sub/r2.txt"),
    ]
    assert result["outputs"]["w.ds"] == [str(run_dir / "out/d1"), str(run_dir / "out/d2")]


def test_two_calls_writing_one_relative_path_fail_the_run(run_cli, tmp_path):
    source = WDL_SOURCE.replace("Array[File] rs = t.r", "Array[File] rs = t.same")
    wdl = tmp_path / "w.wdl"
    wdl.write_text(source)
    args = [
        str(wdl),
        "--dir",
        str(tmp_path / "runs"),
        "--cfg",
        "FILE_IO__USE_RELATIVE_OUTPUT_PATHS=1",
    ]
    code, _, stderr = run_cli(args)
    assert code == 2
    assert "Output filename collision" in stderr and "out/sub/same.txt" in stderr


def test_output_hardlinks_link_files_and_copy_directories_of_links(run_cli, tmp_path):
    code, result, stderr = run(run_cli, tmp_path, "--cfg", "FILE_IO__OUTPUT_HARDLINKS=true")
    assert code == 0, stderr
    run_dir = Path(result["dir"])
    first = run_dir / "out/first/r1.txt"
    assert not first.is_symlink() and first.stat().st_nlink >= 2
    copied = run_dir / "out/ds/0/d1"
    assert copied.is_dir() and not copied.is_symlink()
    assert (copied / "a").stat().st_nlink >= 2


def test_uploaded_keys_follow_the_layout_of_out(run_cli, tmp_path, embedded):
    code, result, stderr = run(run_cli, tmp_path, "--s3upload", "s3://msls-layout/run/")
    assert code == 0, stderr
    assert result["outputs"]["w.rs"] == [
        "s3://msls-layout/run/rs/0/r1.txt",
        "s3://msls-layout/run/rs/1/r2.txt",
    ]
    assert result["outputs"]["w.ds"][0] == "s3://msls-layout/run/ds/0/d1/"
    import boto3

    listed = boto3.client("s3").list_objects_v2(Bucket="msls-layout", Prefix="run/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert {"run/first/r1.txt", "run/rs/1/r2.txt", "run/ds/0/d1/a", "run/outputs.json"} <= keys


def test_a_link_is_never_made_through_a_link_a_task_planted(tmp_path):
    root, outside = tmp_path / "efs", tmp_path / "outside"
    (root / "run").mkdir(parents=True)
    outside.mkdir()
    (root / "run" / "out").symlink_to(outside)
    (root / "run" / "r.txt").write_text("r")
    files = EfsRunFiles(str(root))
    with pytest.raises(UnsafePath):
        files.link_output(str(root / "run/out/x/r.txt"), "../../r.txt", False)
    secret = outside / "secret"
    secret.write_text("s")
    with pytest.raises(UnsafePath):  # nor hard-links a file through one
        files.link_output(str(root / "run/x"), str(root / "run/out/secret"), True)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (root / "run/x").exists()


def test_last_rerun_and_each_calls_task_log_inputs_and_outputs(run_cli, tmp_path):
    code, result, stderr = run(run_cli, tmp_path)
    assert code == 0, stderr
    run_dir = Path(result["dir"])
    last = tmp_path / "runs" / "_LAST"
    assert last.is_symlink() and os.readlink(last) == run_dir.name
    assert sorted(p.name for p in (run_dir / "wdl").iterdir()) == ["bundle.json", "w.wdl"]
    call = next(p for p in run_dir.iterdir() if p.name.startswith("call-t-0"))
    assert json.loads((call / "inputs.json").read_text()) == {"x": 1}
    assert json.loads((call / "outputs.json").read_text())["t.r"].endswith("work/sub/r1.txt")
    lines = (call / "task.log").read_text().splitlines()
    assert [line.split(" ", 3)[3].split(" ")[0] for line in lines] == [
        "submitting",
        call.name,
        "finished",
    ]


def test_last_is_never_put_in_place_of_what_a_task_left(run_cli, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "_LAST").mkdir()  # a directory of the user's (or a task's)
    code, _, stderr = run(run_cli, tmp_path)
    assert code == 0, stderr
    assert (tmp_path / "runs" / "_LAST").is_dir() and not (tmp_path / "runs" / "_LAST").is_symlink()


def test_the_cli_writes_rerun_with_the_command_line(tmp_path, monkeypatch):
    from miniwdl_serverless.cli.local_run import write_rerun

    monkeypatch.chdir(tmp_path)
    write_rerun(str(tmp_path), ["run", "w.wdl", "x=a b"])
    assert (tmp_path / "rerun").read_text() == (
        f"pushd {tmp_path} && miniwdl-serverless run w.wdl 'x=a b'; popd\n"
    )
    (tmp_path / "elsewhere").write_text("keep")
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "rerun").symlink_to(tmp_path / "elsewhere")
    write_rerun(str(tmp_path / "again"), ["run"])  # never written through a link
    assert (tmp_path / "elsewhere").read_text() == "keep"
