"""What Finish hands back to Step Functions stays within its limits (issue 9, defect 15): a
state's payload is at most 256 KiB, a Fail state's cause at most 32,768 characters."""

from __future__ import annotations

import json

from miniwdl_serverless.core import payloads


def test_small_outputs_travel_inline_with_their_reference() -> None:
    result = payloads.succeeded("/efs/runs/r", {"w.n": 3}, "/efs/runs/r/outputs.json")
    assert result == {
        "status": "succeeded",
        "dir": "/efs/runs/r",
        "outputs": {"w.n": 3},
        "outputs_json": "/efs/runs/r/outputs.json",
    }


def test_large_outputs_travel_by_reference_only() -> None:
    outputs = {"w.s": "x" * (5 * 1024 * 1024), "w.n": 3}
    result = payloads.succeeded("/r", outputs, "s3://b/r/outputs.json", "s3://b/r/")
    assert "outputs" not in result
    assert result["outputs_json"] == "s3://b/r/outputs.json" and result["s3upload"] == "s3://b/r/"
    assert payloads.size_of(result) < 1024


def test_outputs_are_measured_in_utf8_bytes_as_step_functions_counts() -> None:
    # 30,000 three-byte characters: 90,000 bytes, more than the inline limit of 64 KiB
    result = payloads.succeeded("/r", {"w.s": "é" * 15_000 + "漢" * 15_000}, "/r/outputs.json")
    assert "outputs" not in result


def test_a_short_cause_is_the_whole_error_json() -> None:
    info = {"error": "RunFailed", "message": "boom", "cause": {"exit_status": 1}}
    result = payloads.failed("RunFailed", info, "/r/error.json")
    assert json.loads(result["cause"]) == info
    assert result["error_json"] == "/r/error.json"


def test_a_huge_cause_is_cut_down_to_valid_json_naming_error_json() -> None:
    info = {
        "error": "RunFailed",
        "message": "m" * 100_000,
        "cause": {"error": "CommandFailed", "exit_status": 3, "lines": ["l" * 50] * 5000},
    }
    result = payloads.failed("E" * 1000, info, "s3://b/r/error.json")
    assert len(result["error"]) == payloads.ERROR_NAME_LIMIT
    cause = json.loads(result["cause"])
    assert len(result["cause"]) <= payloads.CAUSE_LIMIT
    assert cause["error"] == "RunFailed" and cause["cause"]["exit_status"] == 3
    assert cause["message"].startswith("m" * payloads.SHORT_TEXT)
    assert cause["error_json"] == "s3://b/r/error.json" and "error.json" in cause["truncated"]


def test_a_cause_of_many_keys_still_fits() -> None:
    info = {"error": "RunFailed", "message": "many"} | {f"k{i:05d}": "v" * 100 for i in range(2000)}
    cause = json.loads(payloads.cause_text(info, "/r/error.json"))
    assert set(cause) == {"error", "message", "truncated", "error_json"}


def test_the_start_tasks_failure_answer_is_a_whole_json_cause() -> None:
    from miniwdl_serverless.core.decisions import Answer
    from miniwdl_serverless.core.errors import RunError

    answer = Answer.failure(RunError.of("RunFailed", "z" * 100_000))
    assert answer.cause is not None and len(answer.cause) <= payloads.CAUSE_LIMIT
    assert json.loads(answer.cause)["error"] == "RunFailed"
