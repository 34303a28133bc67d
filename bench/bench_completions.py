"""What one task completion costs the controller, by the scatter's width (design
rule 2: an event touches only the jobs it changes).

For each width N, a run of a scatter of N trivial task calls is started on the in-memory ports
(tests/unit/harness.py, as the unit tests do), then each shard's SUCCEEDED event goes through
the real advance path (controller/advance.py:on_batch_event). Per completion: the CPU time
(time.process_time) and the port calls, counted by a proxy on each port and reported as the
AWS requests the real adapters make for them (DynamoDB reads, writes and transactions, Batch
ListJobs/SubmitJob/DescribeJobs, EFS file operations, Step Functions answers).

The baseline: the same N completions through miniwdl's own in-memory StateMachine, unpickled
before each event and pickled after it, as a naive serverless port would keep the whole state
per event. Its CPU time per completion, and the ratio baseline / ours.

    .venv/bin/python -m bench.bench_completions            (N = 10, 100, 1,000, 10,000)
    .venv/bin/python -m bench.bench_completions --quick    (N = 10, 100: a few seconds)

Prints a table and merges the figures into bench/results.json under "completions".
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import pickle
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import WDL
from WDL.runtime._stdlib import WorkflowStdLib
from WDL.runtime._workflow_state import StateMachine

from bench.results_file import merge
from miniwdl_serverless.controller.advance import on_batch_event
from miniwdl_serverless.core.store_rules import TRANSACTION_LIMIT
from tests.unit.harness import Harness

FULL = (10, 100, 1_000, 10_000)
QUICK = (10, 100)
BASELINE_SAMPLES = 200  # completions timed through the pickled state machine, evenly spread
TARGET = 1.2  # per-completion cost at 10,000 shards ≤ 1.2 × at 100
RESULTS = Path(__file__).resolve().parent / "results.json"

WORKFLOW = """
version 1.0
workflow fan {
  input { Int n }
  scatter (i in range(n)) { call work { input: i = i } }
  output { Array[Int] out = work.out }
}
task work { input { Int i } command {} output { Int out = i } }
"""

# -- counting the ports' calls, as AWS requests ----------------------------------------------


def _batches(size: int, limit: int) -> int:
    return max(1, math.ceil(size / limit))


def _one(*_args: Any, **_kwargs: Any) -> int:
    return 1


def _get_jobs(_run_id: str, job_ids: Iterable[str], *_args: Any, **_kwargs: Any) -> int:
    return _batches(len(set(job_ids)), 100)  # BatchGetItem: 100 keys a request


def _put_new_jobs(jobs: list[Any], *_args: Any, **_kwargs: Any) -> int:
    return _batches(len(jobs), TRANSACTION_LIMIT)


def _complete(job: Any, *_args: Any, **_kwargs: Any) -> Counter[str]:
    """A transaction per 99 targets (the job itself is one action); with none (a shard whose
    gather is tallied), one conditional UpdateItem."""
    if not job.targets():
        return Counter({_WRITE: 1})
    return Counter({_TRANSACT: _batches(len(job.targets()), TRANSACTION_LIMIT - 1)})


def _together(_run_id: str, updates: list[Any], *_args: Any, **_kwargs: Any) -> Counter[str]:
    """take_leases, record_batch_jobs: a transaction per 100, or one UpdateItem for one."""
    if len(updates) == 1:
        return Counter({_WRITE: 1})
    return Counter({_TRANSACT: _batches(len(updates), TRANSACTION_LIMIT)} if updates else {})


def _tally_bucket(*_args: Any, **_kwargs: Any) -> Counter[str]:
    """A conditional UpdateItem; when the bucket was counted before, a read of the gather."""
    return Counter({_WRITE: 1})


def _describe(batch_job_ids: list[str], *_args: Any, **_kwargs: Any) -> int:
    return _batches(len(batch_job_ids), 100)


_READ, _WRITE, _TRANSACT = "DynamoDB read", "DynamoDB write", "DynamoDB transaction"
# port → method → (request kind, how many requests a call makes), as adapters/dynamodb.py,
# adapters/cache_table.py, adapters/batch.py and adapters/stepfunctions.py make them
STORE: dict[str, tuple[str, Callable[..., int]]] = {
    "get_run": (_READ, _one),  # GetItem
    "get_job": (_READ, _one),
    "get_run_and_job": (_READ, _one),  # BatchGetItem over both tables
    "get_jobs": (_READ, _get_jobs),  # BatchGetItem
    "query_jobs": (_READ, _one),  # Query (one page per call counted)
    "tallied": (_READ, _one),  # Query of the run's buckets
    "put_new_jobs": (_TRANSACT, _put_new_jobs),  # TransactWriteItems
}
# methods whose request kind depends on the call
STORE_BY_CALL: dict[str, Callable[..., Counter[str]]] = {
    "complete": _complete,
    "tally_bucket": _tally_bucket,
    "take_leases": _together,
    "record_batch_jobs": _together,
}
BATCH: dict[str, tuple[str, Callable[..., int]]] = {
    "find": ("Batch ListJobs", _one),
    "terminate": ("Batch TerminateJob", _one),
    "describe": ("Batch DescribeJobs", _describe),
}
CACHE: dict[str, tuple[str, Callable[..., int]]] = {"get_entry": (_READ, _one)}


class Counting:
    """A port whose public method calls are counted, each as the AWS requests it makes."""

    def __init__(self, port: Any, kind: Callable[[str, tuple, dict], Counter[str]], name: str = ""):
        self._port = port
        self._kind = kind
        self._name = name or type(port).__name__
        self.requests: Counter[str] = Counter()
        self.by_method: Counter[str] = Counter()  # "port.method kind" → requests

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            requests = self._kind(name, args, kwargs)
            self.requests.update(requests)
            self.by_method.update({f"{self._name}.{name} ({k})": v for k, v in requests.items()})
            return attribute(*args, **kwargs)

        return counted


def _by_table(
    table: dict[str, tuple[str, Callable[..., int]]],
    default: str,
    by_call: dict[str, Callable[..., Counter[str]]] | None = None,
) -> Callable[[str, tuple, dict], Counter[str]]:
    def kind(name: str, args: tuple, kwargs: dict) -> Counter[str]:
        if by_call and name in by_call:
            return by_call[name](*args, **kwargs)
        what, count = table.get(name, (default, _one))
        return Counter({what: count(*args, **kwargs)})

    return kind


def _batch_kind(name: str, args: tuple, kwargs: dict) -> Counter[str]:
    if name == "submit":  # one SubmitJob (the name is looked up only before a retry)
        return Counter({"Batch SubmitJob": 1})
    return _by_table(BATCH, "Batch other")(name, args, kwargs)


def _work_kind(name: str, args: tuple, _kwargs: dict) -> Counter[str]:
    """The work table: BatchWriteItem, 25 items a request; a GetItem."""
    if name == "put":
        return Counter({_WRITE: _batches(len(args[0]), 25)})
    return Counter({_READ: 1})


EFS_OPS = "EFS file operation"


def _files_kind(name: str, _args: tuple, _kwargs: dict) -> Counter[str]:
    return Counter({EFS_OPS: 1, f"EFS {name}": 1})


def counted_ports(harness: Harness) -> list[Counting]:
    """The harness's store, files, Batch, Step Functions and cache behind counting proxies."""
    proxies = {
        "store": Counting(harness.ports.store, _by_table(STORE, _WRITE, STORE_BY_CALL), "store"),
        "files": Counting(harness.ports.files, _files_kind, "files"),
        "cache": Counting(harness.ports.cache, _by_table(CACHE, _WRITE), "cache"),
        "work": Counting(harness.ports.work, _work_kind, "work"),
    }
    harness.ports = dataclasses.replace(harness.ports, **proxies)
    # Batch and Step Functions are called by the submitter (the in-VPC functions hand their
    # calls on as work items, counted as the work table's writes)
    batch = Counting(harness.batch, _batch_kind, "batch")
    orchestrator = Counting(harness.orchestrator, _by_table({}, "Step Functions"), "orchestrator")
    harness.batch, harness.orchestrator = batch, orchestrator  # type: ignore[assignment]
    return [*proxies.values(), batch, orchestrator]


# -- the figures -----------------------------------------------------------------------------


def summary(seconds: list[float]) -> dict[str, float]:
    """Median, p95 (nearest rank) and maximum, in milliseconds."""
    ordered = sorted(seconds)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p95_ms": p95 * 1e3,
        "max_ms": ordered[-1] * 1e3,
    }


def ours(n: int) -> dict[str, Any]:
    """N completions through on_batch_event: CPU per completion, requests per completion."""
    harness = Harness()
    proxies = counted_ports(harness)
    harness.start(WORKFLOW, {"n": n})
    jobs = harness.open_jobs()
    assert len(jobs) == n, f"{len(jobs)} jobs submitted for {n} shards"
    for proxy in proxies:
        proxy.requests.clear()  # the start's requests are not a completion's
    seconds: list[float] = []
    for job in jobs:
        harness.lose(job, "SUCCEEDED", 0)  # Batch moves the job on; its event is sent below
        detail = harness.detail(job, "SUCCEEDED", 0, "Essential container in task exited")
        started = time.process_time()
        on_batch_event(detail, harness.ports)
        seconds.append(time.process_time() - started)
    harness.work.drain()  # the answer, handed to the submitter
    answer = harness.answer()
    assert answer is not None and answer[0] == "success", answer
    assert len(harness.outputs()["fan.out"]) == n
    total: Counter[str] = sum((p.requests for p in proxies), Counter())
    requests = {kind: count / n for kind, count in sorted(total.items())}
    return {**summary(seconds), "requests_per_completion": requests}


def lifecycle(n: int, arrays: bool) -> dict[str, float]:
    """AWS requests per task over its whole life (planned, prepared, submitted by the
    submitter from stream batches of 100, RUNNING and SUCCEEDED events collected), by kind;
    ``arrays``: its shards as array jobs."""
    return lifecycle_counts(n, arrays)[0]


def lifecycle_counts(n: int, arrays: bool) -> tuple[dict[str, float], dict[str, float]]:
    """``lifecycle``'s figures, and the DynamoDB and Batch ones by port method (what makes
    them: "store.complete (DynamoDB write)"), per task."""
    harness = Harness()
    harness.work.batch = 100  # the template's BatchSize for the submitter
    proxies = counted_ports(harness)
    config = {"MINIWDL__SERVERLESS__ARRAY_JOBS": "true" if arrays else "false"}
    harness.start(WORKFLOW, {"n": n}, config=config)
    harness.play(limit=n + 10)  # every shard, and what follows them
    assert len(harness.outputs()["fan.out"]) == n
    total: Counter[str] = sum((p.requests for p in proxies), Counter())
    kinds = {
        kind: count / n for kind, count in sorted(total.items()) if not kind.startswith("EFS ")
    }
    methods: Counter[str] = sum((p.by_method for p in proxies), Counter())
    aws = ("(DynamoDB", "(Batch")
    by_method = {m: c / n for m, c in methods.most_common() if any(a in m for a in aws)}
    return kinds, by_method


LIFECYCLE_N = 1_000
DYNAMODB_PER_TASK, BATCH_PER_TASK = 6, 1  # the targets (README, Performance)


def lifecycles(n: int) -> dict[str, Any]:
    counted = {"single jobs": lifecycle_counts(n, False), "array jobs": lifecycle_counts(n, True)}
    rows = {name: kinds for name, (kinds, _) in counted.items()}
    by_method = {name: methods for name, (_, methods) in counted.items()}
    dynamodb = {
        k: sum(v for kind, v in r.items() if kind.startswith("DynamoDB")) for k, r in rows.items()
    }
    batch = {
        k: sum(v for kind, v in r.items() if kind.startswith("Batch")) for k, r in rows.items()
    }
    holds = all(d <= DYNAMODB_PER_TASK for d in dynamodb.values()) and all(
        b <= BATCH_PER_TASK for b in batch.values()
    )
    return {
        "n": n,
        "per_task": rows,
        "per_method": by_method,
        "dynamodb": dynamodb,
        "batch": batch,
        "holds": holds,
    }


class _NoCache:
    """miniwdl's CallCache as the workflow stdlib sees it: nothing cached."""

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *_args, **_kwargs: None


def baseline(n: int, samples: int = BASELINE_SAMPLES) -> dict[str, Any]:
    """N completions through miniwdl's StateMachine, kept pickled between events. Every event
    changes the machine alike; ``samples`` of them, evenly spread (the last included), are
    timed with the unpickle before and the pickle after, the others applied in memory."""
    doc = WDL.parse_document(WORKFLOW)
    doc.typecheck()
    assert doc.workflow is not None
    logger = logging.getLogger("bench.baseline")
    cfg = WDL.runtime.config.Loader(logger)
    inputs = WDL.values_from_json({"n": n}, doc.workflow.available_inputs)
    machine = StateMachine("bench.baseline", "/nonexistent", doc.workflow, inputs)
    calls = []
    while (call := machine.step(cfg, _stdlib(cfg, machine))) is not None:
        calls.append(call)
    assert len(calls) == n
    count = min(n, samples)
    timed = {round(k * (n - 1) / max(1, count - 1)) for k in range(count)}
    seconds: list[float] = []
    sizes: list[int] = []
    for index, call in enumerate(calls):
        outputs = WDL.Env.Bindings().bind("out", WDL.Value.Int(index))
        if index not in timed:
            _finish(machine, cfg, call.id, outputs)
            continue
        stored = pickle.dumps(machine)  # what the previous event left in the store
        started = time.process_time()
        machine = pickle.loads(stored)
        _finish(machine, cfg, call.id, outputs)
        stored = pickle.dumps(machine)
        seconds.append(time.process_time() - started)
        sizes.append(len(stored))
    assert machine.outputs is not None
    return {**summary(seconds), "timed": len(seconds), "state_bytes": statistics.median(sizes)}


def _stdlib(cfg: WDL.runtime.config.Loader, machine: StateMachine) -> Any:
    version = machine.workflow.effective_wdl_version
    return WorkflowStdLib(cfg, version, machine, _NoCache())  # type: ignore[arg-type]


def _finish(machine: StateMachine, cfg: Any, call_id: str, outputs: Any) -> None:
    machine.call_finished(call_id, outputs)
    while machine.step(cfg, _stdlib(cfg, machine)) is not None:
        raise AssertionError("no call follows a shard")


def measure(widths: Iterable[int], lifecycle_n: int = LIFECYCLE_N) -> dict[str, Any]:
    rows = []
    for n in widths:
        mine, theirs = ours(n), baseline(n)
        ratio = theirs["median_ms"] / mine["median_ms"]
        rows.append({"n": n, "ours": mine, "baseline": theirs, "baseline_over_ours": ratio})
    return {"rows": rows, "target": target(rows), "lifecycle": lifecycles(lifecycle_n)}


def target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-completion cost at the widest N over that at 100 (at the narrowest if 100 is the
    widest, as in the quick mode): median CPU, and requests."""
    by_n = {row["n"]: row["ours"] for row in rows}
    widest = max(by_n)
    over = 100 if 100 in by_n and widest > 100 else min(by_n)
    if over == widest:
        return {}
    small, large = by_n[over], by_n[widest]
    cpu = large["median_ms"] / small["median_ms"]
    requests = _total(large) / _total(small)
    holds = cpu <= TARGET and requests <= TARGET
    return {"n": widest, "over": over, "cpu_ratio": cpu, "requests_ratio": requests, "holds": holds}


def _total(figures: dict[str, Any]) -> float:
    """AWS requests per completion, all kinds (the EFS operations once, not also by name)."""
    requests = figures["requests_per_completion"]
    return sum(v for k, v in requests.items() if not k.startswith("EFS ") or k == EFS_OPS)


# -- output ----------------------------------------------------------------------------------

KINDS = (
    ("DDB r", "DynamoDB read"),
    ("DDB w", "DynamoDB write"),
    ("DDB tx", "DynamoDB transaction"),
    ("Submit", "Batch SubmitJob"),
    ("List", "Batch ListJobs"),
    ("Descr", "Batch DescribeJobs"),
    ("EFS", "EFS file operation"),
)


def table(results: dict[str, Any]) -> str:
    head = f"{'N':>6} {'median ms':>9} {'p95 ms':>7} " + " ".join(f"{s:>6}" for s, _ in KINDS)
    lines = [head + f" {'base med ms':>11} {'ratio':>7}"]
    for row in results["rows"]:
        mine, requests = row["ours"], row["ours"]["requests_per_completion"]
        kinds = " ".join(f"{requests.get(kind, 0):>6.2f}" for _, kind in KINDS)
        lines.append(
            f"{row['n']:>6} {mine['median_ms']:>9.2f} {mine['p95_ms']:>7.2f} {kinds}"
            f" {row['baseline']['median_ms']:>11.2f} {row['baseline_over_ours']:>7.1f}"
        )
    lines += lifecycle_table(results["lifecycle"])
    goal = results["target"]
    if goal:
        verdict = "holds" if goal["holds"] else "does NOT hold"
        lines.append(
            f"target: per completion at {goal['n']:,} ≤ {TARGET} × at {goal['over']}: "
            f"CPU {goal['cpu_ratio']:.2f}×, requests {goal['requests_ratio']:.2f}× — {verdict}"
        )
    return "\n".join(lines)


def lifecycle_table(life: dict[str, Any]) -> list[str]:
    kinds = sorted({kind for row in life["per_task"].values() for kind in row})
    lines = [f"requests per task over its life ({life['n']:,} shards):"]
    for name, row in life["per_task"].items():
        parts = ", ".join(f"{kind} {row.get(kind, 0):.2f}" for kind in kinds)
        lines.append(f"  {name:>11}: {parts}")
    for name, methods in life.get("per_method", {}).items():
        lines.append(f"  {name} by port method (per task):")
        lines += [
            f"    {count:6.3f}  {method}" for method, count in methods.items() if count >= 0.01
        ]
    verdict = "holds" if life["holds"] else "does NOT hold"
    lines.append(
        f"target: ≤ {DYNAMODB_PER_TASK} DynamoDB and ≤ {BATCH_PER_TASK} Batch requests per task: "
        + "; ".join(
            f"{k} {life['dynamodb'][k]:.2f} DynamoDB, {life['batch'][k]:.2f} Batch"
            for k in life["per_task"]
        )
        + f" — {verdict}"
    )
    return lines


def write(results: dict[str, Any], path: Path) -> None:
    merge("completions", results, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 and 100 only")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file to merge")
    parser.add_argument("widths", nargs="*", type=int, help="instead of the default widths")
    args = parser.parse_args(argv)
    widths = args.widths or (QUICK if args.quick else FULL)
    logging.getLogger("miniwdl_serverless").setLevel(logging.WARNING)
    lifecycle_n = 100 if args.quick else LIFECYCLE_N
    results = {"mode": "quick" if args.quick else "full", **measure(widths, lifecycle_n)}
    print(table(results))
    write(results, args.results)
    return results


if __name__ == "__main__":
    main()
