"""`miniwdl-serverless reconcile` as a user runs it: the real CLI in a subprocess against the
embedded AWS served over HTTP; it invokes the stack's reconcile function, which replays a Batch
event the embedded EventBridge lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.test_submit_cli import STACK, cli, wait_until

pytestmark = pytest.mark.xdist_group("server")

CHAIN = """
version 1.0
workflow chain {
  call step as first { input: x = 1 }
  call step as second { input: x = first.y }
  output { Int result = second.y }
}
task step {
  input { Int x }
  command <<< echo $(( ~{x} + 1 )) >>>
  output { Int y = read_int(stdout()) }
}
"""


RUN_TAG = "miniwdl-serverless:run"


def test_reconcile_replays_a_lost_event_and_says_so(aws_server, tmp_path: Path):
    (tmp_path / "chain.wdl").write_text(CHAIN)

    def first_succeeded(event):
        detail = event.get("detail") or {}
        return (
            detail.get("status") == "SUCCEEDED"
            and detail.get("tags", {}).get("miniwdl-serverless:job") == "call-first"
        )

    aws_server.events.losing = first_succeeded
    try:
        started = cli(
            aws_server,
            "submit",
            str(tmp_path / "chain.wdl"),
            "--stack",
            STACK,
            "--dir",
            str(tmp_path),
        )
        assert started.returncode == 0, started.stderr
        run = started.stdout.strip()

        def lost_here() -> list:  # (the session's embedded AWS may have lost others' before)
            lost = list(aws_server.events.lost)
            return [e for e in lost if e["detail"].get("tags", {}).get(RUN_TAG) == run]

        wait_until(lost_here, message="the lost event")
    finally:
        aws_server.events.losing = None
    (lost,) = lost_here()
    time.sleep(6)  # the embedded reconciler lets an event 5 s to arrive before replaying it
    result = cli(aws_server, "reconcile", run, "--stack", STACK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "looked at 1 live run(s)",
        f"{run}: call-first: replaying SUCCEEDED of Batch job {lost['detail']['jobId']}",
    ]
    status = aws_server.sfn.describe_execution
    arn = aws_server.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + run
    wait_until(lambda: status(executionArn=arn)["status"] == "SUCCEEDED", message="the run")
    again = cli(aws_server, "reconcile", "--stack", STACK, "--json")
    assert again.returncode == 0, again.stderr
    assert '"dead_letters_kept": []' in again.stdout


def test_reconcile_of_an_unknown_run_is_a_usage_error(aws_server):
    result = cli(aws_server, "reconcile", "no-such-run", "--stack", STACK)
    assert result.returncode == 2
    assert "no run no-such-run" in result.stderr
