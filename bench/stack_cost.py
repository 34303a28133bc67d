"""What the deployed stack costs while no run is going, per month, computed from template.yaml
at its parameters' defaults (the stack makes its own network, file system and Batch queues)
with core/cost_model.py's prices. Every resource type the template declares must have a rule
here: a type this module does not know fails (tests/unit/test_stack_cost.py), so a billable
resource cannot enter the template unpriced. README.md's idle-cost table is this module's
output, and the test keeps it so.

    .venv/bin/python -m bench.stack_cost            print the table
    .venv/bin/python -m bench.stack_cost --readme   rewrite README.md's table
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from miniwdl_serverless.core.cost_model import (
    HOURS_PER_MONTH,
    Invocations,
    Prices,
    Usage,
    orchestration_cost,
)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
README = ROOT / "README.md"
BEGIN, END = "<!-- stack-cost:begin -->", "<!-- stack-cost:end -->"

# Prices not in cost_model.Prices (us-east-1, checked 2026-12-03 on the public pricing pages)
ALARM_MONTH = 0.10  # a standard-resolution metric alarm (CloudWatch pricing)
INTERFACE_ENDPOINT_HOUR = 0.01  # per AZ (PrivateLink pricing); gateway endpoints are free
XRAY_TRACE = 5.00 / 1e6  # traces recorded (X-Ray pricing)
# Assumed: an idle reconcile round (one ListExecutions, one dead-letter receive) is a cold start
IDLE_ROUND_MS, IDLE_INIT_MS = 150.0, 1_500.0

FREE = "nothing"
STORAGE = "storage only"


@dataclass(frozen=True)
class Line:
    resource_type: str
    count: int
    month: float  # dollars per idle month, all of this type together
    bills: str  # what bills, idle or not


def resources(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The resources the stack creates at the parameters' defaults (conditions evaluated)."""
    conditions = _Conditions(doc)
    return {
        name: resource
        for name, resource in doc["Resources"].items()
        if "Condition" not in resource or conditions.holds({"Condition": resource["Condition"]})
    }


class _Conditions:
    """CloudFormation's condition functions over the parameters' defaults."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.defaults = {k: v.get("Default", "") for k, v in doc.get("Parameters", {}).items()}
        self.conditions = doc.get("Conditions", {})

    def value(self, node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return self.defaults.get(node["Ref"], node["Ref"])
        if isinstance(node, dict) and "Fn::Join" in node:
            separator, items = node["Fn::Join"]
            return separator.join(str(v) for v in _as_list(self.value(items)))
        return node

    def holds(self, node: dict[str, Any]) -> bool:
        ((key, arg),) = node.items()
        if key == "Condition":
            return self.holds(self.conditions[arg])
        if key == "Fn::Equals":
            left, right = (self.value(v) for v in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.holds(arg[0])
        if key in ("Fn::And", "Fn::Or"):
            results = (self.holds(a) for a in arg)
            return all(results) if key == "Fn::And" else any(results)
        raise ValueError(f"condition {key} is not evaluated here")


def _as_list(node: Any) -> list[Any]:
    if isinstance(node, list):
        return node
    return [v for v in str(node).split(",") if v]


def schedule_rate_per_month(expression: Any, defaults: dict[str, Any]) -> float:
    """Invocations a month of a ``rate(N minutes)`` schedule (the default branch of an If)."""
    if isinstance(expression, dict) and "Fn::If" in expression:
        condition_true = str(defaults.get("ReconcileIntervalMinutes")) == "1"
        expression = expression["Fn::If"][1 if condition_true else 2]
    if isinstance(expression, dict) and "Fn::Sub" in expression:
        expression = re.sub(
            r"\$\{(\w+)\}", lambda m: str(defaults[m.group(1)]), expression["Fn::Sub"]
        )
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", str(expression))
    if match is None:
        raise ValueError(f"schedule {expression!r} is not priced here")
    minutes = int(match.group(1)) * (60 if match.group(2).startswith("hour") else 1)
    return HOURS_PER_MONTH * 60 / minutes


def function_month(resource: dict[str, Any], doc: dict[str, Any], prices: Prices) -> float:
    """A function's idle bill: its schedules' invocations (and their traces), nothing else."""
    props = resource.get("Properties", {})
    glob = doc.get("Globals", {}).get("Function", {})
    if "ProvisionedConcurrencyConfig" in props or "AutoPublishAlias" in props:
        raise ValueError("provisioned concurrency is not priced here")
    defaults = {k: v.get("Default", "") for k, v in doc.get("Parameters", {}).items()}
    month = 0.0
    for event in props.get("Events", {}).values():
        if event["Type"] in ("SQS", "Kinesis", "MQ", "MSK"):
            raise ValueError(f"a {event['Type']} event source polls while idle: not priced here")
        if event["Type"] not in ("Schedule", "ScheduleV2"):
            continue  # invoked only by traffic (EventBridge rules, DynamoDB streams: free polling)
        rounds = schedule_rate_per_month(event["Properties"]["Schedule"], defaults)
        memory = props.get("MemorySize", glob.get("MemorySize", 128))
        invocation = Invocations("idle", rounds, memory, IDLE_ROUND_MS, rounds, IDLE_INIT_MS)
        usage = Usage(invocations=(invocation,), ddb_read_units=0, ddb_write_units=0)
        month += orchestration_cost(usage, prices).total + rounds * prices.sqs_request
        if props.get("Tracing", glob.get("Tracing")) == "Active":
            month += rounds * XRAY_TRACE
    return month


def _compute_environment(resource: dict[str, Any], _doc: Any, _prices: Prices) -> float:
    minimum = resource["Properties"]["ComputeResources"].get("MinvCpus", 0)
    if minimum not in (0, "0"):
        raise ValueError("a compute environment with MinvCpus > 0 runs instances while idle")
    return 0.0


def _table(resource: dict[str, Any], _doc: Any, _prices: Prices) -> float:
    if resource["Properties"].get("BillingMode") != "PAY_PER_REQUEST":
        raise ValueError("a provisioned-capacity table bills while idle: not priced here")
    return 0.0


def _endpoint(resource: dict[str, Any], _doc: Any, _prices: Prices) -> float:
    kind = resource["Properties"].get("VpcEndpointType", "Gateway")
    if kind == "Gateway":
        return 0.0
    subnets = len(resource["Properties"].get("SubnetIds", [])) or 1
    return INTERFACE_ENDPOINT_HOUR * HOURS_PER_MONTH * subnets


def _alarm(_resource: Any, _doc: Any, _prices: Prices) -> float:
    return ALARM_MONTH


def _nat_gateway(_resource: Any, _doc: Any, prices: Prices) -> float:
    return prices.nat_hour * HOURS_PER_MONTH


def _address(_resource: Any, _doc: Any, prices: Prices) -> float:
    return prices.ipv4_hour * HOURS_PER_MONTH


# type → (one resource's idle dollars a month, or None for nothing; what bills)
Pricer = Callable[[dict[str, Any], dict[str, Any], Prices], float]
RULES: dict[str, tuple[Pricer | None, str]] = {
    "AWS::Serverless::Function": (
        function_month,
        "requests and GB-s while running; a schedule's rounds while idle",
    ),
    "AWS::Serverless::StateMachine": (None, "state transitions ($0.025 per 1,000)"),
    "AWS::Serverless::LayerVersion": (None, FREE),
    "AWS::DynamoDB::Table": (
        _table,
        "on demand: requests; storage and point-in-time backup per GB-month",
    ),
    "AWS::Logs::LogGroup": (None, f"{STORAGE} ($0.03/GB-month), kept the retention's days"),
    "AWS::S3::Bucket": (None, f"{STORAGE} ($0.023/GB-month) and requests"),
    "AWS::S3::BucketPolicy": (None, FREE),
    "AWS::SQS::Queue": (None, "requests (no function polls it: idle costs nothing)"),
    "AWS::SQS::QueuePolicy": (None, FREE),
    "AWS::CloudWatch::Alarm": (_alarm, "$0.10 per alarm-month"),
    "AWS::EFS::FileSystem": (None, f"{STORAGE} ($0.30/GB-month; run directories until deleted)"),
    "AWS::EFS::MountTarget": (None, FREE),
    "AWS::EFS::AccessPoint": (None, FREE),
    "AWS::Batch::ComputeEnvironment": (
        _compute_environment,
        "instances while tasks run (MinvCpus 0: none idle)",
    ),
    "AWS::Batch::JobQueue": (None, FREE),
    "AWS::EC2::LaunchTemplate": (None, FREE),
    "AWS::EC2::VPC": (None, FREE),
    "AWS::EC2::Subnet": (None, FREE),
    "AWS::EC2::RouteTable": (None, FREE),
    "AWS::EC2::Route": (None, FREE),
    "AWS::EC2::SubnetRouteTableAssociation": (None, FREE),
    "AWS::EC2::InternetGateway": (None, FREE),
    "AWS::EC2::VPCGatewayAttachment": (None, FREE),
    "AWS::EC2::SecurityGroup": (None, FREE),
    "AWS::EC2::VPCEndpoint": (_endpoint, "gateway endpoints: nothing"),
    "AWS::EC2::NatGateway": (_nat_gateway, "$0.045/hour and $0.045/GB"),
    "AWS::EC2::EIP": (_address, "$0.005/hour"),
    "AWS::IAM::Role": (None, FREE),
    "AWS::IAM::ManagedPolicy": (None, FREE),
    "AWS::IAM::InstanceProfile": (None, FREE),
    "AWS::CloudFormation::WaitConditionHandle": (None, FREE),
}


class Unpriced(ValueError):
    """A resource type (or setting) the idle-cost rules do not know."""


def idle_lines(doc: dict[str, Any], prices: Prices = Prices()) -> list[Line]:
    """One line per resource type the stack creates, most expensive first."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources(doc).values():
        by_type.setdefault(resource["Type"], []).append(resource)
    lines = []
    for kind, items in by_type.items():
        if kind not in RULES:
            raise Unpriced(f"{kind}: no idle-cost rule in bench/stack_cost.py")
        rule, bills = RULES[kind]
        try:
            month = sum(rule(r, doc, prices) for r in items) if rule else 0.0
        except ValueError as exn:
            raise Unpriced(f"{kind}: {exn}") from exn
        lines.append(Line(kind, len(items), month, bills))
    return sorted(lines, key=lambda line: (-line.month, line.resource_type))


def markdown(lines: list[Line]) -> str:
    total = sum(line.month for line in lines)
    rows = [
        "| resource type (count) | idle $/month | what bills |",
        "|---|---:|---|",
        *(
            f"| `{line.resource_type}` ({line.count}) | {line.month:.2f} | {line.bills} |"
            for line in lines
        ),
        f"| **total while idle** | **{total:.2f}** | plus storage: EFS, S3, logs, tables |",
    ]
    return "\n".join(rows)


def readme_block(template: Path = TEMPLATE) -> str:
    return markdown(idle_lines(yaml_parse(template.read_text())))


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + block + "\n" + text[end:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's table")
    args = parser.parse_args(argv)
    block = readme_block()
    if args.readme:
        README.write_text(replace_block(README.read_text(), block))
    print(block)


if __name__ == "__main__":
    main()
