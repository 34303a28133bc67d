"""The in-process Step Functions (local/step_functions.py, the default mode's) against moto's
(`--embedded-aws full`, server mode): the same definitions, functions and answers, through a
boto3 client, end in the same status, output, error and cause, after the same history events.
Then what only AWS's documentation can check, on ours: refusals, names, pages."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from miniwdl_serverless.local import in_process, moto_patches
from miniwdl_serverless.local.resources import ACCOUNT, REGION, local_role
from miniwdl_serverless.local.step_functions import HandedOver, LocalStepFunctions

pytestmark = pytest.mark.xdist_group("step-functions")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/local"
SERVICE = "sfn"
Function = Callable[[Any], Any]


class World:
    """One Step Functions (ours or moto's) and the Python functions its tasks invoke."""

    def __init__(self, kind: str):
        self.kind = kind
        # a name of its own for each machine and function: a test process's moto state is
        # shared with the session's embedded AWS, not reset for each test
        self.suffix = uuid.uuid4().hex[:8]
        self.functions: dict[str, Function] = {}
        self.sfn = boto3.client("stepfunctions", region_name=REGION)

    def invoke(self, name: str, body: Any, headers: dict[str, str]) -> bytes:
        """As the embedded AWS invokes a handler: an exception is the function's error."""
        try:
            result = self.functions[name](json.loads(body or "{}"))
        except Exception as exn:
            headers["x-amz-function-error"] = "Unhandled"
            error = {"errorType": type(exn).__name__, "errorMessage": str(exn)}
            return json.dumps(error).encode()
        return json.dumps(result).encode()

    def function(self, name: str, body: Function) -> str:
        name = f"{name}-{self.suffix}"
        self.functions[name] = body
        if self.kind == "moto":
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zf:
                zf.writestr("app.py", "def handler(event, context):\n    return event\n")
            boto3.client("lambda", region_name=REGION).create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=ROLE,
                Handler="app.handler",
                Code={"ZipFile": archive.getvalue()},
            )
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"

    def machine(self, definition: dict[str, Any], name: str = "Machine") -> str:
        return str(
            self.sfn.create_state_machine(
                name=f"{name}-{self.suffix}", definition=json.dumps(definition), roleArn=ROLE
            )["stateMachineArn"]
        )

    def start(self, machine: str, execution_input: Any, name: str = "run-1") -> str:
        return str(
            self.sfn.start_execution(
                stateMachineArn=machine, name=name, input=json.dumps(execution_input)
            )["executionArn"]
        )

    def ended(self, arn: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            description = self.sfn.describe_execution(executionArn=arn)
            if description["status"] != "RUNNING":
                return dict(description)
            time.sleep(0.02)
        raise AssertionError(f"{arn} still running")

    def history(self, arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return [e["type"] for e in events]

    def run(self, definition: dict[str, Any], execution_input: Any) -> dict[str, Any]:
        return self.ended(self.start(self.machine(definition), execution_input))


@contextlib.contextmanager
def ours() -> Iterator[World]:
    saved = in_process.serving(SERVICE)
    worlds: list[World] = []
    with mock_aws():
        # served before the world's client is made (a client copies the hooks it starts with)
        in_process.serve(
            SERVICE, LocalStepFunctions(ACCOUNT, REGION, lambda *a: invoke(worlds[0], *a))
        )
        worlds.append(World("ours"))
        try:
            yield worlds[0]
        finally:
            in_process.serve(SERVICE, saved)


def invoke(world: World, name: str, payload: Any) -> tuple[bytes, str | None]:
    headers: dict[str, str] = {}
    body = world.invoke(name, json.dumps(payload), headers)
    return body, headers.get("x-amz-function-error")


@contextlib.contextmanager
def motos() -> Iterator[World]:
    config = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
    with in_process.suspended(SERVICE), mock_aws(config=config):  # type: ignore[arg-type]
        world = World("moto")
        undos = []
        try:
            for patch in (
                moto_patches.patch_callback_delay,
                moto_patches.patch_stopped_executions,
                moto_patches.patch_stop_is_immediate,
                lambda: moto_patches.patch_lambda_invoke(world.invoke),
            ):
                undos.append(patch())
            local_role()  # (the session's embedded AWS may have made it: moto's state is shared)
            yield world
        finally:
            for undo in reversed(undos):
                undo()


@pytest.fixture(params=["ours", "moto"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    with ours() if request.param == "ours" else motos() as each:
        yield each


def outcome(description: dict[str, Any]) -> tuple[Any, ...]:
    output = description.get("output")
    return (
        description["status"],
        json.loads(output) if output else None,
        description.get("error"),
        description.get("cause"),
    )


# -- the same on both --
PASSES = {
    "StartAt": "Defaults",
    "States": {
        "Defaults": {
            "Type": "Pass",
            "Parameters": {
                "defaults": {"timeout.$": "States.StringToJson('60')", "fixed": [1, "a"]},
                "input.$": "$",
                "label.$": "States.Format('run {} of {}', $.name, $.count)",
                "pair.$": "States.Array($.count, 'x')",
            },
            "Next": "Merge",
        },
        "Merge": {
            "Type": "Pass",
            "Parameters": {"run.$": "States.JsonMerge($.defaults, $.input, false)"},
            "ResultPath": "$.merged",
            "Next": "Keep",
        },
        "Keep": {"Type": "Pass", "Result": {"kept": True}, "ResultPath": "$.extra", "End": True},
    },
}


def test_pass_states_parameters_and_intrinsics(world: World) -> None:
    description = world.run(PASSES, {"name": "w", "count": 2, "timeout": 5})
    status, output, _, _ = outcome(description)
    assert status == "SUCCEEDED"
    assert output["merged"] == {"run": {"timeout": 5, "fixed": [1, "a"], "name": "w", "count": 2}}
    assert output["label"] == "run w of 2" and output["pair"] == [2, "x"]
    assert output["extra"] == {"kept": True}
    assert world.history(description["executionArn"]) == [
        "ExecutionStarted",
        *["PassStateEntered", "PassStateExited"] * 3,
        "ExecutionSucceeded",
    ]


CHOICES = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.status", "StringEquals": "continue", "Next": "Again"},
                {
                    "And": [
                        {"Variable": "$.n", "NumericGreaterThan": 2},
                        {"Not": {"Variable": "$.flag", "IsPresent": True}},
                    ],
                    "Next": "Big",
                },
                {"Variable": "$.name", "StringMatches": "sample*", "Next": "Sample"},
            ],
            "Default": "Failed",
        },
        "Again": {"Type": "Pass", "Result": {"went": "again"}, "End": True},
        "Big": {"Type": "Succeed", "OutputPath": "$.n"},
        "Sample": {"Type": "Pass", "Result": {"went": "sample"}, "End": True},
        "Failed": {"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$.cause"},
    },
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"status": "continue", "n": 5}, ("SUCCEEDED", {"went": "again"}, None, None)),
        ({"status": "x", "n": 5}, ("SUCCEEDED", 5, None, None)),
        (
            {"status": "x", "n": 5, "flag": 1, "name": "sampleA"},
            ("SUCCEEDED", {"went": "sample"}, None, None),
        ),
        (
            {"status": "x", "n": 1, "name": "other", "error": "WDLError", "cause": '{"x": 1}'},
            ("FAILED", None, "WDLError", '{"x": 1}'),
        ),
    ],
)
def test_choice_rules_and_fail(
    world: World, given: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    assert outcome(world.run(CHOICES, given)) == expected


def test_a_choice_on_a_missing_field_is_a_runtime_error(own: World) -> None:
    """AWS: "Invalid path '$.status': The choice state's condition path references an invalid
    value" (moto takes the rule as false and goes on)."""
    status, _, error, _ = outcome(own.run(CHOICES, {"n": 1}))
    assert (status, error) == ("FAILED", "States.Runtime")


def task_machine(
    function: str, resource: str = "arn:aws:states:::lambda:invoke", **task: Any
) -> dict[str, Any]:
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": resource,
                "Parameters": {
                    "FunctionName": function,
                    "Payload": {"state.$": "$", "name.$": "$$.Execution.Name"},
                },
                **task,
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
            "Caught": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        },
    }


def test_a_lambda_task_its_payload_and_output_path(world: World) -> None:
    function = world.function("Echo", lambda event: {"got": event, "status": "ok"})
    description = world.run(task_machine(function, OutputPath="$.Payload"), {"a": 1})
    assert outcome(description) == (
        "SUCCEEDED",
        {"got": {"state": {"a": 1}, "name": "run-1"}, "status": "ok"},
        None,
        None,
    )
    assert world.history(description["executionArn"]) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]


class TransientError(Exception):
    pass


def test_a_function_error_is_retried_then_caught(world: World) -> None:
    calls: list[int] = []

    def flaky(event: Any) -> Any:
        calls.append(1)
        raise TransientError(f"attempt {len(calls)}")

    function = world.function("Flaky", flaky)
    retry = [
        {
            "ErrorEquals": ["TransientError"],
            "IntervalSeconds": 1,
            "MaxAttempts": 2,
            "BackoffRate": 1,
        }
    ]
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
    description = world.run(task_machine(function, Retry=retry, Catch=catch), {})
    status, _, error, cause = outcome(description)
    assert (status, error, len(calls)) == ("FAILED", "TransientError", 3)
    assert json.loads(cause) == {"errorType": "TransientError", "errorMessage": "attempt 3"}
    history = world.history(description["executionArn"])
    assert history.count("TaskFailed") == 3 and history[-2:] == [
        "FailStateEntered",
        "ExecutionFailed",
    ]


def test_an_uncaught_error_fails_the_execution(world: World) -> None:
    function = world.function("Broken", lambda event: 1 / 0)
    status, _, error, cause = outcome(world.run(task_machine(function), {}))
    assert (status, error) == ("FAILED", "ZeroDivisionError")
    assert json.loads(cause)["errorMessage"] == "division by zero"


def answering(world: World, how: str) -> Function:
    """A function that answers its task token from another thread, as the advance function
    does, while (or after) its own invocation returns."""

    def function(event: Any) -> Any:
        token = event["token"]

        def answer() -> None:
            time.sleep(0.1)
            if how == "success":
                world.sfn.send_task_success(taskToken=token, output=json.dumps({"run_id": "r"}))
            else:
                world.sfn.send_task_failure(
                    taskToken=token, error="RunFailed", cause="a task failed"
                )

        threading.Thread(target=answer).start()
        return {"submitted": True}

    return function


def callback_machine(function: str, **task: Any) -> dict[str, Any]:
    machine = task_machine(function, "arn:aws:states:::lambda:invoke.waitForTaskToken", **task)
    machine["States"]["Call"]["Parameters"]["Payload"] = {
        "token.$": "$$.Task.Token",
        "input.$": "$",
    }
    return machine


@pytest.mark.parametrize("how", ["success", "failure"])
def test_a_task_token_answered(world: World, how: str) -> None:
    function = world.function("Answers", answering(world, how))
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
    description = world.run(
        callback_machine(function, ResultPath="$.result", Catch=catch), {"x": 1}
    )
    if how == "success":
        assert outcome(description) == (
            "SUCCEEDED",
            {"x": 1, "result": {"run_id": "r"}},
            None,
            None,
        )
    else:  # (moto drops SendTaskFailure's cause; AWS passes it on, as ours does)
        cause = "a task failed" if world.kind == "ours" else None
        assert outcome(description) == ("FAILED", None, "RunFailed", cause)
    history = world.history(description["executionArn"])
    assert history[:5] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
    ]
    assert ("TaskSucceeded" if how == "success" else "TaskFailed") in history


def test_a_task_token_not_answered_times_out(world: World) -> None:
    function = world.function("Silent", lambda event: {"submitted": True})
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
    machine = callback_machine(function, TimeoutSecondsPath="$.timeout", Catch=catch)
    status, _, error, _ = outcome(world.run(machine, {"timeout": 1}))
    # (moto fails the task with States.Runtime on reaching TimeoutSecondsPath's timeout; AWS
    # with States.Timeout, as ours does, which Finish reports as the run's RunTimeout)
    assert (status, error) == (
        "FAILED",
        "States.Timeout" if world.kind == "ours" else "States.Runtime",
    )


def test_a_stopped_execution_is_aborted_and_its_token_taken_no_more(world: World) -> None:
    tokens: list[str] = []
    function = world.function("Keeps", lambda event: tokens.append(event["token"]) or {})
    arn = world.start(world.machine(callback_machine(function)), {})
    deadline = time.monotonic() + 10
    while not tokens and time.monotonic() < deadline:
        time.sleep(0.02)
    world.sfn.stop_execution(executionArn=arn, error="Terminated", cause="by the test")
    description = world.sfn.describe_execution(executionArn=arn)
    # (moto does not keep StopExecution's error and cause; AWS describes them, as ours does)
    stopped = ("Terminated", "by the test") if world.kind == "ours" else (None, None)
    assert outcome(description) == ("ABORTED", None, *stopped)
    with pytest.raises(ClientError):
        world.sfn.send_task_success(taskToken=tokens[0], output="{}")
    time.sleep(0.1)
    assert world.sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    if world.kind == "ours":  # (moto's history has no ExecutionAborted event; AWS's has)
        assert world.history(arn)[-1] == "ExecutionAborted"


def test_describe_and_list_shapes(world: World) -> None:
    machine = world.machine(PASSES)
    arns = [
        world.start(machine, {"name": "w", "count": i, "timeout": 1}, f"run-{i}") for i in range(3)
    ]
    for arn in arns:
        world.ended(arn)
    description = world.sfn.describe_execution(executionArn=arns[0])
    assert description["name"] == "run-0" and description["stateMachineArn"] == machine
    assert description["stopDate"] >= description["startDate"]
    listed = world.sfn.list_executions(stateMachineArn=machine, statusFilter="SUCCEEDED")
    assert {e["executionArn"] for e in listed["executions"]} == set(arns)
    assert (
        world.sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
        == []
    )
    with pytest.raises(world.sfn.exceptions.ExecutionDoesNotExist):
        world.sfn.describe_execution(executionArn=arns[0] + "x")
    with pytest.raises(world.sfn.exceptions.ExecutionAlreadyExists):
        world.start(machine, {"other": 1}, "run-0")
    with pytest.raises(world.sfn.exceptions.StateMachineDoesNotExist):
        world.sfn.describe_state_machine(stateMachineArn=machine + "x")


# -- ours, against AWS's documentation --
@pytest.fixture
def own(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    with ours() as world:
        yield world


@pytest.mark.parametrize(
    "definition",
    [
        {"StartAt": "A", "States": {"A": {"Type": "Map", "End": True}}},
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}},
        {"StartAt": "B", "States": {"A": {"Type": "Succeed"}}},
        {
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "End": True, "Parameters": {"x.$": "States.Nope($)"}}},
        },
        {
            "StartAt": "A",
            "States": {
                "A": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::batch:submitJob.sync",
                    "End": True,
                }
            },
        },
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, "ItemSelector": {}}}},
        {"StartAt": "A", "TimeoutSeconds": 5, "States": {"A": {"Type": "Succeed"}}},
    ],
)
def test_what_is_not_run_here_is_refused_when_created(
    own: World, definition: dict[str, Any]
) -> None:
    with pytest.raises(own.sfn.exceptions.InvalidDefinition):
        own.machine(definition)


def test_names_inputs_and_pages_as_aws_limits_them(own: World) -> None:
    machine = own.machine(PASSES)
    for name in ["a b", "x/y", "n" * 81, "a:b", "a*"]:
        with pytest.raises(own.sfn.exceptions.InvalidName):
            own.start(machine, {}, name)
    with pytest.raises(own.sfn.exceptions.InvalidExecutionInput):
        own.sfn.start_execution(stateMachineArn=machine, name="bad", input="{not json")
    with pytest.raises(own.sfn.exceptions.InvalidExecutionInput):
        own.start(machine, {"big": "x" * 256 * 1024}, "big")
    arns = {own.start(machine, {"name": "w", "count": i}, f"page-{i}") for i in range(150)}
    pages = own.sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
    listed = [e["executionArn"] for page in pages for e in page["executions"]]
    assert len(listed) == 150 and set(listed) == arns
    with pytest.raises(own.sfn.exceptions.InvalidToken):
        own.sfn.send_task_success(taskToken="nope", output="{}")


def test_a_running_twin_is_started_once(own: World) -> None:
    function = own.function("Waits", lambda event: {})
    machine = own.machine(callback_machine(function))
    first = own.start(machine, {"a": 1}, "twin")
    assert own.start(machine, {"a": 1}, "twin") == first
    own.sfn.stop_execution(executionArn=first)


def test_the_default_mode_starts_without_motos_step_functions_lambda_or_iam() -> None:
    """What the in-process services save at every run's start: moto's ASL interpreter (an
    ANTLR grammar), its Lambda, and its IAM (imported by moto's first request), not imported."""
    script = (
        "import sys\n"
        "from miniwdl_serverless.local.embedded import EmbeddedAWS\n"
        "with EmbeddedAWS(efs_root='/', mode='memory') as aws:\n"
        "    assert aws.sfn.describe_state_machine(stateMachineArn=aws.state_machine_arn)\n"
        "    print(sorted(m for m in sys.modules if m.startswith(('antlr4', 'moto.stepfunctions',"
        " 'moto.awslambda', 'moto.iam', 'moto.batch.models'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_state_output_over_256_kib_fails_the_execution(own: World) -> None:
    function = own.function("Big", lambda event: {"blob": "x" * 300_000})
    status, _, error, _ = outcome(own.run(task_machine(function), {}))
    assert (status, error) == ("FAILED", "States.DataLimitExceeded")


def test_handed_over_to_moto_its_own_executions_end_in_process(own: World) -> None:
    """Server mode entered after the in-process Step Functions started runs: those runs' task
    tokens, descriptions and stops stay in process (they end there), the rest goes to moto."""
    tokens: list[str] = []
    function = own.function("Keeps", lambda event: tokens.append(event["token"]) or {})
    machine = own.machine(callback_machine(function, ResultPath="$.result"))
    arn = own.start(machine, {"a": 1})
    deadline = time.monotonic() + 10
    while not tokens and time.monotonic() < deadline:
        time.sleep(0.02)
    service = in_process.serving(SERVICE)
    in_process.serve(SERVICE, HandedOver(service))
    with pytest.raises(own.sfn.exceptions.StateMachineDoesNotExist):  # moto's: not created there
        own.start(machine, {"a": 2}, "after")
    own.sfn.send_task_success(taskToken=tokens[0], output=json.dumps({"done": True}))
    assert outcome(own.ended(arn)) == ("SUCCEEDED", {"a": 1, "result": {"done": True}}, None, None)
    with pytest.raises(own.sfn.exceptions.ExecutionDoesNotExist):  # moto's answer
        own.sfn.describe_execution(executionArn=arn + "-other")
