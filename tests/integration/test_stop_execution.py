"""StopExecution on the embedded AWS behaves as on AWS: the execution is ABORTED when the call
returns, even while a state waits on a Lambda (moto's parser marked it only once its worker
noticed, so `cancel` then DescribeExecution could still read RUNNING: a CI failure)."""

from __future__ import annotations

import threading

from tests.polling import wait_for


def test_an_execution_is_aborted_when_stop_execution_returns(embedded, monkeypatch):
    entered, release = threading.Event(), threading.Event()

    def blocked_start(event, context):
        entered.set()
        release.wait(30)
        return {"released": "after the stop"}

    monkeypatch.setitem(embedded.handlers, "StartFunction", blocked_start)
    arn = embedded.start({"workflow_source": "version 1.0\nworkflow w {}\n"})
    try:
        wait_for(entered.is_set, timeout=30)
        embedded.sfn.stop_execution(executionArn=arn, cause="test")
        assert embedded.sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    finally:
        release.set()
    wait_for(lambda: embedded.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
    assert embedded.sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
