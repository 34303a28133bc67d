"""The Amazon States Language, evaluated: the pure part of the in-process Step Functions
(local/step_functions.py). Paths, Parameters with intrinsic functions, ResultPath, Choice
rules, Retry and Catch decisions, as AWS's reference describes them, for the states and fields
``validate`` accepts; anything else is refused when the state machine is created (an
InvalidDefinition naming it), so that a template using more of the language fails loudly here,
not silently wrong. ``--embedded-aws full`` runs the same definition on moto's interpreter."""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

Json = Any
STATES_ALL, TASK_FAILED, TIMEOUT, RUNTIME = (
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.Runtime",
)
COMMON_FIELDS = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath"}
STATE_FIELDS: dict[str, set[str]] = {
    "Pass": COMMON_FIELDS | {"Parameters", "Result", "ResultPath"},
    "Task": COMMON_FIELDS
    | {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"}
    | {"TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds"},
    "Choice": {"Type", "Comment", "InputPath", "OutputPath", "Choices", "Default"},
    "Wait": COMMON_FIELDS | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": {"Type", "Comment", "InputPath", "OutputPath"},
    "Fail": {"Type", "Comment", "Error", "ErrorPath", "Cause", "CausePath"},
}
RESOURCES = (
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::lambda:invoke.waitForTaskToken",
)
RETRIER_FIELDS = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
}
CATCHER_FIELDS = {"ErrorEquals", "Next", "ResultPath", "Comment"}


TERMINAL = (RUNTIME, "States.DataLimitExceeded")  # not taken by States.ALL


class InvalidDefinition(ValueError):
    """The definition is not one this interpreter runs (Step Functions' InvalidDefinition)."""


class StatesError(Exception):
    """An error an execution's state raises: ``name`` is what Retry and Catch match."""

    def __init__(self, name: str, cause: str):
        super().__init__(f"{name}: {cause}")
        self.name, self.cause = name, cause


# -- validation (at CreateStateMachine) --
def validate(definition: Json) -> None:
    """Raises InvalidDefinition for what this interpreter does not run or AWS would refuse."""
    if not isinstance(definition, dict) or not isinstance(definition.get("States"), dict):
        raise InvalidDefinition("the definition has no States object")
    states = definition["States"]
    if definition.get("StartAt") not in states:
        raise InvalidDefinition(f"StartAt names no state: {definition.get('StartAt')!r}")
    extra = set(definition) - {"Comment", "StartAt", "States", "Version"}
    if extra:
        raise InvalidDefinition(f"unsupported top-level field(s): {', '.join(sorted(extra))}")
    for name, state in states.items():
        _validate_state(name, state, states)


def _validate_state(name: str, state: Json, states: dict[str, Any]) -> None:
    where = f"/States/{name}"
    kind = state.get("Type") if isinstance(state, dict) else None
    if kind not in STATE_FIELDS:
        raise InvalidDefinition(f"{where}: unsupported state type {kind!r}")
    _only(state, STATE_FIELDS[kind], where)
    if kind not in ("Choice", "Succeed", "Fail") and ("Next" in state) == bool(state.get("End")):
        raise InvalidDefinition(f"{where}: exactly one of Next and End")
    for template in ("Parameters", "ResultSelector"):
        if template in state:
            _validate_template(state[template], f"{where}/{template}")
    for target in _targets(state, where):
        if target not in states:
            raise InvalidDefinition(f"{where}: Next names no state: {target!r}")


def _targets(state: Json, where: str) -> list[Any]:
    """The states this one may go to (its Choice rules and Task fields checked on the way)."""
    targets = [state.get("Next")] if "Next" in state else []
    if state["Type"] == "Choice":
        for rule in state.get("Choices", []):
            _validate_rule(rule, where)
            targets.append(rule.get("Next"))
        targets += [state["Default"]] if "Default" in state else []
    if state["Type"] == "Task":
        if state.get("Resource") not in RESOURCES:
            raise InvalidDefinition(f"{where}: unsupported Resource {state.get('Resource')!r}")
        for retrier in state.get("Retry", []):
            _only(retrier, RETRIER_FIELDS, f"{where}/Retry")
        for catcher in state.get("Catch", []):
            _only(catcher, CATCHER_FIELDS, f"{where}/Catch")
            targets.append(catcher.get("Next"))
    return targets


def _only(value: Json, allowed: set[str], where: str) -> None:
    extra = set(value) - allowed if isinstance(value, dict) else {"(not an object)"}
    if extra:
        raise InvalidDefinition(f"{where}: unsupported field(s) {', '.join(sorted(extra))}")


def _validate_template(template: Json, where: str) -> None:
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str) or not (
                    value.startswith("$") or value.startswith("States.")
                ):
                    raise InvalidDefinition(f"{where}/{key}: not a path or intrinsic function")
                if value.startswith("States."):
                    _Intrinsic(value).parse()  # raises for an unknown function or bad syntax
            else:
                _validate_template(value, f"{where}/{key}")
    elif isinstance(template, list):
        for index, value in enumerate(template):
            _validate_template(value, f"{where}[{index}]")


def _validate_rule(rule: Json, where: str) -> None:
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}/Choices: a rule is not an object")
    nested = [k for k in ("And", "Or", "Not") if k in rule]
    if nested:
        inner = rule[nested[0]]
        for each in inner if isinstance(inner, list) else [inner]:
            _validate_rule(each, where)
        return
    operators = [k for k in rule if k in COMPARISONS or k.removesuffix("Path") in COMPARISONS]
    if "Variable" not in rule or len(operators) != 1:
        raise InvalidDefinition(f"{where}/Choices: a rule needs a Variable and one comparison")


# -- paths --
_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def read_path(path: str, data: Json, context: Json) -> Json:
    """The value a reference path (``$``, ``$.a.b[0]``, ``$$.Execution.Id``) selects; a path
    that selects nothing raises States.Runtime, as on AWS."""
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    if not path.startswith("$"):
        raise StatesError(RUNTIME, f"invalid path {path!r}")
    value, position = root, 0
    while position < len(rest):
        step = _STEP.match(rest, position)
        if step is None:
            raise StatesError(RUNTIME, f"invalid path {path!r}")
        name, index, quoted, double = step.groups()
        key = name if name is not None else quoted if quoted is not None else double
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise StatesError(
                RUNTIME,
                f"The JSONPath {path!r} could not be found in the input {json.dumps(data)[:200]}",
            )
        position = step.end()
    return value


def is_present(path: str, data: Json) -> bool:
    try:
        read_path(path, data, {})
    except StatesError:
        return False
    return True


def write_path(path: str | None, data: Json, value: Json) -> Json:
    """ResultPath: ``$`` (or absent): the value itself; None (JSON null): the input unchanged;
    ``$.a.b``: the input with that field set (objects made along the way)."""
    if path is None:
        return data
    if path == "$":
        return value
    steps = [m.group(1) for m in re.finditer(r"\.([A-Za-z_][\w-]*)", path)]
    if not path.startswith("$.") or "".join(f".{s}" for s in steps) != path[1:]:
        raise StatesError(RUNTIME, f"unsupported ResultPath {path!r}")
    if not isinstance(data, dict):
        raise StatesError(RUNTIME, f"ResultPath {path!r} on a non-object input")
    result = copy.copy(data)
    target = result
    for step in steps[:-1]:
        child = target.get(step)
        target[step] = copy.copy(child) if isinstance(child, dict) else {}
        target = target[step]
    target[steps[-1]] = value
    return result


def select(path: str | None, data: Json, context: Json) -> Json:
    """InputPath and OutputPath: absent selects ``$``; JSON null selects {}."""
    if path is None:
        return {}
    return read_path(path, data, context)


# -- Parameters and intrinsic functions --
def fill(template: Json, data: Json, context: Json) -> Json:
    """A payload template (Parameters, ResultSelector) filled from the input and context."""
    if isinstance(template, dict):
        filled = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if value.startswith("States."):
                    filled[key[:-2]] = _Intrinsic(value).evaluate(data, context)
                else:
                    filled[key[:-2]] = copy.deepcopy(read_path(value, data, context))
            else:
                filled[key] = fill(value, data, context)
        return filled
    if isinstance(template, list):
        return [fill(value, data, context) for value in template]
    return template


_TOKEN = re.compile(
    r"\s*(?:(?P<name>States\.\w+)\s*\(|(?P<string>'(?:[^'\\]|\\.)*')|(?P<close>\))|(?P<comma>,)"
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<literal>true|false|null)"
    r"|(?P<path>\$\$?[^,)\s]*))"
)


class _Intrinsic:
    """One intrinsic function call's text, parsed into a tree and evaluated."""

    def __init__(self, text: str):
        self.text = text
        self.position = 0

    def parse(self) -> tuple[str, list[Any]]:
        self.position = 0
        call = self._call()
        if self.text[self.position :].strip():
            raise InvalidDefinition(f"trailing text in intrinsic function {self.text!r}")
        return call

    def _token(self) -> re.Match[str]:
        match = _TOKEN.match(self.text, self.position)
        if match is None:
            raise InvalidDefinition(f"cannot parse intrinsic function {self.text!r}")
        self.position = match.end()
        return match

    def _call(self) -> tuple[str, list[Any]]:
        match = self._token()
        name = match.group("name")
        if name is None:
            raise InvalidDefinition(f"not an intrinsic function: {self.text!r}")
        if name not in INTRINSICS:
            raise InvalidDefinition(f"unsupported intrinsic function {name}")
        arguments: list[Any] = []
        while True:
            saved = self.position
            match = self._token()
            if match.group("close"):
                return name, arguments
            if arguments:
                if not match.group("comma"):
                    raise InvalidDefinition(f"expected ',' in {self.text!r}")
                saved = self.position
                match = self._token()
            if match.group("name"):
                self.position = saved
                arguments.append(self._call())
            else:
                arguments.append(self._argument(match))

    def _argument(self, match: re.Match[str]) -> tuple[str, Any]:
        """A literal or path argument: (its kind: ' string, # JSON literal, $ path; its value)."""
        if match.group("string") is not None:
            return "'", _unescape(match.group("string")[1:-1])
        for group in ("number", "literal"):
            if match.group(group) is not None:
                return "#", json.loads(match.group(group))
        if match.group("path") is not None:
            return "$", match.group("path")
        raise InvalidDefinition(f"unexpected {match.group(0)!r} in {self.text!r}")

    def evaluate(self, data: Json, context: Json) -> Json:
        return _apply(self.parse(), data, context)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _apply(call: tuple[str, list[Any]], data: Json, context: Json) -> Json:
    name, arguments = call
    values = []
    for kind, value in arguments:
        if kind == "$":
            values.append(read_path(value, data, context))
        elif kind in ("'", "#"):
            values.append(value)
        else:  # a nested call
            values.append(_apply((kind, value), data, context))
    try:
        return INTRINSICS[name](*values)
    except StatesError:
        raise
    except Exception as exn:
        raise StatesError("States.IntrinsicFailure", f"{name}: {exn}") from None


def _format(template: str, *values: Json) -> str:
    pieces = re.split(r"(?<!\\)\{\}", template)
    if len(pieces) - 1 != len(values):
        raise ValueError(f"{len(pieces) - 1} placeholders for {len(values)} arguments")
    text = pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        text += (value if isinstance(value, str) else json.dumps(value)) + piece
    return _unescape(text)


def _json_merge(left: Json, right: Json, deep: bool) -> Json:
    if deep is not False:
        raise ValueError("only a shallow merge (false) is supported, as on AWS")
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise ValueError("both arguments must be JSON objects")
    return {**left, **right}


def _array_range(first: int, last: int, step: int) -> list[int]:
    return list(range(first, last + (1 if step > 0 else -1), step))


INTRINSICS: dict[str, Callable[..., Json]] = {
    "States.Format": _format,
    "States.StringToJson": lambda text: json.loads(text),
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.JsonMerge": _json_merge,
    "States.Array": lambda *values: list(values),
    "States.ArrayLength": lambda values: len(values),
    "States.ArrayGetItem": lambda values, index: values[index],
    "States.ArrayContains": lambda values, value: value in values,
    "States.ArrayRange": _array_range,
    "States.ArrayUnique": lambda values: list({json.dumps(v): v for v in values}.values()),
    "States.ArrayPartition": lambda values, size: [
        values[i : i + size] for i in range(0, len(values), size)
    ],
    "States.StringSplit": lambda text, separators: [
        piece for piece in re.split("|".join(map(re.escape, separators)), text) if piece
    ],
    "States.MathAdd": lambda left, right: left + right,
    "States.UUID": lambda: str(uuid.uuid4()),
    "States.Base64Encode": lambda text: base64.b64encode(text.encode()).decode(),
    "States.Base64Decode": lambda text: base64.b64decode(text).decode(),
    "States.Hash": lambda text, algorithm: hashlib.new(
        algorithm.replace("-", "").lower(), text.encode()
    ).hexdigest(),
}


# -- Choice rules --
def _timestamp(value: Json) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _typed(kind: str) -> Callable[[Json], bool]:
    checks: dict[str, Callable[[Json], bool]] = {
        "String": lambda v: isinstance(v, str),
        "Numeric": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "Boolean": lambda v: isinstance(v, bool),
        "Timestamp": lambda v: isinstance(v, str) and _is_timestamp(v),
    }
    return checks[kind]


def _is_timestamp(text: str) -> bool:
    try:
        _timestamp(text)
    except ValueError:
        return False
    return "T" in text


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}
COMPARISONS: set[str] = {
    f"{kind}{order}" for kind in ("String", "Numeric", "Timestamp") for order in _ORDER
}
COMPARISONS |= {"BooleanEquals", "StringMatches"}
COMPARISONS |= {
    f"Is{kind}" for kind in ("Present", "Null", "String", "Numeric", "Boolean", "Timestamp")
}


def _matches(text: str, pattern: str) -> bool:
    regex = "".join(
        ".*" if piece == "*" else re.escape(piece.replace("\\*", "*"))
        for piece in re.split(r"(?<!\\)(\*)", pattern)
    )
    return re.fullmatch(regex, text, re.DOTALL) is not None


def rule_holds(rule: Json, data: Json) -> bool:
    """Whether a Choice rule holds for the state's input."""
    if "And" in rule:
        return all(rule_holds(each, data) for each in rule["And"])
    if "Or" in rule:
        return any(rule_holds(each, data) for each in rule["Or"])
    if "Not" in rule:
        return not rule_holds(rule["Not"], data)
    variable = rule["Variable"]
    operator = next(k for k in rule if k != "Variable" and k != "Next" and k != "Comment")
    expected = rule[operator]
    if operator == "IsPresent":
        return is_present(variable, data) == expected
    value = read_path(variable, data, {})
    if operator.startswith("Is"):
        kind = operator[2:]
        holds = value is None if kind == "Null" else _typed(kind)(value)
        return bool(holds == expected)
    if operator.endswith("Path"):
        operator, expected = operator[:-4], read_path(expected, data, {})
    return _compare(operator, value, expected)


def _compare(operator: str, value: Json, expected: Json) -> bool:
    if operator == "StringMatches":
        return isinstance(value, str) and _matches(value, expected)
    if operator == "BooleanEquals":
        return isinstance(value, bool) and value == expected
    kind = next(k for k in ("String", "Numeric", "Timestamp") if operator.startswith(k))
    if not _typed(kind)(value):
        return False
    if kind == "Timestamp":
        value, expected = _timestamp(value), _timestamp(expected)
    return _ORDER[operator[len(kind) :]](value, expected)


def choose(state: Json, data: Json) -> str:
    for rule in state.get("Choices", []):
        if rule_holds(rule, data):
            return str(rule["Next"])
    if "Default" in state:
        return str(state["Default"])
    raise StatesError("States.NoChoiceMatched", "no Choice rule matched and there is no Default")


# -- Retry and Catch --
def handles(error_equals: list[str], error: str) -> bool:
    """Whether a retrier's or catcher's ErrorEquals takes this error (States.ALL takes all but
    the terminal States.Runtime and States.DataLimitExceeded; States.TaskFailed all but
    States.Timeout)."""
    if error in TERMINAL:
        return error in error_equals
    if error in error_equals or STATES_ALL in error_equals:
        return True
    return TASK_FAILED in error_equals and error != TIMEOUT


def retry_delay(retriers: list[Json], error: str, retried: list[int]) -> float | None:
    """The seconds to wait before the next attempt, or None: no retrier takes another attempt.
    ``retried``: each retrier's attempts so far (updated)."""
    for index, retrier in enumerate(retriers):
        if not handles(retrier["ErrorEquals"], error):
            continue
        if retried[index] >= retrier.get("MaxAttempts", 3):
            return None
        interval = (
            retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** retried[index]
        )
        retried[index] += 1
        return float(min(interval, retrier.get("MaxDelaySeconds", math.inf)))
    return None


def catcher_for(catchers: list[Json], error: str) -> Json | None:
    return next((c for c in catchers if handles(c["ErrorEquals"], error)), None)
