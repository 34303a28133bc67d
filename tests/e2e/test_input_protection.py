"""Issue 12, cause 3: a local task cannot change the user's input files (miniwdl mounts inputs
read-only). Under bubblewrap the inputs are read-only binds and the task sees only its call
directory, its inputs and the system folders; without it, inputs are read-only copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from miniwdl_serverless.local import batch_executor

needs_bwrap = pytest.mark.skipif(
    not batch_executor.bwrap_usable(),
    reason="bubblewrap is not installed or cannot make namespaces here (no user namespaces)",
)

# What miniwdl's own tests expect of an input: a write into it fails, it is no link, and the
# original stays as it was.
WRITES = """
version development
task t {
  input { File f  Directory d }
  command <<<
    if echo x >> ~{f}; then echo appended; else echo refused; fi > append.txt
    if rm ~{d}/a.txt; then echo removed; else echo refused; fi > rm.txt
    if [ -L ~{f} ]; then echo link; else echo file; fi > kind.txt
    find _miniwdl_inputs -type f | wc -l > found.txt
    cat ~{f} > copy.txt
  >>>
  output {
    String append = read_string("append.txt")
    String rm = read_string("rm.txt")
    String kind = read_string("kind.txt")
    Int found = read_int("found.txt")
    File copy = "copy.txt"
  }
}
"""


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "user" / "data.txt"
    folder = tmp_path / "user" / "folder"
    folder.mkdir(parents=True)
    data.write_text("original\n")
    (folder / "a.txt").write_text("a\n")
    return data, folder


def _run(run_cli, tmp_path: Path, wdl: str, args: list[str]) -> tuple[int, dict, str]:
    source = tmp_path / "t.wdl"
    source.write_text(wdl)
    code, stdout, stderr = run_cli(
        [str(source), "--task", "t", *args, "--dir", str(tmp_path / "runs")], cwd=str(tmp_path)
    )
    return code, (json.loads(stdout)["outputs"] if code == 0 else {}), stderr


@needs_bwrap
def test_inputs_are_read_only_binds_under_bubblewrap(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv(batch_executor.SANDBOX_VARIABLE, "bwrap")
    data, folder = _inputs(tmp_path)
    code, outputs, stderr = _run(run_cli, tmp_path, WRITES, [f"f={data}", f"d={folder}"])
    assert code == 0, stderr
    assert outputs["t.append"] == "refused" and outputs["t.rm"] == "refused"
    assert outputs["t.kind"] == "file" and outputs["t.found"] == 2  # noqa: PLR2004
    assert Path(outputs["t.copy"]).read_text() == "original\n"
    assert data.read_text() == "original\n" and (folder / "a.txt").read_text() == "a\n"


@needs_bwrap
def test_a_local_task_sees_only_its_call_directory_inputs_and_system(
    run_cli, tmp_path, monkeypatch
):
    monkeypatch.setenv(batch_executor.SANDBOX_VARIABLE, "bwrap")
    data, _ = _inputs(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read\n")
    wdl = f"""
version 1.0
task t {{
  input {{ File f }}
  command <<<
    if cat {secret}; then echo read; else echo hidden; fi > secret.txt 2>/dev/null
    touch {tmp_path}/planted 2>/dev/null || true  # outside the binds: a tmpfs at most
    if ls ~{{f}} >/dev/null; then echo seen; fi > input.txt
    if echo x > /usr/planted; then echo written; else echo refused; fi > usr.txt
  >>>
  output {{
    String secret = read_string("secret.txt")
    String seen = read_string("input.txt")
    String usr = read_string("usr.txt")
  }}
}}
"""
    code, outputs, stderr = _run(run_cli, tmp_path, wdl, [f"f={data}"])
    assert code == 0, stderr
    assert outputs == {"t.secret": "hidden", "t.seen": "seen", "t.usr": "refused"}
    assert not (tmp_path / "planted").exists() and not Path("/usr/planted").exists()


def test_without_bubblewrap_inputs_are_read_only_copies(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv(batch_executor.SANDBOX_VARIABLE, "none")
    data, _ = _inputs(tmp_path)
    wdl = """
version 1.0
task t {
  input { File f }
  command <<<
    ( echo x >> ~{f} ) 2>/dev/null || true
    if [ -L ~{f} ]; then echo link; else echo file; fi > kind.txt
    stat -c %a ~{f} > mode.txt
  >>>
  output { String kind = read_string("kind.txt")  String mode = read_string("mode.txt") }
}
"""
    code, outputs, stderr = _run(run_cli, tmp_path, wdl, [f"f={data}"])
    assert code == 0, stderr
    assert outputs == {"t.kind": "file", "t.mode": "444"}
    assert data.read_text() == "original\n"  # root may write the copy; the original is untouched


def test_without_bubblewrap_directory_inputs_are_copies_too(run_cli, tmp_path, monkeypatch):
    """Without a sandbox a Directory input was a link to the user's folder: ``rm`` in it
    deleted the user's file. Now it is a copy of the folder (its files read-only)."""
    monkeypatch.setenv(batch_executor.SANDBOX_VARIABLE, "none")
    _, folder = _inputs(tmp_path)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("b\n")
    (folder / "empty").mkdir()
    wdl = """
version development
task t {
  input { Directory d }
  command <<<
    if [ -L ~{d} ]; then echo link; else echo dir; fi > kind.txt
    ( cd ~{d} && find . | sort ) > listing.txt
    stat -c %a ~{d}/sub/b.txt > mode.txt
    rm -f ~{d}/a.txt ~{d}/sub/b.txt; echo x > ~{d}/new.txt
  >>>
  output {
    String kind = read_string("kind.txt")
    Array[String] listing = read_lines("listing.txt")
    String mode = read_string("mode.txt")
  }
}
"""
    code, outputs, stderr = _run(run_cli, tmp_path, wdl, [f"d={folder}"])
    assert code == 0, stderr
    assert outputs["t.kind"] == "dir" and outputs["t.mode"] == "444"
    assert outputs["t.listing"] == [".", "./a.txt", "./empty", "./sub", "./sub/b.txt"]
    assert (folder / "a.txt").read_text() == "a\n" and (folder / "sub" / "b.txt").exists()
    assert not (folder / "new.txt").exists()
