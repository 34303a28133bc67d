"""A 1,000-shard scatter of a trivial task through `miniwdl-serverless run` (the issue's scale
bar), and the DynamoDB items stay far below the 400 KB limit (large values spill to EFS)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from miniwdl_serverless.adapters.dynamodb import item_size
from miniwdl_serverless.local.memory_tables import job_item, run_item

DATA = Path(__file__).parent / "data"
SHARDS = int(os.environ.get("MSLS_SCALE_SHARDS", "1000"))
ITEM_LIMIT = 100 * 1024


@pytest.mark.slow
def test_thousand_shard_scatter(run_cli, embedded, tmp_path):
    code, stdout, stderr = run_cli(
        [str(DATA / "scatter_square.wdl"), f"n={SHARDS}", "--dir", str(tmp_path)], cwd=str(tmp_path)
    )
    assert code == 0, stderr[-3000:]
    outputs = json.loads(stdout)["outputs"]
    assert outputs["big.total"] == SHARDS
    assert outputs["big.squares"] == [i * i for i in range(SHARDS)]

    run_id = embedded.last_execution_arn.rsplit(":", 1)[-1]
    if embedded.mode == "full":
        jobs = [j for j in embedded.store.jobs.query(run_id) if not j.job_id.startswith("#")]
        run = embedded.store.runs.get(run_id)
    else:  # the items the DynamoDB adapter would write for the records held in memory
        jobs = [job_item(job) for job in embedded.store.query_jobs(run_id)]
        run = run_item(embedded.store.get_run(run_id))
    assert len(jobs) == SHARDS + 6  # decl-n, scatter, gather, output-total, output-squares, outputs
    sizes = [item_size(job) for job in jobs] + [item_size(run)]
    largest = max(sizes)
    print(f"\n{SHARDS}-shard scatter: {len(jobs)} job items, largest item {largest} bytes")
    assert largest < ITEM_LIMIT
