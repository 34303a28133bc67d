"""``make chaos``: run every scenario of a size, print one line per scenario and the summary
line, and exit non-zero if any scenario failed.

    python -m tests.chaos --size reduced|full [--only SUBSTRING] [--verbose]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from tests.chaos.points import write_points
from tests.chaos.scenarios import Result, Scenario, run_scenario

# the workflows every fault class runs on; crash points are enumerated for each of them
WORKFLOWS = [
    "scatter_gather",
    "sub_workflow",
    "conditional",
    "retries",
    "demo",
    "cannot_pull",
    "downloads",
]
SIZES = {
    # size: (workflows whose write points are each crashed after, seeds per fault class)
    "reduced": (
        ["scatter_gather", "sub_workflow", "conditional", "retries", "cannot_pull", "downloads"],
        1,
    ),
    "full": (WORKFLOWS, 3),
}


@dataclass
class Summary:
    scenarios: int = 0
    passed: int = 0
    duplicates: int = 0
    changed: int = 0
    stuck: int = 0
    failures: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.scenarios += 1
        self.passed += not result.problems
        self.duplicates += result.duplicates
        self.changed += result.changed
        self.stuck += result.stuck
        if result.problems:
            self.failures.append(result)

    def line(self) -> str:
        return (
            f"scenarios: {self.scenarios}, passed: {self.passed}, "
            f"duplicate submissions: {self.duplicates}, lost or changed outputs: {self.changed}, "
            f"stuck runs: {self.stuck}"
        )

    @property
    def ok(self) -> bool:
        return self.scenarios > 0 and self.passed == self.scenarios


def crash_points(workflow: str, clean: Result) -> list[Scenario]:
    """A crash right after each write point the clean run reached (its first occurrence),
    each counted once per workflow."""
    seen = list(dict.fromkeys(clean.writes))
    return [
        Scenario(
            f"{workflow}: crash after {port}.{method}",
            "crash",
            workflow,
            crash_after=(port, method, 1),
        )
        for port, method in seen
    ]


def fault_classes(workflow: str, clean: Result, seed: int) -> list[Scenario]:
    """Every other fault class on one workflow, with one seed."""
    rng = random.Random(f"{workflow}-{seed}")
    tag = f"{workflow} seed={seed}"
    scenarios = [
        Scenario(f"{tag}: every event 1-3 times", "duplicates", workflow, max_copies=3, seed=seed),
        Scenario(
            f"{tag}: shuffled and delayed, 1-2 times",
            "shuffled",
            workflow,
            max_copies=2,
            shuffle=True,
            delay=0.3,
            seed=seed,
        ),
        Scenario(
            f"{tag}: throttling, 5xx, TransactionConflict",
            "transient",
            workflow,
            transient=0.15,
            max_copies=2,
            seed=seed,
        ),
    ]
    kill_at = rng.randint(1, clean.calls)  # a port call of the clean run: killed there
    scenarios.append(
        Scenario(
            f"{tag}: handler timeout at call {kill_at}",
            "timeout",
            workflow,
            kill_at=kill_at,
            seed=seed,
        )
    )
    scenarios.append(
        Scenario(
            f"{tag}: a third of the final events lost (the reconciler recovers them)",
            "lost",
            workflow,
            lose=0.34,
            max_copies=1 + seed % 2,
            seed=seed,
        )
    )
    scenarios.append(
        Scenario(
            f"{tag}: the first final event dead-lettered (the reconciler replays it)",
            "dead_letter",
            workflow,
            dead_letter=True,
            seed=seed,
        )
    )
    if seed == 0:  # the reconciler's own write point, once per workflow
        scenarios.append(
            Scenario(
                f"{workflow}: crash after dead_letters.delete",
                "crash",
                workflow,
                crash_after=("dead_letters", "delete", 1),
                dead_letter=True,
            )
        )
    if clean.deliveries >= 4:
        cancel_at = max(1, clean.deliveries // 2 - seed)
        scenarios.append(
            Scenario(
                f"{tag}: cancelled after {cancel_at} deliveries",
                "cancel",
                workflow,
                cancel_at=cancel_at,
                max_copies=1 + seed % 3,
                seed=seed,
            )
        )
    return scenarios


def special_scenarios() -> list[Scenario]:
    return [
        Scenario(
            "wide_scatter: 200 completions of one scatter, each 1-3 times, from 16 threads",
            "concurrent",
            "wide_scatter",
            max_copies=3,
            concurrent=16,
            latency=0.0,
        )
    ]


def plan(size: str, cleans: dict[str, Result]) -> Iterator[Scenario]:
    crashed, seeds = SIZES[size]
    for workflow in WORKFLOWS:
        if workflow in crashed:
            yield from crash_points(workflow, cleans[workflow])
    for seed in range(seeds):
        for workflow in WORKFLOWS:
            yield from fault_classes(workflow, cleans[workflow], seed)
    yield from special_scenarios()


def run(
    size: str,
    out: TextIO = sys.stdout,
    only: str | None = None,
    verbose: bool = False,
) -> Summary:
    logging.disable(logging.CRITICAL)  # the controller logs every injected failure
    try:
        return _run(size, out, only, verbose)
    finally:
        logging.disable(logging.NOTSET)


def _run(size: str, out: TextIO, only: str | None, verbose: bool) -> Summary:
    summary = Summary()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-") as base:
        cleans = {w: _clean(w, base, out) for w in [*WORKFLOWS, "wide_scatter"]}
        scenarios = [s for s in plan(size, cleans) if only is None or only in s.name]
        reached = {point for clean in cleans.values() for point in clean.writes}
        missed = [f"{p}.{m}" for p, m in write_points() if (p, m) not in reached]
        print(
            f"chaos ({size}): {len(scenarios)} scenarios; write points no clean run reaches: "
            f"{', '.join(missed) or 'none'}",
            file=out,
            flush=True,
        )
        for index, scenario in enumerate(scenarios, 1):
            started = time.monotonic()
            reference = cleans[scenario.workflow].outcome
            result = run_scenario(scenario, base, reference)
            summary.add(result)
            _report(out, index, len(scenarios), result, time.monotonic() - started, verbose)
    print(f"chaos ({size}) took {time.monotonic() - began:.0f} s", file=out)
    print(summary.line(), file=out, flush=True)
    return summary


def _clean(workflow: str, base: str, out: TextIO) -> Result:
    result = run_scenario(Scenario(f"{workflow}: clean", "clean", workflow), base, None)
    if result.problems:
        raise RuntimeError(f"the clean run of {workflow} failed: {result.problems}")
    print(
        f"clean {workflow}: {result.outcome['status']}, {result.deliveries} deliveries, "
        f"{len(result.writes)} writes at {len(set(result.writes))} write points",
        file=out,
        flush=True,
    )
    return result


def _report(
    out: TextIO, index: int, total: int, result: Result, seconds: float, verbose: bool
) -> None:
    verdict = "FAIL" if result.problems else "ok  "
    print(
        f"[{index:3d}/{total}] {verdict} {result.scenario.name} ({seconds:.1f} s)",
        file=out,
        flush=True,
    )
    for problem in result.problems if (result.problems or verbose) else []:
        print(f"        {problem}", file=out)


def main(argv: list[str] | None = None, run_size: Callable[..., Summary] = run) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    summary = run_size(args.size, only=args.only, verbose=args.verbose)
    return 0 if summary.ok else 1
