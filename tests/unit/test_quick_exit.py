"""`miniwdl-serverless run` leaves without the interpreter's teardown (cli/main.py:entry)."""

from __future__ import annotations

import subprocess
import sys

from miniwdl_serverless.cli import main as cli_main


def test_quick_exit_flushes_runs_atexit_and_keeps_the_code(tmp_path) -> None:
    script = """
import atexit, logging, sys
from miniwdl_serverless.cli.main import quick_exit
log = logging.getLogger("t")
log.addHandler(logging.FileHandler(sys.argv[1]))
atexit.register(lambda: print("atexit ran", file=sys.stderr))
print("out", end="")
log.warning("logged")
quick_exit(3)
print("never")
"""
    log = tmp_path / "log.txt"
    result = subprocess.run(
        [sys.executable, "-c", script, str(log)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (3, "out")
    assert "atexit ran" in result.stderr
    assert log.read_text() == "logged\n"


def test_entry_exits_quickly_only_for_run(monkeypatch) -> None:
    calls: list[tuple[str, int]] = []

    def quick(code: int) -> None:
        calls.append(("quick", code))
        raise SystemExit(code)

    monkeypatch.setattr(cli_main, "main", lambda: 5)
    monkeypatch.setattr(cli_main, "quick_exit", quick)
    for argv, expected in ((["x", "run", "a.wdl"], [("quick", 5)]), (["x", "status"], [])):
        calls.clear()
        monkeypatch.setattr(sys, "argv", argv)
        try:
            cli_main.entry()
        except SystemExit as exit_:
            assert exit_.code == 5
        assert calls == expected
