"""The advance handler under EventBridge's delivery model: at least once, out of order,
concurrently. Runs real workflows on the embedded AWS and injects extra events."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from miniwdl_serverless.core.records import RUN_FAILED, RUNNING
from miniwdl_serverless.local.embedded import FakeContext
from tests.polling import wait_for

EVENTS = Path(__file__).resolve().parents[1] / "events"

GATED = """
version 1.0
workflow gated {
  call quick
  call slow { input: after = quick.n }
  output { Int total = slow.n }
}
task quick { command <<< echo 1 >>> output { Int n = read_int(stdout()) } }
task slow {
  input { Int after }
  command <<< while [ ! -e "~{gate}" ]; do sleep 0.05; done; echo $(( ~{after} + 1 )) >>>
  output { Int n = read_int(stdout()) }
  runtime { preemptible: 2 }
}
"""


def start_gated(embedded, tmp_path):
    gate = tmp_path / "gate"
    source = GATED.replace("~{gate}", str(gate))
    arn = embedded.start({"workflow_source": source, "dir": str(tmp_path)})
    run_id = arn.rsplit(":", 1)[-1]
    slow = wait_for(
        lambda: (
            (j := embedded.store.get_job(run_id, "call-slow"))
            and j.status == RUNNING
            and j.batch_job_id
            and j
        )
    )
    return arn, run_id, gate, slow


def advance(embedded, event) -> str:
    return str(
        embedded.handlers["AdvanceFunction"](copy.deepcopy(event), FakeContext("AdvanceFunction"))[
            "outcome"
        ]
    )


def test_repeated_and_late_events_change_nothing(embedded, tmp_path):
    arn, run_id, gate, slow = start_gated(embedded, tmp_path)

    def quick_events():
        events = [
            e
            for e in embedded.delivered
            if e["detail"].get("tags", {}).get("miniwdl-serverless:run") == run_id
        ]
        events = [
            e
            for e in events
            if e["detail"].get("tags", {}).get("miniwdl-serverless:job") == "call-quick"
        ]
        return (
            events if {e["detail"]["status"] for e in events} >= {"RUNNING", "SUCCEEDED"} else None
        )

    quick_events = wait_for(quick_events)
    before = embedded.store.get_job(run_id, "call-slow")
    for event in reversed(quick_events):  # again, and out of order (RUNNING after SUCCEEDED)
        assert advance(embedded, event) == "resumed"
    after = embedded.store.get_job(run_id, "call-slow")
    assert (after.batch_job_id, after.attempt, after.pending) == (
        before.batch_job_id,
        before.attempt,
        before.pending,
    )
    gate.touch()
    description = embedded.wait(arn)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"])["outputs"] == {"gated.total": 2}
    for event in quick_events:  # after the run: ignored
        assert advance(embedded, event) == "ignored: run not running"


def test_spot_interruption_is_retried_with_fresh_state(embedded, tmp_path):
    arn, run_id, gate, slow = start_gated(embedded, tmp_path)
    interrupted = json.loads((EVENTS / "batch_job_spot_interrupted.json").read_text())
    interrupted["detail"].update(jobId=slow.batch_job_id, jobName=slow.batch_job_name)
    interrupted["detail"]["tags"] = {
        "miniwdl-serverless:run": run_id,
        "miniwdl-serverless:job": "call-slow",
        "miniwdl-serverless:attempt": "0",
    }
    assert advance(embedded, interrupted) == "retried"
    retried = embedded.store.get_job(run_id, "call-slow")
    assert (retried.attempt, retried.interruptions) == (1, 1)
    assert retried.batch_job_id != slow.batch_job_id
    gate.touch()
    description = embedded.wait(arn)
    assert description["status"] == "SUCCEEDED", description.get("cause")
    run_dir = Path(json.loads(description["output"])["dir"])
    call = run_dir / "call-slow"  # miniwdl's names: the first try's files stay where they are
    assert (call / "work").is_dir() and (call / "stdout.txt").is_file()
    assert (call / "work2").is_dir() and (call / "stdout2.txt").is_file()
    assert (call / "stderr2.txt").is_file() and not list(call.glob("attempt-*"))
    # the interrupted job's own SUCCEEDED event came later: stale, ignored
    assert embedded.store.get_job(run_id, "call-slow").attempt == 1


def test_events_for_other_jobs_are_ignored(embedded):
    event = json.loads((EVENTS / "batch_job_succeeded.json").read_text())
    assert advance(embedded, event) == "ignored: run not running"
    event["detail"]["tags"] = {}
    assert advance(embedded, event) == "ignored: not a miniwdl-serverless job"


class LambdaDied(BaseException):
    """Stands in for a Lambda killed mid-invocation (timeout, out of memory)."""


def test_redelivered_event_resubmits_after_a_submitter_died(embedded, tmp_path, monkeypatch):
    from miniwdl_serverless.adapters.batch import BatchAdapter

    original = BatchAdapter.submit
    died = []

    def dies_once(self, submission):
        if submission.name.endswith("call-slow-try1") and not died:
            died.append(submission.name)
            raise LambdaDied()
        return original(self, submission)

    monkeypatch.setattr(BatchAdapter, "submit", dies_once)
    gate = tmp_path / "gate"
    gate.touch()
    arn = embedded.start(
        {"workflow_source": GATED.replace("~{gate}", str(gate)), "dir": str(tmp_path)}
    )
    run_id = arn.rsplit(":", 1)[-1]
    stuck = wait_for(
        lambda: (
            died
            and (j := embedded.store.get_job(run_id, "call-slow"))
            and j.status == RUNNING
            and j
        )
    )
    assert stuck.batch_job_id is None  # marked, never submitted: no event will ever come for it
    embedded.store.update_job(run_id, "call-slow", lease_until=0)  # Lambda retries after it ran out
    succeeded = wait_for(
        lambda: [
            e
            for e in embedded.sent
            if e["detail"].get("tags", {}).get("miniwdl-serverless:run") == run_id
            and e["detail"]["status"] == "SUCCEEDED"
        ]
    )
    assert advance(embedded, succeeded[0]) == "resumed"  # EventBridge retries the quick event
    description = embedded.wait(arn)
    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert json.loads(description["output"])["outputs"] == {"gated.total": 2}


def test_stopped_execution_terminates_the_runs_jobs(embedded, tmp_path):
    import boto3

    arn, run_id, gate, slow = start_gated(embedded, tmp_path)
    # what EventBridge sends when the execution is stopped (moto's StopExecution leaves a
    # waiting execution running, so the event is delivered here directly)
    event = json.loads((EVENTS / "sfn_execution_aborted.json").read_text())
    event["detail"].update(executionArn=arn, name=run_id)
    result = embedded.handlers["CancelFunction"](event, FakeContext("CancelFunction"))
    assert result == {"run_id": run_id, "terminated": 1}
    batch = boto3.client("batch")
    wait_for(lambda: batch.describe_jobs(jobs=[slow.batch_job_id])["jobs"][0]["status"] == "FAILED")
    run = embedded.store.get_run(run_id)
    assert run.status == RUN_FAILED and run.error["error"] == "RunStopped"
    assert (
        embedded.handlers["CancelFunction"](event, FakeContext("CancelFunction"))["run_id"]
        == run_id
    )
    gate.touch()


def test_cancel_event_fixture_for_an_unknown_run(embedded):
    event = json.loads((EVENTS / "sfn_execution_aborted.json").read_text())
    result = embedded.handlers["CancelFunction"](event, FakeContext("CancelFunction"))
    assert result == {"run_id": "run-0123456789ab", "terminated": 0}
