"""Cold-start import cost of each Lambda handler: functions/<name>/app.py loaded from its file
(as Lambda does) in a fresh interpreter: the median wall-clock and CPU time of several (CPU
time is the steadier figure on a shared machine), and whether miniwdl (WDL) came with it.

    python bench/bench_handler_imports.py [--runs 5] [name ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").is_file())

PROBE = """
import importlib.util, json, sys, time
start, cpu = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": elapsed, "cpu": cpu, "wdl": "WDL" in sys.modules}))
"""


def measure(name: str) -> dict[str, object]:
    path = ROOT / "functions" / name / "app.py"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("names", nargs="*", default=FUNCTIONS)
    args = parser.parse_args()
    for name in args.names:
        results = [measure(name) for _ in range(args.runs)]
        wall = statistics.median(float(r["seconds"]) for r in results)  # type: ignore[arg-type]
        cpu = statistics.median(float(r["cpu"]) for r in results)  # type: ignore[arg-type]
        print(
            f"{name:10s} wall {wall * 1000:6.0f} ms  cpu {cpu * 1000:6.0f} ms"
            f"  WDL imported: {results[0]['wdl']}"
        )


if __name__ == "__main__":
    main()
