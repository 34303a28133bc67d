"""report.html end to end: a local `run` leaves it in its run directory (success and failure),
`miniwdl-serverless report DIR` writes it again from the directory's files, and headless
Chromium renders it: the screenshot is the window's size and shows the timeline's colours."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from miniwdl_serverless.cli.main import main
from miniwdl_serverless.core.report_html import COLOURS

CLI_PATH = str(Path(sys.executable).parent / "miniwdl-serverless")
WINDOW = (1280, 900)
HOSTILE_STDERR = "<script>alert(1)</script>"

WDL = (
    """
version 1.0
workflow w {
  input { Boolean fail = false }
  scatter (i in [1, 2, 3]) { call t { input: i = i } }
  if (fail) { call boom }
}
task t {
  input { Int i }
  command <<< sleep 0.~{i}; echo ~{i} >>>
  output { Int n = read_int(stdout()) }
  runtime { cpu: 2  memory: "2 GiB"  disks: "local-disk 20 SSD" }
}
task boom {
  command <<<
    echo "about to fail" >&2
    echo '"""
    + HOSTILE_STDERR
    + """' >&2
    exit 7
  >>>
}
"""
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_dir_of(runs: Path) -> Path:
    return next(p for p in runs.iterdir() if p.name != "_LAST" and p.is_dir())


@pytest.fixture
def workflow(tmp_path: Path) -> str:
    path = tmp_path / "w.wdl"
    path.write_text(WDL)
    return str(path)


def test_a_run_leaves_its_report(run_cli, workflow, tmp_path):
    runs = tmp_path / "runs"
    code, _, stderr = run_cli([workflow, "--dir", str(runs)])
    assert code == 0, stderr
    page = (run_dir_of(runs) / "report.html").read_text()
    for shard in ("call-t-0", "call-t-1", "call-t-2"):
        assert shard in page
    assert "local-disk 20 SSD" in page and "2015 MiB" in page  # resources asked
    assert "succeeded" in page and "Orchestration cost" in page
    assert "<script" not in page.lower()


def test_a_failed_run_reports_its_failure_escaped(run_cli, workflow, tmp_path):
    runs = tmp_path / "runs"
    code, _, stderr = run_cli([workflow, "fail=true", "--dir", str(runs)])
    assert code == 7, stderr
    run_dir = run_dir_of(runs)
    page = (run_dir / "report.html").read_text()
    assert 'id="failure"' in page and "call-boom" in page and "exit status 7" in page
    assert "about to fail" in page  # the stderr tail
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page.lower()
    # again from the directory's own files (this run kept no state directory records)
    (run_dir / "report.html").unlink()
    out = tmp_path / "again.html"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    again = out.read_text()
    assert "call-boom" in again and "about to fail" in again and "<script" not in again.lower()
    assert not (run_dir / "report.html").exists()  # -o: written there only


def test_report_refuses_a_directory_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--state-dir", str(tmp_path / "state")]) == 2
    assert "not a run directory" in capsys.readouterr().err


# ---- the screenshot --------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels) of an 8-bit RGB or RGBA PNG, as Chromium writes them."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    assert header is not None
    width, height, depth, colour_type = header[:4]
    assert depth == 8 and colour_type in (2, 6), header
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, channels)]  # type: ignore[misc]
        previous = line
    return width, height, pixels


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def screenshot(page: Path, out: Path) -> bytes:
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium installed (make venv installs it, best effort, as root)")
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # as root in a container: Chromium's own sandbox cannot start
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={out}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.as_uri(),
    ]
    home = out.parent / "chromium-home"  # its profile and caches, not the user's
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    subprocess.run(command, check=True, capture_output=True, timeout=120, env=env)
    return out.read_bytes()


def test_chromium_renders_the_report_with_its_timeline(run_cli, workflow, tmp_path):
    runs = tmp_path / "runs"
    code, _, stderr = run_cli([workflow, "fail=true", "--dir", str(runs)])
    assert code == 7, stderr
    data = screenshot(run_dir_of(runs) / "report.html", tmp_path / "shot.png")
    width, height, pixels = png_pixels(data)
    assert (width, height) == WINDOW
    seen = set(pixels)
    assert len(seen) > 50, "a blank page"  # text, bars, table: many distinct colours
    for outcome in ("succeeded", "failed", "queued"):
        assert rgb(COLOURS[outcome]) in seen, outcome  # the gantt's bars were drawn
    red = sum(1 for p in pixels if p == rgb(COLOURS["failed"]))
    assert red > 100  # the failed badge and bar, not a stray pixel


def test_report_of_a_local_run_by_id_reads_the_state_directory(tmp_path, local_state_dir):
    """`report RUN` as `status RUN` reads a local run: its records in the state directory (a
    real `run` in its own process saved them), its files in its run directory."""
    from tests.e2e.test_local_state import cli, environment

    (tmp_path / "w.wdl").write_text(WDL)
    command = [CLI_PATH, "run", str(tmp_path / "w.wdl"), "--dir", str(tmp_path / "runs")]
    ran = subprocess.run(
        [*command, "--no-progress"], env=environment(), capture_output=True, text=True, timeout=180
    )
    assert ran.returncode == 0, ran.stderr
    (run,) = [r["run_id"] for r in json.loads(cli("list", "--local", "--json").stdout)]
    out = tmp_path / "by-id.html"
    reported = cli("report", run, "--local", "-o", str(out))
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.strip() == str(out)
    page = out.read_text()
    assert run in page and "call-t-2" in page and "local-disk 20 SSD" in page
    assert str(local_state_dir) in page  # where it was read


@pytest.mark.xdist_group("server")
def test_report_of_a_stack_run_reads_it_as_status_and_logs_do(aws_server, tmp_path):
    """`report RUN --stack`: the execution, the tables, and workflow.log and the failed call's
    stderr through the stack's logs function (the real CLI in its own process)."""
    from tests.e2e.test_submit_cli import STACK, cli, latest_execution, submit_failing

    submit_failing(aws_server, tmp_path)
    run = latest_execution(aws_server)["name"]
    out = tmp_path / "stack.html"
    reported = cli(aws_server, "report", run, "--stack", STACK, "-o", str(out))
    assert reported.returncode == 0, reported.stderr
    page = out.read_text()
    assert run in page and f"stack {STACK}" in page
    assert 'id="failure"' in page and "call-fails" in page and "exit status 3" in page
    assert "something went wrong" in page  # the stderr tail, read through the logs function
    assert f'fill="{COLOURS["failed"]}"' in page  # its attempt, from workflow.log
    missing = cli(aws_server, "report", "run-000000000000", "--stack", STACK, "-o", str(out))
    assert missing.returncode == 2 and "no run run-000000000000" in missing.stderr
