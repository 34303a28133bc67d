"""Issue 9, defect 6, on the embedded AWS (the real state machine and handlers, wired from the
environment the template gives them): uploads under the stack bucket's control prefixes are
refused before any job."""

from __future__ import annotations

import json

import pytest

from miniwdl_serverless.local.resources import LOCAL_BUCKET

TASK = "version 1.0\ntask t { command <<< echo hi >>> output { String s = read_string(stdout()) } }"


@pytest.mark.parametrize("folder", ["submit/", "errors/", "wdl/"])
def test_defect_06_start_refuses_uploads_under_control_prefixes(embedded, tmp_path, folder):
    s3upload = f"s3://{LOCAL_BUCKET}/{folder}"
    execution_input = {
        "workflow_source": TASK,
        "task": "t",
        "dir": str(tmp_path),
        "s3upload": s3upload,
    }
    description = embedded.wait(embedded.start(execution_input))
    assert description["status"] == "FAILED"
    assert description["error"] == "InvalidSubmission"
    cause = json.loads(description["cause"])
    assert f"may not upload under s3://{LOCAL_BUCKET}/{folder}" in cause["message"]
    run_id = embedded.last_execution_arn.rsplit(":", 1)[-1]
    assert list(embedded.store.query_jobs(run_id)) == []  # nothing was planned or submitted
