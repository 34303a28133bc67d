"""Work per task completion must not grow with the scatter's width (an event touches only the
jobs it changes: docs/architecture.md, design rule 2).

Runs the same trivial scatter at two widths through `miniwdl-serverless run` on the embedded
AWS, side by side in one process, and prints per-shard figures and their ratio (large/small):
AWS API calls per shard (deterministic) and wall seconds per shard (noisy; the embedded
DynamoDB is moto). A ratio near 1.0 means per-completion work is flat.

    .venv/bin/python bench/bench_scatter.py [SMALL] [LARGE]
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from pathlib import Path

from moto.core.botocore_stubber import BotocoreStubber

from miniwdl_serverless.cli import local_run
from miniwdl_serverless.cli.main import parse_run_args
from miniwdl_serverless.local.embedded import EmbeddedAWS

WDL = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "data" / "scatter_square.wdl"
calls: collections.Counter[str] = collections.Counter()
_original = BotocoreStubber.__call__


def _counting(self, event_name, request, **kwargs):  # type: ignore[no-untyped-def]
    calls[event_name.split(".", 2)[1]] += 1
    return _original(self, event_name, request, **kwargs)


def measure(aws: EmbeddedAWS, width: int) -> tuple[float, float]:
    workdir = tempfile.mkdtemp(prefix="msls-bench-")
    args = parse_run_args([str(WDL), f"n={width}", "--dir", workdir])
    execution_input = local_run.build_execution_input(args)
    calls.clear()
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            code = local_run.execute(aws, execution_input, show_progress=False)
        finally:
            sys.stdout = stdout
    elapsed = time.perf_counter() - started
    assert code == 0, f"run failed at width {width}"
    api = sum(n for service, n in calls.items() if service in ("dynamodb", "batch"))
    return api / width, elapsed / width


def main() -> None:
    small, large = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else ("50", "500")))
    BotocoreStubber.__call__ = _counting  # type: ignore[method-assign]
    with EmbeddedAWS(efs_root="/") as aws:
        measure(aws, 5)  # warm up: imports, grammar, job definition
        api_small, wall_small = measure(aws, small)
        api_large, wall_large = measure(aws, large)
    print(f"{'width':>8} {'DynamoDB+Batch calls/shard':>28} {'wall s/shard':>14}")
    print(f"{small:>8} {api_small:>28.2f} {wall_small:>14.4f}")
    print(f"{large:>8} {api_large:>28.2f} {wall_large:>14.4f}")
    print(f"{'ratio':>8} {api_large / api_small:>28.2f} {wall_large / wall_small:>14.2f}")


if __name__ == "__main__":
    main()
