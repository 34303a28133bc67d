"""What the embedded mode reads from the project (template.yaml, the ASL) instead of
repeating it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# libyaml's loader where PyYAML has it: the pure-Python one takes ~0.3 s on template.yaml
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):  # type: ignore[misc]
    """YAML loader that turns CloudFormation short tags (!Ref, !GetAtt, ...) into dicts."""


def _construct_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def project_root() -> Path:
    """The checkout holding template.yaml (MSLS_PROJECT_ROOT overrides)."""
    if os.environ.get("MSLS_PROJECT_ROOT"):
        return Path(os.environ["MSLS_PROJECT_ROOT"])
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").exists() and (parent / "statemachine").is_dir():
            return parent
    raise FileNotFoundError("cannot find the project's template.yaml (set MSLS_PROJECT_ROOT)")


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    event_patterns: list[dict[str, Any]]
    # the filters of its DynamoDB stream event source mappings (the work table's)
    stream_patterns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TableSpec:
    logical_id: str
    key_schema: list[dict[str, str]]
    attributes: list[dict[str, str]]


class Project:
    """template.yaml and the state machine definition, parsed."""

    def __init__(self, root: Path | None = None):
        self.root = root or project_root()
        with open(self.root / "template.yaml") as infile:
            self.template: dict[str, Any] = yaml.load(infile, Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)
        self.resources: dict[str, Any] = self.template["Resources"]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def functions(self) -> list[FunctionSpec]:
        found = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            patterns = [
                event["Properties"]["Pattern"]
                for event in (props.get("Events") or {}).values()
                if event.get("Type") == "EventBridgeRule"
            ]
            streams = [
                json.loads(criteria["Pattern"])
                for event in (props.get("Events") or {}).values()
                if event.get("Type") == "DynamoDB"
                for criteria in event["Properties"]["FilterCriteria"]["Filters"]
            ]
            code = self.root / props["CodeUri"]
            found.append(FunctionSpec(logical_id, code, props["Handler"], patterns, streams))
        return found

    def tables(self) -> list[TableSpec]:
        return [
            TableSpec(
                logical_id, r["Properties"]["KeySchema"], r["Properties"]["AttributeDefinitions"]
            )
            for logical_id, r in self.of_type("AWS::DynamoDB::Table").items()
        ]

    def buckets(self) -> dict[str, dict[str, Any]]:
        """S3 buckets: logical id → properties."""
        return {k: v.get("Properties") or {} for k, v in self.of_type("AWS::S3::Bucket").items()}

    def table_for_env(self, variable: str) -> str:
        """Logical id of the table that the functions' environment variable refers to."""
        value = self.template["Globals"]["Function"]["Environment"]["Variables"][variable]
        return str(value["Ref"])

    def state_machine(self) -> tuple[str, dict[str, Any]]:
        (logical_id, resource), *_ = self.of_type("AWS::Serverless::StateMachine").items()
        props = resource["Properties"]
        with open(self.root / props["DefinitionUri"]) as infile:
            definition = infile.read()
        return definition, props.get("DefinitionSubstitutions") or {}

    def parameter_default(self, name: str) -> Any:
        return self.template["Parameters"][name].get("Default")

    def definition(self, resolve: Any) -> dict[str, Any]:
        """The ASL with DefinitionSubstitutions applied (``resolve`` maps {Ref|GetAtt: ...})."""
        text, substitutions = self.state_machine()
        for key, value in substitutions.items():
            text = text.replace("${" + key + "}", str(resolve(value)))
        return json.loads(text)  # type: ignore[no-any-return]


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge pattern matching for the forms template.yaml uses: lists of values and the
    ``prefix`` / ``suffix`` operators. A list holding anything else (``!Ref``, ``!If``, operators
    not evaluated here) is not evaluated: it matches."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches(expected, actual):
                return False
        elif isinstance(expected, list):
            tests = [_value_test(e) for e in expected]
            if all(t is not None for t in tests) and not any(
                t(actual) for t in tests if t is not None
            ):
                return False
    return True


def _value_test(expected: Any) -> Callable[[Any], bool] | None:
    """A test for one element of a pattern's value list, or None if it cannot be evaluated here."""
    if isinstance(expected, (str, int, float, bool)):
        return lambda actual: bool(actual == expected)
    if isinstance(expected, dict) and len(expected) == 1:
        ((operator, operand),) = expected.items()
        if operator == "prefix" and isinstance(operand, str):
            return lambda actual: isinstance(actual, str) and actual.startswith(operand)
        if operator == "suffix" and isinstance(operand, str):
            return lambda actual: isinstance(actual, str) and actual.endswith(operand)
    return None
