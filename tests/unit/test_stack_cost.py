"""The stack's idle cost, computed from template.yaml (bench/stack_cost.py): every resource type
priced, the README's table the template's, and the rules that make something bill while idle."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from bench import stack_cost
from miniwdl_serverless.core.cost_model import HOURS_PER_MONTH, Prices


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml_parse(stack_cost.TEMPLATE.read_text())


def month_of(doc: dict[str, Any], kind: str) -> float:
    return next(line.month for line in stack_cost.idle_lines(doc) if line.resource_type == kind)


def test_the_readme_table_is_the_templates() -> None:
    text = stack_cost.README.read_text()
    assert stack_cost.BEGIN in text and stack_cost.END in text
    start = text.index(stack_cost.BEGIN) + len(stack_cost.BEGIN)
    assert text[start : text.index(stack_cost.END)].strip() == stack_cost.readme_block(), (
        "README.md's idle-cost table is out of date: .venv/bin/python -m bench.stack_cost --readme"
    )


def test_the_default_stack_costs_well_under_a_dollar_a_month_idle(template) -> None:
    lines = stack_cost.idle_lines(template)
    total = sum(line.month for line in lines)
    assert 0 < total < 1.0
    kinds = {line.resource_type for line in lines}
    assert "AWS::EC2::NatGateway" not in kinds and "AWS::EC2::VPC" in kinds  # its own network
    # the reconcile schedule: rate(5 minutes) at the default, every round billed
    assert stack_cost.schedule_rate_per_month("rate(5 minutes)", {}) == HOURS_PER_MONTH * 12
    assert month_of(template, "AWS::Serverless::Function") > 0
    assert month_of(template, "AWS::CloudWatch::Alarm") == pytest.approx(stack_cost.ALARM_MONTH)


def test_a_resource_type_without_a_rule_fails(template) -> None:
    doc = copy.deepcopy(template)
    doc["Resources"]["Key"] = {"Type": "AWS::KMS::Key", "Properties": {}}
    with pytest.raises(stack_cost.Unpriced, match="AWS::KMS::Key"):
        stack_cost.idle_lines(doc)


def test_a_nat_gateway_and_its_address_bill_by_the_hour(template) -> None:
    doc = copy.deepcopy(template)
    doc["Resources"]["Nat"] = {"Type": "AWS::EC2::NatGateway", "Properties": {}}
    doc["Resources"]["NatIp"] = {"Type": "AWS::EC2::EIP", "Properties": {}}
    prices = Prices()
    assert month_of(doc, "AWS::EC2::NatGateway") == pytest.approx(prices.nat_hour * 730)
    assert month_of(doc, "AWS::EC2::EIP") == pytest.approx(prices.ipv4_hour * 730)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["Resources"]["SpotComputeEnvironment"]["Properties"]["ComputeResources"].update(
            MinvCpus=2
        ),
        lambda d: d["Resources"]["RunsTable"]["Properties"].update(BillingMode="PROVISIONED"),
        lambda d: d["Resources"]["ReconcileFunction"]["Properties"]["Events"].update(
            Queue={"Type": "SQS", "Properties": {}}
        ),
    ],
    ids=["min-vcpus", "provisioned-table", "sqs-poller"],
)
def test_settings_that_bill_while_idle_are_refused_unpriced(template, change) -> None:
    doc = copy.deepcopy(template)
    change(doc)
    with pytest.raises(stack_cost.Unpriced):
        stack_cost.idle_lines(doc)


def test_resources_under_a_false_condition_are_not_counted(template) -> None:
    doc = copy.deepcopy(template)
    doc["Parameters"]["VpcId"]["Default"] = "vpc-0123"  # bring your own network
    kinds = {line.resource_type for line in stack_cost.idle_lines(doc)}
    assert "AWS::EC2::VPC" not in kinds and "AWS::EC2::Subnet" not in kinds
    assert "AWS::Serverless::Function" in kinds
