"""Planning time of generated workflows in real pipelines' shapes, next to `miniwdl check`.

Three shapes are generated into a temporary directory: (a) 40 tasks over 6 WDL files (a main
workflow importing 5 task libraries of 8 tasks each, its calls chained as a pipeline's steps);
(b) scatters nested three deep; (c) a 3,000 x 10 nested scatter. For each, the median of a few
repetitions of:

* **plan**: the Start function's planning step (controller/planning.py:plan), timed inside the
  real start path (controller/start.py:start_run on the in-memory ports of tests/unit/harness.py):
  fetch the files, parse and typecheck them with miniwdl, check the inputs, provision the run
  directory, write the run and its initial jobs. Sections expand later, so this does not grow
  with the scatters' widths;
* **start**: the whole start_run invocation, once, for shapes of up to START_LIMIT calls: the
  plan, then the driver expanding the scatters and submitting every ready call (1,000 for (b);
  (c)'s 30,000 take minutes of CPU on the in-memory ports, so it is left out);
* **check**: `miniwdl check` of the same main file, a subprocess of the venv's miniwdl (with
  the interpreter's start-up), and **WDL.load** of it in this process (parse, imports and
  typecheck, without the start-up);
* **ratios**: plan / WDL.load and plan / `miniwdl check`.

Wall-clock time (time.perf_counter), in milliseconds.

    .venv/bin/python -m bench.bench_planning            (5 repetitions, the full sizes)
    .venv/bin/python -m bench.bench_planning --quick    (3 repetitions, small scatters)

Prints a table and merges the figures into bench/results.json under "planning".
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import WDL

from bench.results_file import merge
from miniwdl_serverless.controller import drive
from miniwdl_serverless.controller.actions import Plan
from tests.unit.harness import Harness

RESULTS = Path(__file__).resolve().parent / "results.json"
MINIWDL = Path(sys.executable).parent / "miniwdl"
START_LIMIT = 3_000  # the whole start is timed up to this many calls (30,000 take minutes)
LIBRARIES, TASKS_PER_LIBRARY = 5, 8  # + the main file: 6 files, 40 tasks


@dataclass(frozen=True)
class Shape:
    name: str
    files: dict[str, str]  # file name → WDL text; "main.wdl" is the workflow
    inputs: dict[str, Any]
    calls: int  # the task calls a run makes
    ready: int  # those ready at the start: start_run submits them


# -- the generated workflows -----------------------------------------------------------------


def _task(name: str) -> str:
    return f"""
task {name} {{
  input {{
    String sample
    Int step
    Array[String] extra = []
    Int cpu = 2
  }}
  command <<<
    set -euo pipefail
    echo "~{{sample}} ~{{step}} ~{{sep=" " extra}}" > out.txt
  >>>
  output {{
    String label = "~{{sample}}.~{{step}}"
    File report = "out.txt"
  }}
  runtime {{ docker: "ubuntu:22.04"  cpu: cpu  memory: "4 GiB" }}
}}
"""


def pipeline_files() -> dict[str, str]:
    """(a) A main workflow importing 5 libraries of 8 tasks: 40 calls, each step reading the
    labels of the one or two before it (a pipeline's chain with side inputs)."""
    files: dict[str, str] = {}
    imports, body = [], []
    previous: list[str] = []
    for lib in range(1, LIBRARIES + 1):
        tasks = [f"step{lib}_{t}" for t in range(1, TASKS_PER_LIBRARY + 1)]
        files[f"lib{lib}.wdl"] = "version 1.0\n" + "".join(_task(t) for t in tasks)
        imports.append(f'import "lib{lib}.wdl" as lib{lib}')
        for task in tasks:
            extra = "[" + ", ".join(f"{p}.label" for p in previous[-2:]) + "]"
            body.append(
                f"  call lib{lib}.{task} {{ input: sample = sample, step = {len(body)},"
                f" extra = {extra} }}"
            )
            previous.append(task)
    files["main.wdl"] = (
        "version 1.0\n"
        + "\n".join(imports)
        + "\nworkflow pipeline {\n  input { String sample }\n"
        + "\n".join(body)
        + f"\n  output {{ String last = {previous[-1]}.label\n"
        + f"    File report = {previous[-1]}.report }}\n}}\n"
    )
    return files


def nested_files(depth: int) -> dict[str, str]:
    """Scatters nested ``depth`` deep over ``range(n1)``, ``range(n2)``...: one call inside."""
    variables = [f"i{level}" for level in range(1, depth + 1)]
    inputs = " ".join(f"Int n{level}" for level in range(1, depth + 1))
    opening = "".join(
        f"{'  ' * level}scatter ({v} in range(n{level})) {{\n"
        for level, v in enumerate(variables, 1)
    )
    indent = "  " * (depth + 1)
    step = " + ".join(f"{v} * {10**k}" for k, v in enumerate(reversed(variables)))
    closing = "".join(f"{'  ' * level}}}\n" for level in range(depth, 0, -1))
    labels = "work.label"
    for _ in range(depth - 1):
        labels = f"flatten({labels})"
    return {
        "main.wdl": (
            f'version 1.0\nworkflow nested {{\n  input {{ {inputs}  String sample = "s" }}\n'
            + opening
            + f"{indent}call work {{ input: sample = sample, step = {step} }}\n"
            + closing
            + f"  output {{ Array[String] labels = {labels} }}\n}}\n"
            + _task("work")
        )
    }


def shapes(quick: bool) -> list[Shape]:
    deep = (4, 4, 4) if quick else (10, 10, 10)
    wide = (30, 10) if quick else (3_000, 10)
    return [
        Shape("40 tasks, 6 files", pipeline_files(), {"sample": "s"}, 40, 1),
        Shape(
            "nested 3 deep " + "x".join(map(str, deep)),
            nested_files(3),
            {f"n{k}": n for k, n in enumerate(deep, 1)},
            deep[0] * deep[1] * deep[2],
            deep[0] * deep[1] * deep[2],
        ),
        Shape(
            "nested " + "x".join(map(str, wide)),
            nested_files(2),
            {f"n{k}": n for k, n in enumerate(wide, 1)},
            wide[0] * wide[1],
            wide[0] * wide[1],
        ),
    ]


# -- the timings ------------------------------------------------------------------------------


def _timed_plan(seconds: list[float], expand: bool) -> Callable[[Any, Any], list[Any]]:
    real = drive.STEPS[Plan]

    def timed(driver: Any, action: Any) -> list[Any]:
        started = time.perf_counter()
        try:
            actions = real(driver, action)
        finally:
            seconds.append(time.perf_counter() - started)
        return actions if expand else []  # without: the start ends after the plan

    return timed


def ours(
    main: Path, inputs: dict[str, Any], ready: int, expand: bool = True
) -> tuple[float, float]:
    """One start_run on fresh in-memory ports: (plan step, whole start) in seconds. Without
    ``expand``, the start stops after the plan (nothing is expanded or submitted)."""
    harness = Harness()
    planned: list[float] = []
    real = drive.STEPS[Plan]
    drive.STEPS[Plan] = _timed_plan(planned, expand)
    try:
        started = time.perf_counter()
        result = harness.start(str(main), inputs)
        whole = time.perf_counter() - started
    finally:
        drive.STEPS[Plan] = real
    assert "failed" not in result, result
    submitted = len(harness.open_jobs())
    assert submitted == (ready if expand else 0), f"{submitted} calls submitted, {ready} ready"
    assert len(planned) == 1
    return planned[0], whole


def check_subprocess(main: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(MINIWDL), "check", str(main)], check=True, capture_output=True)
    return time.perf_counter() - started


def check_in_process(main: Path) -> float:
    started = time.perf_counter()
    WDL.load(str(main))
    return time.perf_counter() - started


def median_ms(measure: Callable[[], float], repetitions: int) -> float:
    return statistics.median(measure() for _ in range(repetitions)) * 1e3


def measure_shape(shape: Shape, directory: Path, repetitions: int) -> dict[str, Any]:
    folder = directory / shape.name.replace(" ", "_").replace(",", "")
    folder.mkdir()
    for name, text in shape.files.items():
        (folder / name).write_text(text)
    main = folder / "main.wdl"
    # the plan step: the median of the repetitions; the whole start (30,000 submissions for
    # the widest shape): once
    timed = shape.calls <= START_LIMIT
    whole = ours(main, shape.inputs, shape.ready, expand=timed)
    plans = [whole[0]] + [
        ours(main, shape.inputs, shape.ready, expand=False)[0] for _ in range(repetitions - 1)
    ]
    row = {
        "shape": shape.name,
        "files": len(shape.files),
        "calls": shape.calls,
        "repetitions": repetitions,
        "plan_ms": statistics.median(plans) * 1e3,
        "start_ms": whole[1] * 1e3 if timed else None,
        "load_ms": median_ms(lambda: check_in_process(main), repetitions),
        "check_ms": median_ms(lambda: check_subprocess(main), repetitions),
    }
    row["plan_over_load"] = row["plan_ms"] / row["load_ms"]
    row["plan_over_check"] = row["plan_ms"] / row["check_ms"]
    return row


def measure(quick: bool, repetitions: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-planning-") as directory:
        return [measure_shape(s, Path(directory), repetitions) for s in shapes(quick)]


# -- output ----------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'shape':<26} {'calls':>6} {'plan ms':>8} {'start ms':>9} {'WDL.load':>9}"
        f" {'check ms':>9} {'plan/load':>10} {'plan/check':>10}"
    )
    lines = [head]
    for row in rows:
        start = "-" if row["start_ms"] is None else f"{row['start_ms']:.1f}"
        lines.append(
            f"{row['shape']:<26} {row['calls']:>6} {row['plan_ms']:>8.1f} {start:>9}"
            f" {row['load_ms']:>9.1f} {row['check_ms']:>9.1f} {row['plan_over_load']:>10.2f}"
            f" {row['plan_over_check']:>10.2f}"
        )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    merge("planning", results, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scatters, 3 repetitions")
    parser.add_argument("--repetitions", type=int, help="instead of 5 (3 in the quick mode)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file to merge")
    args = parser.parse_args(argv)
    repetitions = args.repetitions or (3 if args.quick else 5)
    logging.getLogger("miniwdl_serverless").setLevel(logging.WARNING)
    rows = measure(args.quick, repetitions)
    results = {"mode": "quick" if args.quick else "full", "rows": rows}
    print(table(rows))
    write(results, args.results)
    return results


if __name__ == "__main__":
    main()
