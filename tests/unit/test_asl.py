"""The ASL evaluator's pure parts (local/asl.py), against the rules of AWS's Amazon States
Language reference."""

from __future__ import annotations

import re

import pytest

from miniwdl_serverless.local import asl
from miniwdl_serverless.local.project import Project

DATA = {"a": {"b": [10, {"c": "x"}]}, "s": "sample1", "n": 3, "flag": True, "none": None}
CONTEXT = {"Execution": {"Id": "arn:x", "Name": "run-1"}, "Task": {"Token": "t"}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DATA),
        ("$.a.b[0]", 10),
        ("$.a.b[1].c", "x"),
        ("$['a']['b'][1]['c']", "x"),
        ("$.none", None),
        ("$$.Execution.Name", "run-1"),
        ("$$.Task.Token", "t"),
    ],
)
def test_reference_paths(path: str, expected: object) -> None:
    assert asl.read_path(path, DATA, CONTEXT) == expected


@pytest.mark.parametrize("path", ["$.missing", "$.a.b[5]", "$.s.x", "a.b", "$.a..b"])
def test_a_path_that_selects_nothing_is_a_runtime_error(path: str) -> None:
    with pytest.raises(asl.StatesError) as raised:
        asl.read_path(path, DATA, CONTEXT)
    assert raised.value.name == asl.RUNTIME


def test_result_path_input_path_and_output_path() -> None:
    data = {"x": 1, "deep": {"keep": 2}}
    assert asl.write_path("$", data, {"r": 1}) == {"r": 1}
    assert asl.write_path(None, data, {"r": 1}) == data
    assert asl.write_path("$.result", data, 5) == {"x": 1, "deep": {"keep": 2}, "result": 5}
    assert asl.write_path("$.deep.new.leaf", data, 5) == {
        "x": 1,
        "deep": {"keep": 2, "new": {"leaf": 5}},
    }
    assert data == {"x": 1, "deep": {"keep": 2}}  # the input itself is not changed
    assert asl.select(None, data, {}) == {} and asl.select("$.deep", data, {}) == {"keep": 2}
    with pytest.raises(asl.StatesError):
        asl.write_path("$.x[0]", data, 1)


def test_parameters_with_paths_context_and_intrinsics() -> None:
    template = {
        "static": {"list": [1, {"k": "v"}]},
        "picked.$": "$.a.b[1]",
        "token.$": "$$.Task.Token",
        "text.$": "States.Format('{} has \\'{}\\' {}', $.s, $.n, States.Array(1, 'two'))",
        "json.$": "States.StringToJson('{\"t\": 60}')",
        "back.$": "States.JsonToString($.a.b[1])",
        "merged.$": "States.JsonMerge($.a.b[1], States.StringToJson('{\"d\": 1}'), false)",
        "sum.$": "States.MathAdd($.n, -1)",
        "length.$": "States.ArrayLength($.a.b)",
    }
    assert asl.fill(template, DATA, CONTEXT) == {
        "static": {"list": [1, {"k": "v"}]},
        "picked": {"c": "x"},
        "token": "t",
        "text": "sample1 has '3' [1,\"two\"]".replace(",", ", "),
        "json": {"t": 60},
        "back": '{"c":"x"}',
        "merged": {"c": "x", "d": 1},
        "sum": 2,
        "length": 2,
    }


def test_a_failing_intrinsic_is_an_intrinsic_failure() -> None:
    for text in ["States.StringToJson($.s)", "States.Format('{} {}', $.n)"]:
        with pytest.raises(asl.StatesError) as raised:
            asl.fill({"x.$": text}, DATA, CONTEXT)
        assert raised.value.name == "States.IntrinsicFailure"
    with pytest.raises(asl.StatesError):  # a deep merge is not AWS's either
        asl.fill({"x.$": "States.JsonMerge($.a, $.a, true)"}, DATA, CONTEXT)


@pytest.mark.parametrize(
    ("rule", "holds"),
    [
        ({"Variable": "$.s", "StringEquals": "sample1"}, True),
        ({"Variable": "$.s", "StringMatches": "samp*1"}, True),
        ({"Variable": "$.s", "StringMatches": "s\\*"}, False),
        ({"Variable": "$.n", "NumericGreaterThanEquals": 3}, True),
        ({"Variable": "$.n", "NumericLessThanPath": "$.a.b[0]"}, True),
        ({"Variable": "$.s", "NumericEquals": 3}, False),  # a type mismatch is false
        ({"Variable": "$.flag", "BooleanEquals": True}, True),
        ({"Variable": "$.none", "IsNull": True}, True),
        ({"Variable": "$.gone", "IsPresent": False}, True),
        ({"Variable": "$.n", "IsNumeric": True}, True),
        ({"Variable": "$.flag", "IsNumeric": True}, False),
        ({"Variable": "$.s", "IsTimestamp": True}, False),
        (
            {
                "And": [
                    {"Variable": "$.n", "NumericEquals": 3},
                    {"Not": {"Variable": "$.s", "StringEquals": "x"}},
                ]
            },
            True,
        ),
        (
            {
                "Or": [
                    {"Variable": "$.n", "NumericEquals": 4},
                    {"Variable": "$.flag", "IsBoolean": True},
                ]
            },
            True,
        ),
    ],
)
def test_choice_rules(rule: dict[str, object], holds: bool) -> None:
    assert asl.rule_holds(rule, DATA) is holds


def test_timestamps_compare_as_moments() -> None:
    data = {"t": "2026-12-03T10:00:00Z"}
    rule = {"Variable": "$.t", "TimestampLessThan": "2026-12-03T11:00:00+00:00"}
    assert asl.rule_holds(rule, data)


def test_no_choice_and_no_default_is_an_error() -> None:
    state = {"Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "A"}]}
    with pytest.raises(asl.StatesError) as raised:
        asl.choose(state, DATA)
    assert raised.value.name == "States.NoChoiceMatched"
    assert asl.choose({**state, "Default": "B"}, DATA) == "B"


def test_which_errors_a_retrier_or_catcher_takes() -> None:
    assert asl.handles(["States.ALL"], "TransientError")
    assert asl.handles(["States.ALL"], asl.TIMEOUT)
    assert not asl.handles(["States.ALL"], asl.RUNTIME)  # never retried nor caught by ALL
    assert not asl.handles(["States.ALL"], "States.DataLimitExceeded")
    assert asl.handles(["States.TaskFailed"], "Lambda.Unknown")
    assert not asl.handles(["States.TaskFailed"], asl.TIMEOUT)
    assert not asl.handles(["Other"], "TransientError")


def test_retry_backoff_and_max_attempts() -> None:
    retriers = [
        {"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 2, "MaxAttempts": 4},
        {
            "ErrorEquals": ["TransientError"],
            "IntervalSeconds": 2,
            "MaxAttempts": 3,
            "BackoffRate": 3,
            "MaxDelaySeconds": 10,
        },
    ]
    retried = [0, 0]
    delays = [asl.retry_delay(retriers, "TransientError", retried) for _ in range(4)]
    assert delays == [2, 6, 10, None] and retried == [0, 3]
    assert asl.retry_delay(retriers, "Lambda.ServiceException", retried) == 2
    assert asl.retry_delay(retriers, "Other", retried) is None
    assert asl.retry_delay([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}], "X", [0]) is None
    defaults = [{"ErrorEquals": ["States.ALL"]}]  # 1 s, backoff 2, three attempts
    counts = [0]
    assert [asl.retry_delay(defaults, "X", counts) for _ in range(4)] == [1, 2, 4, None]


def test_the_templates_state_machine_is_accepted() -> None:
    asl.validate(
        Project().definition(
            lambda value: (
                "arn:aws:lambda:us-east-1:123456789012:function:X" if "GetAtt" in value else 60
            )
        )
    )


@pytest.mark.parametrize(
    ("definition", "names"),
    [
        ({"States": {}}, "StartAt"),
        ({"StartAt": "A", "States": {"A": {"Type": "Parallel", "End": True}}}, "Parallel"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}, "Next and End"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}, "'B'"),
        (
            {
                "StartAt": "A",
                "States": {"A": {"Type": "Pass", "End": True, "Parameters": {"x.$": "nope"}}},
            },
            "x.$",
        ),
        (
            {
                "StartAt": "A",
                "States": {"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "A"}]}},
            },
            "one comparison",
        ),
        (
            {
                "StartAt": "A",
                "States": {
                    "A": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "End": True,
                        "Retry": [{"ErrorEquals": ["X"], "Jitter": "FULL"}],
                    }
                },
            },
            "Jitter",
        ),
    ],
)
def test_what_is_not_run_is_refused_by_name(definition: dict[str, object], names: str) -> None:
    with pytest.raises(asl.InvalidDefinition, match=re.escape(names)):
        asl.validate(definition)
