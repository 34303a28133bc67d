"""The ASL definition and template.yaml agree, and every path ends the execution clearly."""

from __future__ import annotations

import json
import re

from miniwdl_serverless.local.project import Project


def definition() -> dict:
    return Project().definition(
        lambda value: (
            "arn:aws:lambda:us-east-1:123456789012:function:X" if "GetAtt" in value else 60
        )
    )


def test_every_substitution_is_declared():
    text, substitutions = Project().state_machine()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(substitutions)


def test_transitions_and_terminal_states():
    states = definition()["States"]
    for name, state in states.items():
        targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
        targets += [c["Next"] for c in state.get("Choices", [])] + [state.get("Default")]
        for target in filter(None, targets):
            assert target in states, (name, target)
    assert {s["Type"] for s in states.values()} >= {"Succeed", "Fail"}


def test_start_waits_for_the_token_with_a_timeout_and_every_task_is_caught():
    states = definition()["States"]
    start = states["Start"]
    assert start["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert start["TimeoutSecondsPath"] == "$.run.timeout_seconds"
    assert start["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    for name, state in states.items():
        if state["Type"] == "Task":
            assert any("States.ALL" in c["ErrorEquals"] for c in state["Catch"]), name
    assert states["Failed"]["ErrorPath"] == "$.error" and states["Failed"]["CausePath"] == "$.cause"


def test_template_wires_functions_rule_and_tables():
    project = Project()
    names = {f.logical_id for f in project.functions()}
    assert names >= {"StartFunction", "AdvanceFunction", "FinishFunction"}
    advance = next(f for f in project.functions() if f.logical_id == "AdvanceFunction")
    pattern = advance.event_patterns[0]
    assert pattern["source"] == ["aws.batch"] and pattern["detail-type"] == [
        "Batch Job State Change"
    ]
    assert set(pattern["detail"]["status"]) == {"RUNNING", "SUCCEEDED", "FAILED"}
    assert {t.logical_id for t in project.tables()} == {
        "RunsTable",
        "JobsTable",
        "CacheTable",
        "WorkTable",
    }
    json.dumps(definition())


def test_start_and_finish_retry_transient_failures_and_crashes():
    states = definition()["States"]
    for name, expected in (
        ("Start", {"TransientError", "AnswerNotSent", "Lambda.Unknown", "Sandbox.Timedout"}),
        ("Finish", {"TransientError", "Lambda.Unknown", "Sandbox.Timedout"}),
    ):
        retried = {error for r in states[name]["Retry"] for error in r["ErrorEquals"]}
        assert expected <= retried, name
        assert "States.ALL" not in retried  # a WDL error or a failed task is not retried


def test_finish_loops_back_while_it_has_files_left_to_upload():
    """Finish's output is its result alone, and a "continue" result sends the execution into
    Finish again with it as the state (the next invocation's progress), every other result
    on to Outcome."""
    states = definition()["States"]
    finish = states["Finish"]
    assert finish["OutputPath"] == "$.Payload" and finish["Parameters"]["Payload"]["state.$"] == "$"
    assert finish["Next"] == "MoreToUpload"
    loop = states["MoreToUpload"]
    assert loop["Type"] == "Choice" and loop["Default"] == "Outcome"
    assert loop["Choices"] == [
        {"Variable": "$.status", "StringEquals": "continue", "Next": "Finish"}
    ]
    assert {c["Next"] for c in finish["Catch"]} == {"FinishCrashed"}  # a crash never loops
