"""What orchestrating a 1,000-task, 10-hour run costs at public AWS prices (bench/cost_model.py),
next to miniwdl-aws's Fargate workflow job for the same 10 hours, with and without a NAT gateway;
and the stack's idle cost per month.

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
import time
from collections import Counter
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from bench import bench_completions
from bench.cost_model import (
    HOURS_PER_MONTH,
    Invocations,
    Prices,
    Usage,
    fargate_cost,
    merged,
    nat_cost,
    orchestration_cost,
)
from bench.results_file import merge
from miniwdl_serverless.controller.advance import on_batch_event
from tests.unit.harness import Harness

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results.json"
TASKS, HOURS = 1_000, 10.0
RECONCILE_MINUTES = 5  # the template's ReconcileIntervalMinutes default
FARGATE_VCPUS, FARGATE_GIB = 1, 4  # miniwdl-aws's workflow job
# assumed: the latency of one AWS request from a Lambda, by kind (ms)
LATENCY_MS = {"DynamoDB": 8.0, "EFS": 3.0, "Batch": 40.0, "Step Functions": 25.0, "SQS": 25.0}
INIT_MS = 1_500.0  # a cold start (importing miniwdl, boto3), billed; one per function and run
FINISH_MS = 2_000.0  # Finish: outputs.json, no s3upload
FINISH_REQUESTS = {"read units": 3, "write units": 2}  # the run, its outputs job; the run ended
NAT_GB = 1.0  # per run through the NAT gateway


# -- counting --------------------------------------------------------------------------------


class Units:
    """DynamoDB request units of the store's (and cache's) calls, per item."""

    READS = {"get_run", "get_job", "get_jobs", "query_jobs", "get_entry"}

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


def _units(name: str, args: tuple, result: Any) -> Counter[str]:
    if name == "get_jobs":
        return Counter({"read units": len(set(args[1]))})
    if name == "query_jobs":
        return Counter({"read units": max(1, len(result))})
    if name in Units.READS:
        return Counter({"read units": 1})
    if name == "put_new_jobs":
        return Counter({"write units": 2 * len(args[0])})
    if name == "complete":
        return Counter({"write units": 2 * (1 + len(args[0].targets()))})
    return Counter({"write units": 1})


class Phase:
    """The requests, units and CPU time of some invocations of one function."""

    def __init__(self, name: str, proxies: list[Any], units: list[Units]):
        self.name, self.proxies, self.unit_proxies = name, proxies, units
        self.invocations, self.cpu = 0, 0.0
        self.requests: Counter[str] = Counter()
        self.units: Counter[str] = Counter()

    def __enter__(self) -> Phase:
        for proxy in self.proxies:
            proxy.requests.clear()
        for proxy in self.unit_proxies:
            proxy.units.clear()
        self._started = time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
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
    units = [Units(harness.ports.store), Units(harness.ports.cache)]
    harness.ports = bench_completions.dataclasses.replace(
        harness.ports, store=units[0], cache=units[1]
    )
    phases = {f: Phase(f, [*proxies, dead_letters], units) for f in ("start", "advance")}
    phases["reconcile"] = Phase("reconcile", [*proxies, dead_letters], units)
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
    assert harness.answer() is not None and harness.answer()[0] == "success"  # type: ignore[index]
    return {name: phase.figures() for name, phase in phases.items()}


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


def run_usage(counts: dict[str, dict[str, Any]], n: int, memory: dict[str, int]) -> Usage:
    """One TASKS-task, HOURS-hour run, from per-invocation counts at ``n`` tasks."""
    scale = TASKS / n
    counts = {**counts, "start": _scaled(counts["start"], scale)}  # it submits every shard
    rounds = HOURS * 60 / RECONCILE_MINUTES
    calls = {
        "start": (1.0, "StartFunction"),
        "advance": (counts["advance"]["invocations"] * scale, "AdvanceFunction"),
        "reconcile": (rounds, "ReconcileFunction"),
    }
    invocations = [
        Invocations(name, times, memory[function], duration_ms(counts[name]), 1, INIT_MS)
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


def idle_usage(memory: dict[str, int]) -> Usage:
    """A month without runs: only the reconcile schedule (one ListExecutions, the DLQ read)."""
    rounds = HOURS_PER_MONTH * 60 / RECONCILE_MINUTES
    idle = {"cpu_ms": 0.0, "requests": {"Step Functions": 1, "SQS": 1}}
    cold = rounds  # assumed: 5 minutes apart, every round is a cold start
    invocation = Invocations(
        "reconcile", rounds, memory["ReconcileFunction"], duration_ms(idle), cold, INIT_MS
    )
    return Usage(
        invocations=(invocation,), ddb_read_units=0, ddb_write_units=0, sqs_requests=rounds
    )


# -- the figures -----------------------------------------------------------------------------


def figures(counts: dict[str, dict[str, Any]], n: int, prices: Prices = Prices()) -> dict[str, Any]:
    memory = memory_sizes()
    usage = run_usage(counts, n, memory)
    ours = orchestration_cost(usage, prices)
    fargate = fargate_cost(FARGATE_VCPUS, FARGATE_GIB, HOURS, prices)
    nat = nat_cost(HOURS, NAT_GB, prices)
    idle = orchestration_cost(idle_usage(memory), prices)
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
        "idle_month": idle.total,
        "idle_month_with_nat": merged(idle, idle_nat).total,
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
