"""What the local state directory costs `miniwdl-serverless run`: with N job items (copies of
a real call's item, 100 per run) and N items of the same size in another table (as a call cache
would hold), the time to save both, to load them at the start (the other table's: the jobs
table is carried forward, not loaded), and for `status --local` to read a run's jobs. Wall and
CPU seconds (CPU is what the number is when the machine is shared).

    .venv/bin/python -m bench.bench_local_state [N ...]      (default: 1000 5000 20000)
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from miniwdl_serverless.cli import local_run
from miniwdl_serverless.cli.local_runs import LocalRuns
from miniwdl_serverless.cli.main import parse_run_args
from miniwdl_serverless.local import moto_patches
from miniwdl_serverless.local.embedded import ACCOUNT, REGION, EmbeddedAWS
from miniwdl_serverless.local.state import StateDir

WORKFLOW = """
version 1.0
workflow w {
  scatter (i in range(2)) { call t { input: i = i } }
}
task t {
  input { Int i }
  command <<< echo ~{i} >>>
  output { Int out = read_int(stdout()) }
}
"""


def timed(work: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(count: int, directory: Path) -> dict[str, tuple[float, float]]:
    state = StateDir(directory / f"state-{count}")
    (directory / "w.wdl").write_text(WORKFLOW)
    args = parse_run_args([str(directory / "w.wdl"), "--dir", str(directory / "runs")])
    with EmbeddedAWS(efs_root="/", state=state) as aws, contextlib.redirect_stdout(io.StringIO()):
        assert local_run.execute(aws, local_run.build_execution_input(args), False) == 0
        jobs = aws.tables["jobs"]
        (call,) = [
            i
            for i in moto_patches.table_items(ACCOUNT, REGION, jobs)
            if i["job_id"]["S"] == "call-t-0"
        ]
        copies = [
            {**call, "run_id": {"S": f"bench-{n // 100}"}, "job_id": {"S": f"call-t-{n}"}}
            for n in range(count)
        ]
        moto_patches.put_table_items(ACCOUNT, REGION, jobs, copies)
        boto3.client("dynamodb").create_table(
            TableName="local-BenchCache",
            KeySchema=[
                {"AttributeName": "run_id", "KeyType": "HASH"},
                {"AttributeName": "job_id", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "run_id", "AttributeType": "S"},
                {"AttributeName": "job_id", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        moto_patches.put_table_items(ACCOUNT, REGION, "local-BenchCache", copies)
        persistence = aws.persistence
        assert persistence is not None
        save = timed(lambda: persistence.save(aws.sfn, aws.state_machine_arn, aws.tables))
        load = timed(persistence.load)
    read = timed(lambda: LocalRuns.read(state).jobs("bench-0"))
    return {"save": save, "load": load, "status": read, "MB": (state.file.stat().st_size / 1e6,)}


def main(counts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for count in counts:
            figures = measure(count, Path(directory))
            (size,) = figures.pop("MB")
            line = ", ".join(
                f"{name} {wall:.2f} s ({cpu:.2f} s CPU)" for name, (wall, cpu) in figures.items()
            )
            print(f"{count:>6} items a table: {line}; state.json {size:.1f} MB")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 5000, 20000])
