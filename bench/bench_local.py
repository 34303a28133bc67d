"""Local mode against `miniwdl run`: wall seconds, end to end, of the same workflows.

Runs side by side, each as its own process as a user runs it: `miniwdl run` with a backend
that runs task commands with bash on the host (bench/miniwdl_bare.py, no Docker), and
`miniwdl-serverless run` in its default mode (the in-memory store) and with
`--embedded-aws full` (moto's DynamoDB), on (a) a generated scatter of a trivial task
(tests/e2e/data/scatter_square.wdl, 200 shards) and (b) the demo (examples/viral_pipeline);
median of 3 runs each (quick mode: 1 run, 20 shards). In the full mode also (c) a 10,000-shard
scatter in the default mode, once: its wall seconds a shard against the 200-shard run's (how
the cost of a shard grows with the scatter's width). Also the embedded AWS's start-up: the
seconds `EmbeddedAWS.__enter__` takes in a fresh process once the workflow's inputs are parsed
(miniwdl imported), as in `run`. Each run's CPU seconds (user + system, the process and its
children: the task commands) are measured beside its wall seconds: on cores shared with other
work, wall time swings with the load while CPU time stays. The project's own sources are
compiled to bytecode first, as an installed package's are (a PYTHONDONTWRITEBYTECODE in the
environment would otherwise have every run compile them anew). Prints a table with the ratios
(ours / miniwdl's) and merges the figures into bench/results.json under "local".

    .venv/bin/python -m bench.bench_local [--quick] [--results FILE]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results.json"
SCATTER = ROOT / "tests" / "e2e" / "data" / "scatter_square.wdl"
DEMO = ROOT / "examples" / "viral_pipeline"
BIN = Path(sys.executable).parent
TOOLS = ("miniwdl", "memory", "full")  # miniwdl run; ours by --embedded-aws
WIDE_SHARDS = 10_000  # the full mode's wide scatter
STARTUP = """
import sys, time
import WDL, WDL.CLI, WDL.runtime
from miniwdl_serverless.local.embedded import EmbeddedAWS
started = time.perf_counter()
with EmbeddedAWS(efs_root="/", mode=sys.argv[1]):
    print(time.perf_counter() - started)
"""


def command(tool: str, workload: str, shards: int, work: Path) -> tuple[list[str], Path]:
    """The command line and its working directory."""
    if workload == "scatter":
        target, cwd = [str(SCATTER), f"n={shards}"], work
    else:
        target, cwd = ["pipeline.wdl", "-i", "inputs.json"], DEMO
    if tool == "miniwdl":
        return [
            sys.executable,
            "-m",
            "bench.miniwdl_bare",
            "run",
            *target,
            "--dir",
            f"{work}/",
        ], cwd
    ours = [str(BIN / "miniwdl-serverless"), "run", *target, "--dir", str(work), "--no-progress"]
    return [*ours, "--state-dir", str(work / "state"), "--embedded-aws", tool], cwd


def one_run(tool: str, workload: str, shards: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run."""
    with tempfile.TemporaryDirectory(prefix="msls-bench-local-") as directory:
        argv, cwd = command(tool, workload, shards, Path(directory))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{tool} on {workload} failed: {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def compile_sources() -> None:
    """The project's sources as bytecode, as an installed package has them."""
    for directory in ("layers", "functions", "bench"):
        compileall.compile_dir(str(ROOT / directory), quiet=1)


def startup(mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", STARTUP, mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def measure(quick: bool) -> dict[str, Any]:
    repeats, shards = (1, 20) if quick else (3, 200)
    compile_sources()
    rows = []
    for workload in ("scatter", "demo"):
        runs: dict[str, list[tuple[float, float]]] = {tool: [] for tool in TOOLS}
        for _ in range(repeats):  # each round runs every tool: side by side in the same minute
            for tool in TOOLS:
                runs[tool].append(one_run(tool, workload, shards))
        seconds = {tool: [wall for wall, _ in r] for tool, r in runs.items()}
        cpu = {tool: [used for _, used in r] for tool, r in runs.items()}
        medians = {tool: statistics.median(values) for tool, values in seconds.items()}
        cpu_medians = {tool: statistics.median(values) for tool, values in cpu.items()}
        ours = [tool for tool in TOOLS if tool != "miniwdl"]
        name = f"scatter {shards}" if workload == "scatter" else "demo"
        rows.append(
            {
                "workload": name,
                "seconds": seconds,
                "median": medians,
                "ratio": {tool: medians[tool] / medians["miniwdl"] for tool in ours},
                "cpu": cpu,
                "cpu_median": cpu_medians,
                "cpu_ratio": {tool: cpu_medians[tool] / cpu_medians["miniwdl"] for tool in ours},
            }
        )
    starts = {mode: statistics.median(startup(mode) for _ in range(repeats)) for mode in TOOLS[1:]}
    results = {
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "rows": rows,
        "startup": starts,
    }
    if not quick:
        results["wide"] = wide(WIDE_SHARDS, rows[0]["median"]["memory"] / shards)
    return results


def wide(shards: int, per_shard_narrow: float) -> dict[str, Any]:
    """A ``shards``-wide scatter end to end in the default mode, once: wall seconds a shard,
    and their ratio to the narrow scatter's (``per_shard_narrow``, its median's)."""
    seconds, cpu = one_run("memory", "scatter", shards)
    per_shard = seconds / shards
    return {
        "shards": shards,
        "seconds": seconds,
        "cpu": cpu,
        "per_shard": per_shard,
        "per_shard_200": per_shard_narrow,
        "ratio": per_shard / per_shard_narrow,
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'workload':<12} {'miniwdl s':>10} {'memory s':>9} {'full s':>8} "
        f"{'memory/miniwdl':>15} {'full/miniwdl':>13}   CPU s: miniwdl memory (ratio)"
    ]
    for row in results["rows"]:
        median, ratio = row["median"], row["ratio"]
        line = (
            f"{row['workload']:<12} {median['miniwdl']:>10.2f} {median['memory']:>9.2f}"
            f" {median['full']:>8.2f} {ratio['memory']:>15.2f} {ratio['full']:>13.2f}"
        )
        cpu = row.get("cpu_median")
        if cpu:
            line += (
                f"   {cpu['miniwdl']:>6.2f} {cpu['memory']:>6.2f}"
                f" ({row['cpu_ratio']['memory']:.2f})"
            )
        lines.append(line)
    wide_row = results.get("wide")
    if wide_row:
        lines.append(
            f"scatter {wide_row['shards']} (memory): {wide_row['seconds']:.1f} s,"
            f" {wide_row['per_shard'] * 1000:.1f} ms a shard"
            f" ({wide_row['ratio']:.2f}x the 200-shard run's"
            f" {wide_row['per_shard_200'] * 1000:.1f} ms)"
        )
    starts = results["startup"]
    lines.append(
        f"embedded AWS start-up: memory {starts['memory']:.2f} s, full {starts['full']:.2f} s"
    )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    """Merged into the file: one top-level key per benchmark."""
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing["local"] = results
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run each, a 20-shard scatter")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file to merge")
    args = parser.parse_args(argv)
    results = measure(args.quick)
    print(table(results))
    write(results, args.results)
    return results


if __name__ == "__main__":
    main()
