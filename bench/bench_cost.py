"""What orchestrating a 1,000-task, 10-hour run costs at public AWS prices (core/cost_model.py),
next to miniwdl-aws's Fargate workflow job for the same 10 hours, with and without a NAT gateway;
and the stack's idle cost per month (bench/stack_cost.py: from the template).

The counts are measured: a scatter of N task calls runs on the in-memory ports
(tests/unit/harness.py) behind bench/bench_completions.py's counting proxies: the start, each
shard's RUNNING and SUCCEEDED events (advance), and one reconcile round while the run is live.
DynamoDB request units are counted per item on the store's calls (a strongly consistent read of
an item up to 4 KB: 1 unit; a write up to 1 KB: 1 unit; a transaction's action: 2 units).
Counted at N, scaled to TASKS (per-task requests are flat in N: bench_completions.py).

Assumed (named constants below): a Lambda's billed duration is its measured CPU time plus
LATENCY_MS per AWS request it makes, plus one INIT_MS cold start per function and run; Finish
takes FINISH_MS; NAT_GB pass the NAT gateway (image pulls, logs; S3 and DynamoDB go through the
stack's free gateway endpoints). Step Functions transitions: the states a successful run passes
through in statemachine/run_workflow.asl.json.

    .venv/bin/python -m bench.bench_cost            (counted at N = 1,000)
    .venv/bin/python -m bench.bench_cost --quick    (counted at N = 50, scaled)

Prints a table and merges the figures into bench/results.json under "cost".
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from bench import bench_completions, stack_cost
from bench.results_file import merge
from miniwdl_serverless.controller.advance import on_batch_event
from miniwdl_serverless.controller.work import deliver_in_process
from miniwdl_serverless.core.cost_model import (
    HOURS_PER_MONTH,
    Invocations,
    Prices,
    Usage,
    fargate_cost,
    merged,
    nat_cost,
    orchestration_cost,
)
from miniwdl_serverless.core.work import OUTSIDE_KINDS, WorkItem
from tests.unit.harness import Harness

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results.json"
TASKS, HOURS = 1_000, 10.0
TEMPLATE = ROOT / "template.yaml"
RECONCILE_MINUTES = yaml_parse(TEMPLATE.read_text())["Parameters"]["ReconcileIntervalMinutes"][
    "Default"
]
FARGATE_VCPUS, FARGATE_GIB = 1, 4  # miniwdl-aws's workflow job
# assumed: the latency of one AWS request from a Lambda, by kind (ms)
LATENCY_MS = {"DynamoDB": 8.0, "EFS": 3.0, "Batch": 40.0, "Step Functions": 25.0, "SQS": 25.0}
INIT_MS = 1_500.0  # a cold start (importing miniwdl, boto3), billed; one per function and run
FINISH_MS = 2_000.0  # Finish: outputs.json, no s3upload
FINISH_REQUESTS = {"read units": 3, "write units": 2}  # the run, its outputs job; the run ended
NAT_GB = 1.0  # per run through the NAT gateway
SUBMIT_BATCH = 100  # the submitter's stream BatchSize (template.yaml)


# -- counting --------------------------------------------------------------------------------


class Units:
    """DynamoDB request units of the store's (and cache's) calls, per item."""

    READS = {"get_run", "get_job", "get_jobs", "query_jobs", "get_entry", "get"}

    def __init__(self, port: Any):
        self._port = port
        self.units: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if name == "query_jobs":  # an iterator: read here, handed on as a list
                result = list(result)
            self.units.update(_units(name, args, result))
            return result

        return counted


def item_units(item: WorkItem) -> int:
    """Write units of one work-table item: 1 a KB of its attributes (names and values)."""
    size = sum(len(k) + len(json.dumps(v)) for k, v in item.to_item(0.0).items())
    return max(1, math.ceil(size / 1024))


def _units(name: str, args: tuple, result: Any) -> Counter[str]:
    if name == "get_jobs":
        return Counter({"read units": len(set(args[1]))})
    if name == "query_jobs":
        return Counter({"read units": max(1, len(result))})
    if name in Units.READS:
        return Counter({"read units": 1})
    if name == "put":  # the work table's items (BatchWriteItem): 1 KB a unit
        return Counter({"write units": sum(item_units(i) for i in args[0])})
    if name == "put_new_jobs":
        return Counter({"write units": 2 * len(args[0])})
    if name == "complete":
        return Counter({"write units": 2 * (1 + len(args[0].targets()))})
    return Counter({"write units": 1})


class Phase:
    """The requests, units and CPU time of some invocations of one function. Phases nest: the
    work an invocation hands to the work table's functions, which the harness delivers while
    the invocation is still on the stack, is theirs, not its (the inner one suspends the
    outer)."""

    active: list[Phase] = []

    def __init__(self, name: str, proxies: list[Any], units: list[Units]):
        self.name, self.proxies, self.unit_proxies = name, proxies, units
        self.invocations, self.cpu = 0, 0.0
        self.requests: Counter[str] = Counter()
        self.units: Counter[str] = Counter()

    def __enter__(self) -> Phase:
        if Phase.active:
            Phase.active[-1]._pause()
        Phase.active.append(self)
        self._resume()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._pause()
        Phase.active.pop()
        if Phase.active:
            Phase.active[-1]._resume()

    def _resume(self) -> None:
        for proxy in self.proxies:
            proxy.requests.clear()
        for proxy in self.unit_proxies:
            proxy.units.clear()
        self._started = time.process_time()

    def _pause(self) -> None:
        self.cpu += time.process_time() - self._started
        for proxy in self.proxies:
            self.requests.update(proxy.requests)
        for unit_proxy in self.unit_proxies:
            self.units.update(unit_proxy.units)

    def figures(self) -> dict[str, Any]:
        requests = {k: v for k, v in self.requests.items() if not k.startswith("EFS ")}
        requests["EFS file operation"] = self.requests.get("EFS file operation", 0)
        per = max(1, self.invocations)
        return {
            "invocations": self.invocations,
            "cpu_ms": self.cpu * 1e3 / per,
            "requests": {k: v / per for k, v in sorted(requests.items()) if v},
            "units": {k: v / per for k, v in sorted(self.units.items())},
        }


def count(n: int) -> dict[str, dict[str, Any]]:
    """A scatter of ``n`` calls, start to end, by function: per invocation figures."""
    harness = Harness()
    proxies = bench_completions.counted_ports(harness)
    dead_letters = bench_completions.Counting(harness.dead_letters, lambda *_: Counter({"SQS": 1}))
    harness.dead_letters = dead_letters  # type: ignore[assignment]
    units = [Units(harness.ports.store), Units(harness.ports.cache), Units(harness.ports.work)]
    harness.ports = bench_completions.dataclasses.replace(
        harness.ports, store=units[0], cache=units[1], work=units[2]
    )
    functions = ("start", "advance", "reconcile", "submitter", "work")
    phases = {f: Phase(f, [*proxies, dead_letters], units) for f in functions}
    _deliver_by_function(harness, phases)
    with phases["start"] as phase:
        harness.start(bench_completions.WORKFLOW, {"n": n})
        phase.invocations = 1
    jobs = harness.open_jobs()
    assert len(jobs) == n
    advance = phases["advance"]
    for status, reason in (("RUNNING", None), ("SUCCEEDED", "Essential container in task exited")):
        if status == "SUCCEEDED":
            with phases["reconcile"] as phase:
                harness.reconcile(later=0)
                phase.invocations = 1
        for job in jobs:
            harness.lose(job, status, 0 if reason else None, reason)
            detail = harness.detail(job, status, 0 if reason else None, reason)
            with advance:
                on_batch_event(detail, harness.ports)
            advance.invocations += 1
    harness.work.drain()  # the answer, handed to the submitter
    assert harness.answer() is not None and harness.answer()[0] == "success"  # type: ignore[index]
    return {name: phase.figures() for name, phase in phases.items()}


def _deliver_by_function(harness: Harness, phases: dict[str, Phase]) -> None:
    """The work table's stream as on AWS: each batch of up to SUBMIT_BATCH of the submitter's
    items (submissions, and the calls the functions inside the VPC hand on) one invocation of
    the submitter, each other item one of the work function (BatchSize 1)."""

    def deliver(items: list[WorkItem]) -> None:
        outside = [item for item in items if item.kind in OUTSIDE_KINDS]
        if outside:
            with phases["submitter"] as phase:
                deliver_in_process(outside, harness.ports, harness.submitter(), harness.pacer)
                phase.invocations += math.ceil(len(outside) / SUBMIT_BATCH)
        for item in items:
            if item.kind not in OUTSIDE_KINDS:
                with phases["work"] as phase:
                    deliver_in_process([item], harness.ports, harness.submitter(), harness.pacer)
                    phase.invocations += 1

    harness.work.batch = SUBMIT_BATCH
    harness.work.deliver = deliver


# -- the model's inputs ----------------------------------------------------------------------


def memory_sizes(template: Path = ROOT / "template.yaml") -> dict[str, int]:
    """Each function's MemorySize (MB): its own, or the Globals'."""
    doc = yaml_parse(template.read_text())
    default = doc["Globals"]["Function"]["MemorySize"]
    return {
        name: resource["Properties"].get("MemorySize", default)
        for name, resource in doc["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def states_passed(asl: dict[str, Any], status: str = "succeeded") -> list[str]:
    """The states a run passes through, Finish answering ``status`` once (no retries)."""
    passed, name = [], asl["StartAt"]
    while name is not None:
        passed.append(name)
        state = asl["States"][name]
        if state["Type"] in ("Succeed", "Fail") or state.get("End"):
            break
        if state["Type"] == "Choice":
            chosen = [c["Next"] for c in state["Choices"] if c.get("StringEquals") == status]
            name = chosen[0] if chosen else state["Default"]
        else:
            name = state["Next"]
    return passed


def duration_ms(figures: dict[str, Any]) -> float:
    """Assumed billed duration: CPU time plus each request's latency."""
    waits = sum(
        per * LATENCY_MS[next(k for k in LATENCY_MS if kind.startswith(k))]
        for kind, per in figures["requests"].items()
    )
    return float(figures["cpu_ms"] + waits)


def paced_ms(figures: dict[str, Any], template: Path = ROOT / "template.yaml") -> float:
    """The submitter's billed wait for its pacer, per invocation, assuming a saturated queue
    (a scatter's burst): each instance submits at SubmitRate / SubmitterConcurrency a second,
    so a SubmitJob takes that interval, of which its own latency is already counted."""
    parameters = yaml_parse(template.read_text())["Parameters"]
    share = parameters["SubmitRate"]["Default"] / parameters["SubmitterConcurrency"]["Default"]
    submissions = figures["requests"].get("Batch SubmitJob", 0)
    return float(submissions * max(0.0, 1e3 / share - LATENCY_MS["Batch"]))


def run_usage(counts: dict[str, dict[str, Any]], n: int, memory: dict[str, int]) -> Usage:
    """One TASKS-task, HOURS-hour run, from per-invocation counts at ``n`` tasks."""
    scale = TASKS / n
    counts = {**counts, "start": _scaled(counts["start"], scale)}  # it submits every shard
    rounds = HOURS * 60 / RECONCILE_MINUTES
    calls = {
        "start": (1.0, "StartFunction"),
        "advance": (counts["advance"]["invocations"] * scale, "AdvanceFunction"),
        "reconcile": (rounds, "ReconcileFunction"),
        "submitter": (counts["submitter"]["invocations"] * scale, "SubmitterFunction"),
        "work": (counts["work"]["invocations"] * scale, "WorkFunction"),
    }
    durations = {name: duration_ms(counts[name]) for name in calls}
    durations["submitter"] += paced_ms(counts["submitter"])
    invocations = [
        Invocations(name, times, memory[function], durations[name], 1, INIT_MS)
        for name, (times, function) in calls.items()
    ]
    invocations.append(Invocations("finish", 1, memory["FinishFunction"], FINISH_MS, 1, INIT_MS))
    reads = writes = sqs = 0.0
    for name, (times, _) in calls.items():
        units = counts[name]["units"]
        reads += times * units.get("read units", 0)
        writes += times * units.get("write units", 0)
        sqs += times * counts[name]["requests"].get("SQS", 0)
    reads += FINISH_REQUESTS["read units"]
    writes += FINISH_REQUESTS["write units"]
    asl = json.loads((ROOT / "statemachine" / "run_workflow.asl.json").read_text())
    return Usage(
        invocations=tuple(invocations),
        ddb_read_units=reads,
        ddb_write_units=writes,
        sfn_transitions=len(states_passed(asl)),
        aws_events=counts["advance"]["invocations"] * scale + 1,  # + the execution's end
        sqs_requests=sqs,
    )


def _scaled(figures: dict[str, Any], scale: float) -> dict[str, Any]:
    """A start's figures at TASKS from those at n shards (its work is per shard)."""
    return {
        **figures,
        "cpu_ms": figures["cpu_ms"] * scale,
        "requests": {k: v * scale for k, v in figures["requests"].items()},
        "units": {k: v * scale for k, v in figures["units"].items()},
    }


# -- the figures -----------------------------------------------------------------------------


def figures(counts: dict[str, dict[str, Any]], n: int, prices: Prices = Prices()) -> dict[str, Any]:
    memory = memory_sizes()
    usage = run_usage(counts, n, memory)
    ours = orchestration_cost(usage, prices)
    fargate = fargate_cost(FARGATE_VCPUS, FARGATE_GIB, HOURS, prices)
    nat = nat_cost(HOURS, NAT_GB, prices)
    idle = sum(line.month for line in stack_cost.idle_lines(yaml_parse(TEMPLATE.read_text())))
    idle_nat = nat_cost(HOURS_PER_MONTH, 0.0, prices)
    return {
        "counted_at": n,
        "tasks": TASKS,
        "hours": HOURS,
        "memory_mb": memory,
        "per_invocation": counts,
        "durations_ms": {i.function: i.duration_ms for i in usage.invocations},
        "sfn_transitions": usage.sfn_transitions,
        "ddb_units": {"read": usage.ddb_read_units, "write": usage.ddb_write_units},
        "run": ours.items,
        "run_total": ours.total,
        "run_with_nat_total": merged(ours, nat).total,
        "nat": nat.items,
        "fargate": fargate.items,
        "fargate_total": fargate.total,
        "ratio": ours.total / fargate.total,
        "ratio_with_nat": merged(ours, nat).total / fargate.total,
        "idle_month": idle,
        "idle_month_with_nat": idle + idle_nat.total,
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'line item':<24} {'dollars':>10}   ({results['tasks']:,} tasks, "
        f"{results['hours']:g} h, counted at N = {results['counted_at']:,})"
    ]
    lines += [f"{k:<24} {v:>10.4f}" for k, v in results["run"].items()]
    lines.append(f"{'orchestration':<24} {results['run_total']:>10.4f}")
    lines.append(f"{'  + NAT gateway, IPv4':<24} {results['run_with_nat_total']:>10.4f}")
    lines.append(f"{'Fargate 1 vCPU 4 GiB':<24} {results['fargate_total']:>10.4f}")
    lines.append(
        f"ratio ours / Fargate: {results['ratio']:.3f} without NAT, "
        f"{results['ratio_with_nat']:.3f} with"
    )
    lines.append(
        f"idle per month: ${results['idle_month']:.2f} without NAT, "
        f"${results['idle_month_with_nat']:.2f} with"
    )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    merge("cost", results, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="counted at N = 50, scaled")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file to merge")
    args = parser.parse_args(argv)
    n = 50 if args.quick else TASKS
    logging.getLogger("miniwdl_serverless").setLevel(logging.WARNING)
    results = {"mode": "quick" if args.quick else "full", **figures(count(n), n)}
    print(table(results))
    write(results, args.results)
    return results


if __name__ == "__main__":
    main()
