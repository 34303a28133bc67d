"""The embedded Step Functions of the default mode: the calls the project makes (state machines,
executions, their history, task tokens) served in process, each execution run by the ASL
evaluator (local/asl.py) in a thread of its own, its Lambda tasks invoked in process.

moto's Step Functions (``--embedded-aws full``, server mode) parses a definition with an ANTLR
grammar that takes ~0.5 s to import and parse, twice a run (at CreateStateMachine and at
StartExecution), and wakes up every 20 ms to look for a task token's answer: this one validates
the definition once and is told of an answer. The responses have the shapes botocore parses
from AWS (datetimes, AWS's error codes); tests/integration/test_local_step_functions.py runs
the same executions on both and compares them.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from miniwdl_serverless.local import asl, in_process
from miniwdl_serverless.local.in_process import ServiceError

log = logging.getLogger(__name__)
Json = Any
# invoke(function name, payload) → (the response payload, the function error or None)
Invoke = Callable[[str, Json], tuple[bytes, str | None]]
INPUT_LIMIT = 256 * 1024  # an execution's input and a state's output, as on AWS
PAGE = 100  # ListExecutions' and GetExecutionHistory's default page size
# AWS's rule for execution names: 1-80 characters, none of whitespace, brackets, wildcards,
# the special characters below, or control characters
_BAD_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
LAMBDA = "lambda"
SERVICE = "sfn"  # botocore's event name of the service (local/in_process.py)
ABORTED = "States.Aborted"  # what a stopped execution's thread raises to leave (not recorded)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment: datetime.datetime) -> str:
    """The context object's timestamps: 2026-12-03T14:00:00.123Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Machine:
    arn: str
    name: str
    definition: str
    role_arn: str
    created: datetime.datetime
    states: Json  # the parsed definition
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "stateMachineArn": self.arn,
            "name": self.name,
            "status": "ACTIVE",
            "definition": self.definition,
            "roleArn": self.role_arn,
            "type": "STANDARD",
            "creationDate": self.created,
        }


@dataclass
class Task:
    """A task in flight: its Lambda invocation and, for .waitForTaskToken, its token's answer."""

    token: str | None
    invoked: tuple[bytes, str | None] | None = None
    invoke_failed: asl.StatesError | None = None
    answer: tuple[str, str, str] | None = None  # ("success", output, "") or ("failure", e, c)


class Execution:
    def __init__(self, machine: Machine, name: str, execution_input: str):
        self.machine, self.name, self.input = machine, name, execution_input
        self.arn = machine.arn.replace(":stateMachine:", ":execution:") + f":{name}"
        self.status = "RUNNING"
        self.started = _now()
        self.stopped: datetime.datetime | None = None
        self.output: str | None = None
        self.error: str | None = None
        self.cause: str | None = None
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()  # an answer, an invocation's end, a stop
        self.task: Task | None = None

    def summary(self) -> dict[str, Any]:
        summary = {
            "executionArn": self.arn,
            "stateMachineArn": self.machine.arn,
            "name": self.name,
            "status": self.status,
            "startDate": self.started,
        }
        if self.stopped is not None:
            summary["stopDate"] = self.stopped
        return summary

    def describe(self) -> dict[str, Any]:
        described = {**self.summary(), "input": self.input, "inputDetails": {"included": True}}
        if self.output is not None:
            described["output"] = self.output
            described["outputDetails"] = {"included": True}
        for key, value in (("error", self.error), ("cause", self.cause)):
            if value is not None:
                described[key] = value
        return described

    def record(self, kind: str, details_key: str | None = None, **details: Any) -> None:
        """A history event (AWS's shape: id, previousEventId, timestamp, type, details)."""
        with self.changed:
            event: dict[str, Any] = {
                "timestamp": _now(),
                "type": kind,
                "id": len(self.events) + 1,
                "previousEventId": len(self.events),
            }
            if details_key is not None:
                event[details_key] = details
            self.events.append(event)

    def end(self, status: str, **fields: str | None) -> bool:
        """The execution's end (the first one counts: a stop is final)."""
        with self.changed:
            if self.status != "RUNNING":
                return False
            self.status, self.stopped = status, _now()
            for key, value in fields.items():
                setattr(self, key, value)
            self.changed.notify_all()
            return True


class LocalStepFunctions:
    """The service: its operations take the request's parameters and return the response."""

    def __init__(self, account: str, region: str, invoke: Invoke):
        self.account, self.region, self.invoke = account, region, invoke
        self.machines: dict[str, Machine] = {}
        self.executions: dict[str, Execution] = {}
        self.tokens: dict[str, Execution] = {}
        self.lock = threading.Lock()

    # -- state machines --
    def create_state_machine(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["name"]
        arn = f"arn:aws:states:{self.region}:{self.account}:stateMachine:{name}"
        try:
            states = json.loads(request["definition"])
            asl.validate(states)
        except (ValueError, asl.InvalidDefinition) as exn:
            raise ServiceError("InvalidDefinition", str(exn)) from None
        with self.lock:
            known = self.machines.get(arn)
            if known is not None and known.definition != request["definition"]:
                raise ServiceError(
                    "StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'"
                )
            machine = known or Machine(
                arn, name, request["definition"], request["roleArn"], _now(), states
            )
            machine.tags.update({t["key"]: t["value"] for t in request.get("tags", [])})
            self.machines[arn] = machine
        return {"stateMachineArn": arn, "creationDate": machine.created}

    def _machine(self, arn: str) -> Machine:
        return _lookup(
            self.machines,
            arn,
            f"arn:aws:states:{self.region}:{self.account}:stateMachine:",
            "StateMachineDoesNotExist",
            "State Machine",
        )

    def describe_state_machine(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._machine(request["stateMachineArn"]).describe()

    def delete_state_machine(self, request: dict[str, Any]) -> dict[str, Any]:
        self.machines.pop(request["stateMachineArn"], None)
        return {}

    def tag_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        machine = self._machine(request["resourceArn"])
        machine.tags.update({t["key"]: t["value"] for t in request.get("tags", [])})
        return {}

    def list_tags_for_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        machine = self._machine(request["resourceArn"])
        return {"tags": [{"key": k, "value": v} for k, v in machine.tags.items()]}

    # -- executions --
    def start_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        machine = self._machine(request["stateMachineArn"])
        name = request.get("name") or str(uuid.uuid4())
        if not 1 <= len(name) <= 80 or _BAD_NAME.search(name):
            raise ServiceError("InvalidName", f"Invalid Name: '{name}'")
        execution_input = request.get("input", "{}")
        if len(execution_input.encode()) > INPUT_LIMIT:
            raise ServiceError(
                "InvalidExecutionInput", f"The input exceeds the limit of {INPUT_LIMIT} bytes"
            )
        try:
            json.loads(execution_input)
        except ValueError as exn:
            raise ServiceError(
                "InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exn}'"
            ) from None
        execution = Execution(machine, name, execution_input)
        with self.lock:
            known = self.executions.get(execution.arn)
            if known is not None:  # a standard workflow's StartExecution is idempotent on a
                if known.status == "RUNNING" and known.input == execution_input:  # running twin
                    return {"executionArn": known.arn, "startDate": known.started}
                raise ServiceError(
                    "ExecutionAlreadyExists", f"Execution Already Exists: '{known.arn}'"
                )
            self.executions[execution.arn] = execution
        execution.record(
            "ExecutionStarted",
            "executionStartedEventDetails",
            input=execution_input,
            inputDetails={"truncated": False},
            roleArn=machine.role_arn,
        )
        threading.Thread(
            target=_Run(self, execution).run, name=f"execution-{name}", daemon=True
        ).start()
        return {"executionArn": execution.arn, "startDate": execution.started}

    def execution(self, arn: str) -> Execution:
        return _lookup(
            self.executions,
            arn,
            f"arn:aws:states:{self.region}:{self.account}:execution:",
            "ExecutionDoesNotExist",
            "Execution",
        )

    def describe_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.execution(request["executionArn"]).describe()

    def list_executions(self, request: dict[str, Any]) -> dict[str, Any]:
        machine = self._machine(request["stateMachineArn"])
        status = request.get("statusFilter")
        newest_first = sorted(
            (e for e in list(self.executions.values()) if e.machine is machine),
            key=lambda e: e.started,
            reverse=True,
        )
        chosen = [e.summary() for e in newest_first if status is None or e.status == status]
        page, token = _page(chosen, request)
        return {"executions": page, **({"nextToken": token} if token else {})}

    def get_execution_history(self, request: dict[str, Any]) -> dict[str, Any]:
        events = list(self.execution(request["executionArn"]).events)
        if request.get("reverseOrder"):
            events.reverse()
        page, token = _page(events, request)
        return {"events": page, **({"nextToken": token} if token else {})}

    def stop_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        execution = self.execution(request["executionArn"])
        error, cause = request.get("error"), request.get("cause")
        if execution.end("ABORTED", error=error, cause=cause):
            details = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
            execution.record("ExecutionAborted", "executionAbortedEventDetails", **details)
        return {"stopDate": execution.stopped}

    # -- task tokens --
    def send_task_success(self, request: dict[str, Any]) -> dict[str, Any]:
        output = request["output"]
        try:
            json.loads(output)
        except ValueError:
            raise ServiceError("InvalidOutput", "Invalid output: not JSON") from None
        self._answer(request["taskToken"], ("success", output, ""))
        return {}

    def send_task_failure(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = ("failure", request.get("error") or "", request.get("cause") or "")
        self._answer(request["taskToken"], answer)
        return {}

    def send_task_heartbeat(self, request: dict[str, Any]) -> dict[str, Any]:
        self._task(request["taskToken"])
        return {}

    def _task(self, token: str) -> tuple[Execution, Task]:
        execution = self.tokens.get(token)
        if execution is None:
            raise ServiceError("InvalidToken", "Invalid token")
        task = execution.task
        if (
            task is None
            or task.token != token
            or task.answer is not None
            or execution.status != "RUNNING"
        ):
            raise ServiceError("TaskDoesNotExist", "Task Does Not Exist")
        return execution, task

    def _answer(self, token: str, answer: tuple[str, str, str]) -> None:
        with self.lock:
            execution, task = self._task(token)
            with execution.changed:
                task.answer = answer
                execution.changed.notify_all()


Known = TypeVar("Known")


class HandedOver:
    """What serves Step Functions once it is moto's (server mode, entered with the in-process
    one): the in-process service's own executions and task tokens stay its own, so that runs
    it started end there (their answers, stops and descriptions); everything else, new
    executions among it, goes on to moto."""

    OWN_KEYS = (("executionArn", "executions"), ("taskToken", "tokens"))

    def __init__(self, service: LocalStepFunctions):
        self.service = service

    def __getattr__(self, operation: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        method = getattr(self.service, operation)

        def served(request: dict[str, Any]) -> dict[str, Any]:
            for key, held in self.OWN_KEYS:
                if key in request and request[key] in getattr(self.service, held):
                    return dict(method(request))
            raise in_process.PassOn

        return served


def _lookup(known: dict[str, Known], arn: str, prefix: str, missing: str, kind: str) -> Known:
    """A state machine or execution by ARN, or AWS's error: InvalidArn for an ARN of another
    kind, account or region, ``missing`` for one that names nothing."""
    if not arn.startswith(prefix):
        raise ServiceError("InvalidArn", f"Invalid Arn: '{arn}'")
    found = known.get(arn)
    if found is None:
        raise ServiceError(missing, f"{kind} Does Not Exist: '{arn}'")
    return found


def _page(items: list[Any], request: dict[str, Any]) -> tuple[list[Any], str | None]:
    start = int(request.get("nextToken") or 0)
    size = int(request.get("maxResults") or PAGE)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class _Run:
    """One execution's thread: the states in turn, until an end state, a failure or a stop."""

    def __init__(self, service: LocalStepFunctions, execution: Execution):
        self.service, self.execution = service, execution
        self.states = execution.machine.states["States"]

    def context(self, state_name: str, entered: datetime.datetime, retries: int) -> Json:
        execution = self.execution
        return {
            "Execution": {
                "Id": execution.arn,
                "Input": json.loads(execution.input),
                "Name": execution.name,
                "RoleArn": execution.machine.role_arn,
                "StartTime": _iso(execution.started),
            },
            "State": {"EnteredTime": _iso(entered), "Name": state_name, "RetryCount": retries},
            "StateMachine": {"Id": execution.machine.arn, "Name": execution.machine.name},
        }

    def run(self) -> None:
        execution = self.execution
        name: str | None = execution.machine.states["StartAt"]
        data = json.loads(execution.input)
        try:
            while name is not None and execution.status == "RUNNING":
                name, data = self.step(name, data)
        except Exception as exn:
            if not isinstance(exn, asl.StatesError):  # a defect here: the execution says so
                log.exception("execution %s", execution.arn)
                exn = asl.StatesError(asl.RUNTIME, f"{type(exn).__name__}: {exn}")
            if execution.end("FAILED", error=exn.name, cause=exn.cause):
                execution.record(
                    "ExecutionFailed",
                    "executionFailedEventDetails",
                    error=exn.name,
                    cause=exn.cause,
                )
            return
        output = json.dumps(data, separators=(",", ":"))
        if name is None and execution.end("SUCCEEDED", output=output):
            execution.record(
                "ExecutionSucceeded",
                "executionSucceededEventDetails",
                output=output,
                outputDetails={"truncated": False},
            )

    def step(self, name: str, data: Json) -> tuple[str | None, Json]:
        """One state: (the next state's name or None at the end, its input)."""
        state = self.states[name]
        kind = state["Type"]
        entered = _now()
        self.execution.record(
            f"{kind}StateEntered",
            "stateEnteredEventDetails",
            name=name,
            input=json.dumps(data),
            inputDetails={"truncated": False},
        )
        if kind == "Fail":
            error = (
                asl.read_path(state["ErrorPath"], data, {})
                if "ErrorPath" in state
                else state.get("Error")
            )
            cause = (
                asl.read_path(state["CausePath"], data, {})
                if "CausePath" in state
                else state.get("Cause")
            )
            raise asl.StatesError(str(error or ""), str(cause or ""))
        effective = asl.select(state.get("InputPath", "$"), data, {})
        following: str | None = state.get("Next")
        if kind == "Task":
            result, caught = self.task(state, effective, data, entered, name)
            if caught is not None:  # the catcher's ResultPath placed the error; no OutputPath
                return self.exit(name, caught, result)
        elif kind == "Pass":
            result = (
                asl.fill(state["Parameters"], effective, self.context(name, entered, 0))
                if "Parameters" in state
                else state.get("Result", effective)
            )
            result = asl.write_path(state.get("ResultPath", "$"), data, result)
        elif kind == "Choice":
            following, result = asl.choose(state, effective), effective
        elif kind == "Wait":
            self.wait(state, effective)
            result = effective
        else:  # Succeed
            following, result = None, effective
        output = asl.select(state.get("OutputPath", "$"), result, {})
        return self.exit(name, following, output)

    def exit(self, name: str, following: str | None, output: Json) -> tuple[str | None, Json]:
        kind = self.states[name]["Type"]
        text = json.dumps(output)
        if len(text.encode()) > INPUT_LIMIT:  # what a state may pass on, as on AWS
            raise asl.StatesError(
                "States.DataLimitExceeded",
                f"The state/task '{name}' returned a result with a size exceeding the maximum "
                f"number of bytes service limit ({INPUT_LIMIT})",
            )
        self.execution.record(
            f"{kind}StateExited",
            "stateExitedEventDetails",
            name=name,
            output=text,
            outputDetails={"truncated": False},
        )
        return following, output

    def wait(self, state: Json, data: Json) -> None:
        if "Seconds" in state or "SecondsPath" in state:
            seconds = float(state.get("Seconds") or asl.read_path(state["SecondsPath"], data, {}))
        else:
            stamp = state.get("Timestamp") or asl.read_path(state["TimestampPath"], data, {})
            seconds = (asl._timestamp(stamp) - _now()).total_seconds()
        self.sleep(seconds)

    def sleep(self, seconds: float) -> None:
        """Wait, or less if the execution is stopped meanwhile."""
        with self.execution.changed:
            self.execution.changed.wait_for(
                lambda: self.execution.status != "RUNNING", max(0.0, seconds)
            )

    def task(
        self, state: Json, effective: Json, data: Json, entered: datetime.datetime, name: str
    ) -> tuple[Json, str | None]:
        """A Task state with its retries: (its result placed by ResultPath, None), or, when a
        catcher takes its error, (the error placed by the catcher's ResultPath, its Next)."""
        retriers = state.get("Retry", [])
        retried = [0] * len(retriers)
        while True:
            try:
                result = self.attempt(name, state, effective, entered, sum(retried))
            except asl.StatesError as exn:
                self.raise_if_stopped()
                delay = asl.retry_delay(retriers, exn.name, retried)
                if delay is not None:
                    self.sleep(delay)
                    self.raise_if_stopped()
                    continue
                catcher = asl.catcher_for(state.get("Catch", []), exn.name)
                if catcher is None:
                    raise
                caught = {"Error": exn.name, "Cause": exn.cause}
                return asl.write_path(catcher.get("ResultPath", "$"), data, caught), catcher["Next"]
            if "ResultSelector" in state:
                result = asl.fill(state["ResultSelector"], result, {})
            return asl.write_path(state.get("ResultPath", "$"), data, result), None

    def raise_if_stopped(self) -> None:
        if self.execution.status != "RUNNING":
            raise asl.StatesError(ABORTED, "the execution was stopped")

    def attempt(
        self, name: str, state: Json, effective: Json, entered: datetime.datetime, retries: int
    ) -> Json:
        """One attempt of a Lambda task: its result, or raises its StatesError."""
        execution, service = self.execution, self.service
        callback = state["Resource"].endswith(".waitForTaskToken")
        resource = state["Resource"].rsplit(":", 1)[-1]  # invoke, invoke.waitForTaskToken
        context = self.context(name, entered, retries)
        task = Task(token=uuid.uuid4().hex + uuid.uuid4().hex if callback else None)
        if task.token is not None:
            context["Task"] = {"Token": task.token}
        parameters = asl.fill(state.get("Parameters", {}), effective, context)
        timeout = state.get("TimeoutSeconds")
        if "TimeoutSecondsPath" in state:
            timeout = asl.read_path(state["TimeoutSecondsPath"], effective, context)
        where = {"resourceType": LAMBDA, "resource": resource}
        scheduled = {**where, "region": service.region, "parameters": json.dumps(parameters)}
        if timeout is not None:
            scheduled["timeoutInSeconds"] = int(timeout)
        execution.record("TaskScheduled", "taskScheduledEventDetails", **scheduled)
        with service.lock:
            execution.task = task
            if task.token is not None:
                service.tokens[task.token] = execution
        execution.record("TaskStarted", "taskStartedEventDetails", **where)
        threading.Thread(target=self.invoke, args=(task, parameters, where), daemon=True).start()
        deadline = None if timeout is None else _now() + datetime.timedelta(seconds=float(timeout))
        try:
            return self.outcome(task, callback, deadline, where)
        finally:
            with service.lock:
                task.answer = task.answer or ("done", "", "")  # a late answer: TaskDoesNotExist

    def invoke(self, task: Task, parameters: Json, where: dict[str, str]) -> None:
        function = str(parameters.get("FunctionName", "")).rsplit(":", 1)[-1]
        try:
            invoked = self.service.invoke(function, parameters.get("Payload", {}))
        except Exception as exn:  # the invocation itself failed (not the function)
            failure = (
                exn
                if isinstance(exn, asl.StatesError)
                else asl.StatesError("Lambda.ServiceException", f"{type(exn).__name__}: {exn}")
            )
            with self.execution.changed:
                task.invoke_failed = failure
                self.execution.changed.notify_all()
            return
        with self.execution.changed:
            task.invoked = invoked
            if task.token is not None and invoked[1] is None and self.execution.status == "RUNNING":
                output = invoked[0].decode(errors="replace")
                self.execution.record(
                    "TaskSubmitted", "taskSubmittedEventDetails", **where, output=output
                )
            self.execution.changed.notify_all()

    def outcome(
        self, task: Task, callback: bool, deadline: datetime.datetime | None, where: dict[str, str]
    ) -> Json:
        """The attempt's result once decided (raises its StatesError)."""
        self.wait_for_outcome(task, callback, deadline)
        self.raise_if_stopped()
        if task.invoke_failed is not None:
            return self.failed(task.invoke_failed.name, task.invoke_failed.cause, where)
        if task.invoked is not None and task.invoked[1] is not None:  # the function's error
            payload = task.invoked[0].decode(errors="replace")
            try:
                error = str(json.loads(payload)["errorType"])
            except Exception:
                error = "Exception"
            return self.failed(error, payload, where)
        if task.answer is not None:
            verdict, first, second = task.answer
            if verdict == "failure":
                return self.failed(first, second, where)
            execution_output = first
        elif task.invoked is not None and not callback:
            execution_output = json.dumps(
                {
                    "ExecutedVersion": "$LATEST",
                    "Payload": json.loads(task.invoked[0] or b"null"),
                    "SdkHttpMetadata": {"HttpStatusCode": 200},
                    "SdkResponseMetadata": {"RequestId": str(uuid.uuid4())},
                    "StatusCode": 200,
                }
            )
        else:
            cause = "The task did not answer within its timeout"
            details = {**where, "error": asl.TIMEOUT, "cause": cause}
            self.execution.record("TaskTimedOut", "taskTimedOutEventDetails", **details)
            raise asl.StatesError(asl.TIMEOUT, cause)
        self.execution.record(
            "TaskSucceeded", "taskSucceededEventDetails", **where, output=execution_output
        )
        return json.loads(execution_output)

    def wait_for_outcome(
        self, task: Task, callback: bool, deadline: datetime.datetime | None
    ) -> None:
        """Until the invocation fails, returns (a plain invoke) or its token is answered (a
        callback), the deadline passes or the execution is stopped."""
        execution = self.execution

        def decided() -> bool:
            if execution.status != "RUNNING" or task.invoke_failed or task.answer:
                return True
            if task.invoked is not None and (not callback or task.invoked[1] is not None):
                return True
            return deadline is not None and _now() >= deadline

        with execution.changed:
            while not decided():
                left = None if deadline is None else (deadline - _now()).total_seconds()
                execution.changed.wait(left)

    def failed(self, error: str, cause: str, where: dict[str, str]) -> Json:
        self.execution.record(
            "TaskFailed", "taskFailedEventDetails", **where, error=error, cause=cause
        )
        raise asl.StatesError(error, cause)


OPERATIONS = (
    "CreateStateMachine",
    "DescribeStateMachine",
    "DeleteStateMachine",
    "TagResource",
    "ListTagsForResource",
    "StartExecution",
    "DescribeExecution",
    "ListExecutions",
    "GetExecutionHistory",
    "StopExecution",
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendTaskHeartbeat",
)
