"""What a run's orchestration costs at public AWS prices: a pure function of counts, prices and
durations (no AWS, no clock). The one price table: bench/bench_cost.py feeds it counted requests,
`miniwdl-serverless report` a run's (core/run_report.py).

Prices: us-east-1, on demand, x86, checked 2026-12-02 on the public pricing pages:
  Lambda           https://aws.amazon.com/lambda/pricing/
  DynamoDB         https://aws.amazon.com/dynamodb/pricing/on-demand/
  Step Functions   https://aws.amazon.com/step-functions/pricing/
  EventBridge      https://aws.amazon.com/eventbridge/pricing/  (events published by AWS
                   services to the default bus are free; scheduled rules are free)
  SQS              https://aws.amazon.com/sqs/pricing/
  Fargate          https://aws.amazon.com/fargate/pricing/
  NAT gateway      https://aws.amazon.com/vpc/pricing/
  Public IPv4      https://aws.amazon.com/vpc/pricing/  (every public IPv4 address, in use or not)
Free tiers are left out (an account's other use takes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float = 0.0000166667  # x86
    lambda_request: float = 0.20 / 1e6
    ddb_read_unit: float = 0.125 / 1e6  # on demand, per read request unit
    ddb_write_unit: float = 0.625 / 1e6  # on demand, per write request unit
    sfn_transition: float = 0.025 / 1e3  # standard workflows
    eventbridge_aws_event: float = 0.0  # AWS service events on the default bus
    eventbridge_custom_event: float = 1.00 / 1e6
    sqs_request: float = 0.40 / 1e6  # standard queue
    fargate_vcpu_hour: float = 0.04048  # Linux/x86
    fargate_gb_hour: float = 0.004445
    nat_hour: float = 0.045
    nat_gb: float = 0.045  # data processed
    ipv4_hour: float = 0.005


@dataclass(frozen=True)
class Invocations:
    """One function's invocations in a run: how many, its memory, its billed duration each."""

    function: str
    count: float
    memory_mb: int
    duration_ms: float
    cold_starts: float = 0  # INIT phases, billed as duration (no request of their own)
    init_ms: float = 0


@dataclass(frozen=True)
class Usage:
    """What one run (or one idle month) uses."""

    invocations: tuple[Invocations, ...]
    ddb_read_units: float
    ddb_write_units: float
    sfn_transitions: float = 0
    aws_events: float = 0  # Batch state changes, Step Functions status changes, S3 notifications
    custom_events: float = 0
    sqs_requests: float = 0


@dataclass(frozen=True)
class Cost:
    items: dict[str, float] = field(default_factory=dict)  # line item → dollars

    @property
    def total(self) -> float:
        return sum(self.items.values())


def lambda_gb_seconds(invocation: Invocations) -> float:
    """GB-seconds of one function's invocations: memory x duration, the duration billed in
    whole milliseconds (each cold start's INIT phase too)."""
    i = invocation
    billed_ms = i.count * math.ceil(i.duration_ms) + i.cold_starts * math.ceil(i.init_ms)
    return i.memory_mb / 1024 * billed_ms / 1e3


def orchestration_cost(usage: Usage, prices: Prices) -> Cost:
    """The serverless controller's bill for the usage, by line item."""
    gb_seconds = sum(lambda_gb_seconds(i) for i in usage.invocations)
    requests = sum(i.count for i in usage.invocations)
    return Cost(
        {
            "Lambda GB-s": gb_seconds * prices.lambda_gb_second,
            "Lambda requests": requests * prices.lambda_request,
            "DynamoDB reads": usage.ddb_read_units * prices.ddb_read_unit,
            "DynamoDB writes": usage.ddb_write_units * prices.ddb_write_unit,
            "Step Functions": usage.sfn_transitions * prices.sfn_transition,
            "EventBridge": usage.aws_events * prices.eventbridge_aws_event
            + usage.custom_events * prices.eventbridge_custom_event,
            "SQS": usage.sqs_requests * prices.sqs_request,
        }
    )


def nat_cost(hours: float, gigabytes: float, prices: Prices) -> Cost:
    """A NAT gateway and its public IPv4 address for ``hours``, processing ``gigabytes``."""
    return Cost(
        {
            "NAT gateway hours": hours * prices.nat_hour,
            "NAT data processed": gigabytes * prices.nat_gb,
            "public IPv4": hours * prices.ipv4_hour,
        }
    )


def fargate_cost(vcpus: float, memory_gib: float, hours: float, prices: Prices) -> Cost:
    """A Fargate task of this size for ``hours`` (miniwdl-aws's workflow job)."""
    return Cost(
        {
            "Fargate vCPU": vcpus * hours * prices.fargate_vcpu_hour,
            "Fargate memory": memory_gib * hours * prices.fargate_gb_hour,
        }
    )


def merged(*costs: Cost) -> Cost:
    items: dict[str, float] = {}
    for cost in costs:
        for name, dollars in cost.items.items():
            items[name] = items.get(name, 0.0) + dollars
    return Cost(items)
