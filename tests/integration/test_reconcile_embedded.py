"""The embedded AWS runs the reconciler while it waits for a run, as the stack's schedule
does: a Batch event lost on the way to the advance function does not stop the run."""

from __future__ import annotations

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


def test_a_lost_succeeded_event_is_recovered_by_the_reconciler(embedded, tmp_path):
    def first_succeeded(event):
        detail = event.get("detail") or {}
        return (
            event.get("source") == "aws.batch"
            and detail.get("status") == "SUCCEEDED"
            and detail.get("tags", {}).get("miniwdl-serverless:job") == "call-first"
        )

    embedded.events.losing = first_succeeded
    try:
        arn = embedded.start({"workflow_source": CHAIN, "dir": str(tmp_path)})
        described = embedded.wait(arn)
    finally:
        embedded.events.losing = None
    run_id = arn.rsplit(":", 1)[-1]
    assert described["status"] == "SUCCEEDED", described
    lost = [
        e for e in embedded.events.lost if e["detail"]["tags"]["miniwdl-serverless:run"] == run_id
    ]
    assert len(lost) == 1  # the advance function never saw it
    replayed = [
        action for report in embedded.reconciled for action in report["actions"].get(run_id, [])
    ]
    assert replayed == [
        f"call-first: replaying SUCCEEDED of Batch job {lost[0]['detail']['jobId']}"
    ]
    run = embedded.store.get_run(run_id)
    assert run is not None and run.status == "succeeded"
