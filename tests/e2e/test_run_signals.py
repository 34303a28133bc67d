"""`miniwdl-serverless run` stopped with Ctrl-C or SIGTERM, as a person or a scheduler stops it:
the run's task processes are gone, the error is recorded and printed like `miniwdl run` does
(exit status 2), with no traceback (issue 9, defect 17)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miniwdl_serverless.cli.local_runs import LocalRuns
from miniwdl_serverless.local.state import StateDir
from tests.polling import wait_for

CLI = str(Path(sys.executable).parent / "miniwdl-serverless")
SLOW = """
version 1.0
task slow {
  input { String pidfile }
  command <<< echo $$ > ~{pidfile}; exec sleep 300 >>>
  output { String done = "never" }
}
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_defect_17_a_signal_stops_the_tasks_and_records_the_error(tmp_path, sig, local_state_dir):
    (tmp_path / "slow.wdl").write_text(SLOW)
    pidfile = tmp_path / "task.pid"
    command = [CLI, "run", str(tmp_path / "slow.wdl"), f"pidfile={pidfile}", "--task", "slow"]
    command += ["--dir", str(tmp_path / "runs"), "--no-progress"]
    # the task writes its host pid to a host path: neither is visible inside bubblewrap
    env = {**os.environ, "MINIWDL_SERVERLESS_SANDBOX": "none"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=60)
        task = int(pidfile.read_text())
        assert alive(task)
        sent = time.monotonic()
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        process.kill()
    print(f"\n{sig.name}: exited after {took:.2f} s")
    assert process.returncode == 2, stderr
    assert stdout == ""
    assert "Traceback" not in stderr
    info = json.loads(stderr[: stderr.rindex("}") + 1])
    assert info["error"] == "RunFailed" and info["cause"]["error"] == "Terminated"
    assert sig.name in info["message"]
    wait_for(lambda: not alive(task), timeout=10)  # the task's process is gone
    (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if p.name != "_LAST")
    recorded = json.loads((run_dir / "error.json").read_text())
    assert recorded["cause"]["error"] == "Terminated"
    assert "terminated" in (run_dir / "workflow.log").read_text()
    # the local state was saved on the way out: `status --local` shows the stopped run
    runs = LocalRuns.read(StateDir(local_state_dir))
    (execution,) = runs.executions()
    assert execution["status"] == "ABORTED"
    run = runs.run(execution["name"])
    assert run is not None and run.status == "failed" and run.run_dir == str(run_dir)


def test_a_signal_before_the_run_started_is_a_clean_error(monkeypatch, capsys):
    """Ctrl-C while the inputs are still being read (a slow https:// workflow, say)."""
    from miniwdl_serverless.cli import local_run
    from miniwdl_serverless.cli.main import parse_run_args

    def interrupted(*_args):
        os.kill(os.getpid(), signal.SIGINT)  # handled in this, the main, thread
        raise AssertionError("the signal should have stopped the run")

    monkeypatch.setattr(local_run, "build_execution_input", interrupted)
    code = local_run.run_local(parse_run_args(["any.wdl"]))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert json.loads(err) == {"error": "Terminated", "message": "terminated by SIGINT"}
