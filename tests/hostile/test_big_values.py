"""Huge values (issue 9): a task whose stdout.txt is 1 GB (a sparse file: no disk used), and
a 10 MB String output.

* ``read_string(stdout())`` of 1 GB fails the run with the read limit named; ``File out =
  stdout()`` succeeds without the controller reading the file (every ``os.read`` it makes is
  counted).
* A 10 MB String output runs to success: values spill to files by design, so no store item
  comes near DynamoDB's 400 KB — measured by DynamoDB's size rules on the in-memory store
  after every write, and for real on the DynamoDB store on moto (which refuses larger items),
  whose every item is then measured the same way.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from miniwdl_serverless.adapters.dynamodb import DynamoStore
from miniwdl_serverless.core.records import RUN_SUCCEEDED

from ..unit.harness import Harness
from .world import DYNAMODB_ITEM_LIMIT, assert_clear_failure, finishes_within, item_size, measured

GIGABYTE = 1 << 30
HUGE_STDOUT = """
version 1.0
task huge {
  command <<< echo start; truncate -s 1G ../stdout.txt >>>
  output { ~{OUTPUT} }
}
"""
TEN_MB = 10_000_000
TEN_MB_VALUE = """
version 1.0
workflow big {
  call make
  call echo { input: s = make.s }
  output { String s = echo.t  Int n = make.n  File f = make.f }
}
task make {
  command <<< head -c 10000000 /dev/zero | tr '\\0' x > big.txt; echo 7 >>>
  output { String s = read_string("big.txt")  Int n = read_int(stdout())  File f = "big.txt" }
}
task echo {
  input { String s }
  command <<< true >>>
  output { String t = s }
}
"""


@pytest.fixture
def counted_reads(monkeypatch) -> dict[str, int]:
    """Bytes the controller reads with os.read (the safe_fs reads), in this process."""
    counts = {"bytes": 0}
    read = os.read

    def counting(fd: int, size: int) -> bytes:
        data = read(fd, size)
        counts["bytes"] += len(data)
        return data

    monkeypatch.setattr(os, "read", counting)
    return counts


def huge_stdout_run(tmp_path: Any, output: str) -> Harness:
    harness = Harness(tmp_path)
    harness.start(HUGE_STDOUT.replace("~{OUTPUT}", output), task="huge")
    (job,) = harness.open_jobs()
    harness.event(job, "RUNNING")
    harness.execute(job)
    stdout = next((tmp_path / "runs").glob("*/call-huge/stdout.txt"))
    assert stdout.stat().st_size == GIGABYTE and stdout.stat().st_blocks < 1024  # sparse
    finishes_within(lambda: harness.event(job, "SUCCEEDED", 0), 30)
    return harness


def test_reading_a_1_gb_stdout_fails_with_the_read_limit(tmp_path, counted_reads):
    harness = huge_stdout_run(tmp_path, "String s = read_string(stdout())")
    _, info = assert_clear_failure(harness)
    assert f"larger than {128 * 1024 * 1024} bytes" in info["message"]
    assert counted_reads["bytes"] < 16 << 20  # refused by its size, not read


def test_a_1_gb_stdout_as_a_file_output_is_not_read(tmp_path, counted_reads):
    harness = huge_stdout_run(tmp_path, "File out = stdout()")
    assert harness.run().status == RUN_SUCCEEDED
    assert os.path.realpath(harness.outputs()["huge.out"]).endswith("/call-huge/stdout.txt")
    assert counted_reads["bytes"] < 16 << 20


def test_a_10_mb_string_output_succeeds_and_every_item_stays_small(tmp_path):
    harness = Harness(tmp_path)
    store = measured(harness)
    harness.start(TEN_MB_VALUE)
    harness.play(harness.execute)
    outputs = harness.outputs()
    assert len(outputs["big.s"]) == TEN_MB and outputs["big.n"] == 7
    assert store.largest <= DYNAMODB_ITEM_LIMIT, (store.largest, store.where)
    assert store.largest < 64 * 1024  # values of any size spill: items hold pointers


def scan_sizes(client: Any, table: str) -> list[int]:
    sizes: list[int] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        sizes += [item_size(item) for item in page["Items"]]
    return sizes


@pytest.mark.parametrize("source", ["10 MB value", "huge error"])
def test_items_on_dynamodb_stay_under_its_limit(tmp_path, embedded, source):
    """The same on the DynamoDB store (moto refuses items over 400 KB), then every item of the
    two tables measured."""
    harness = Harness(tmp_path)
    tables = embedded.moto_tables()
    store = DynamoStore(tables["runs"], tables["jobs"])
    harness.store = harness.ports.store = store
    if source == "10 MB value":
        harness.start(TEN_MB_VALUE)
        harness.play(harness.execute)
        assert len(harness.outputs()["big.s"]) == TEN_MB
    else:  # an InputError listing 1,000 missing inputs (found 1)
        missing = [f"/nowhere/{'x' * 200}{i}" for i in range(1000)]
        harness.start("version 1.0\nworkflow w { input { Array[File] fs } }", {"fs": missing})
        assert_clear_failure(harness)
    import boto3

    client = boto3.client("dynamodb")  # moto's, while the embedded AWS is up
    sizes = scan_sizes(client, embedded.tables["runs"]) + scan_sizes(
        client, embedded.tables["jobs"]
    )
    assert sizes and max(sizes) <= DYNAMODB_ITEM_LIMIT, max(sizes)
