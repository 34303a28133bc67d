"""The execution input schema: every problem is named; nothing else is accepted."""

from __future__ import annotations

import pytest

from miniwdl_serverless.controller.finish import upload_folder
from miniwdl_serverless.core.errors import BadSubmission
from miniwdl_serverless.core.options import parse_run_options


def test_minimal_input(monkeypatch):
    monkeypatch.delenv("MSLS_EFS_ROOT", raising=False)
    options = parse_run_options({"workflow": "s3://bucket/wf.wdl"})
    assert options.run_root == "/mnt/efs/miniwdl_run"
    assert options.timeout_seconds == 7 * 24 * 3600


def test_config_map_accepts_both_forms():
    options = parse_run_options(
        {
            "workflow_source": "version 1.0",
            "config": {"TASK_RUNTIME__DEFAULTS": "{}", "MINIWDL__CALL_CACHE__GET": "false"},
        }
    )
    assert options.config_overrides() == {
        "MINIWDL__TASK_RUNTIME__DEFAULTS": "{}",
        "MINIWDL__CALL_CACHE__GET": "false",
    }


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "JSON object"),
        ({}, "exactly one of"),
        ({"workflow": "a.wdl"}, "absolute path"),
        ({"workflow": "/a.wdl", "workflow_source": "x"}, "exactly one of"),
        ({"workflow": "/a.wdl", "bogus": 1}, "unknown field"),
        ({"workflow": "/a.wdl", "inputs": []}, "inputs: must be a JSON object"),
        ({"workflow": "/a.wdl", "s3upload": "http://x"}, "s3upload"),
        ({"workflow": "/a.wdl", "delete_after": "always"}, "requires s3upload"),
        (
            {"workflow": "/a.wdl", "s3upload": "s3://bkt/x/", "delete_after": "sometimes"},
            "delete_after",
        ),
        ({"workflow": "/a.wdl", "timeout_seconds": 0}, "timeout_seconds"),
        ({"workflow": "/a.wdl", "timeout_seconds": True}, "timeout_seconds"),
        ({"workflow": "/a.wdl", "config": {"lower": "x"}}, "SECTION__KEY"),
        ({"workflow": "/a.wdl", "tags": {"k": 1}}, "invalid tag"),
        ({"workflow": "/a.wdl", "dir": "relative"}, "absolute"),
        (
            {"workflow": "/a.wdl", "copy_input_files": "yes"},
            "copy_input_files: must be true or false",
        ),
    ],
)
def test_bad_inputs_are_named(data, message):
    with pytest.raises(BadSubmission) as caught:
        parse_run_options(data)
    assert message in str(caught.value)
    assert caught.value.name == "InvalidSubmission"


def test_upload_folder_rule_of_miniwdl_aws():
    assert upload_folder("s3://b/out/", "/efs/miniwdl_run/20260101_000000_w") == "s3://b/out/"
    assert (
        upload_folder("s3://b/out", "/efs/miniwdl_run/20260101_000000_w")
        == "s3://b/out/20260101_000000_w/"
    )
