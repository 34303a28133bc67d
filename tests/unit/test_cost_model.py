"""The cost model's arithmetic (core/cost_model.py), by
hand-worked examples."""

from __future__ import annotations

import pytest

from miniwdl_serverless.core.cost_model import (
    Cost,
    Invocations,
    Prices,
    Usage,
    fargate_cost,
    lambda_gb_seconds,
    merged,
    nat_cost,
    orchestration_cost,
)

PRICES = Prices()


def test_gb_seconds_bill_whole_milliseconds_and_cold_starts():
    # 2,000 invocations at 1,024 MB, 4.2 ms billed as 5 ms: 10 GB-s; 2 cold starts of 1.5 s
    invocation = Invocations("advance", 2_000, 1024, 4.2, cold_starts=2, init_ms=1_500)
    assert lambda_gb_seconds(invocation) == pytest.approx(10 + 3)
    assert lambda_gb_seconds(Invocations("finish", 1, 2048, 1_000)) == pytest.approx(2)


def test_orchestration_cost_by_line_item():
    usage = Usage(
        invocations=(Invocations("a", 1e6, 1024, 1), Invocations("b", 1e6, 512, 2)),
        ddb_read_units=2e6,
        ddb_write_units=1e6,
        sfn_transitions=4_000,
        aws_events=5e6,
        custom_events=1e6,
        sqs_requests=1e6,
    )
    cost = orchestration_cost(usage, PRICES)
    assert cost.items["Lambda GB-s"] == pytest.approx(2_000 * 0.0000166667)  # 1,000 + 1,000
    assert cost.items["Lambda requests"] == pytest.approx(0.40)
    assert cost.items["DynamoDB reads"] == pytest.approx(0.25)
    assert cost.items["DynamoDB writes"] == pytest.approx(0.625)
    assert cost.items["Step Functions"] == pytest.approx(0.10)
    assert cost.items["EventBridge"] == pytest.approx(1.00)  # AWS service events are free
    assert cost.items["SQS"] == pytest.approx(0.40)
    assert cost.total == pytest.approx(sum(cost.items.values()))


def test_fargate_1_vcpu_4_gib_for_10_hours():
    cost = fargate_cost(1, 4, 10, PRICES)
    assert cost.total == pytest.approx(0.4048 + 0.1778)


def test_nat_gateway_hours_data_and_its_public_address():
    cost = nat_cost(730, 10, PRICES)
    assert cost.items == pytest.approx(
        {"NAT gateway hours": 32.85, "NAT data processed": 0.45, "public IPv4": 3.65}
    )


def test_merged_adds_the_same_items():
    total = merged(Cost({"a": 1.0, "b": 2.0}), Cost({"b": 0.5}))
    assert total.items == {"a": 1.0, "b": 2.5} and total.total == 3.5
