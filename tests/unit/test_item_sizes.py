"""No job item grows with a scatter's width (issue 11): a 100,000-shard scatter (the default
``max_scatter_width``) is planned, not run, and every job item it creates is measured as
DynamoDB would store it (the jobs table's item model, DynamoDB's size rules)."""

from __future__ import annotations

import logging
from functools import cache

import WDL

from miniwdl_serverless.adapters.memory import MemoryStore
from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.controller.progress import _job
from miniwdl_serverless.core import planner
from miniwdl_serverless.core.records import Job, is_shard
from miniwdl_serverless.core.scatter_limits import DEFAULT_MAX_SCATTER_WIDTH
from miniwdl_serverless.core.wdl_source import fetch_and_load

from ..hostile.world import job_item_size

SOURCE = """
version 1.0
workflow w {{
  input {{ Int n = {width} }}
  scatter (i in range(n)) {{ call t {{ input: x = i }} }}
  call total {{ input: ys = t.y }}
  output {{ Array[Int] ys = t.y  Int sum = total.s }}
}}
task t {{ input {{ Int x }} command {{}} output {{ Int y = x * 2 }} }}
task total {{ input {{ Array[Int] ys }} command {{}} output {{ Int s = 0 }} }}
"""
ITEM_BOUND = 64 * 1024


@cache
def planned(width: int) -> tuple[Job, ...]:
    """Every job the run creates before any call runs: the first jobs, and what evaluating
    the scatter creates (its shards and its gather), as the store's records."""
    doc = fetch_and_load(None, SOURCE.format(width=width), UriSources().fetch)[0]
    scope = planner.Scope(doc.workflow, WDL.Env.Bindings())
    cfg = WDL.runtime.config.Loader(logging.getLogger("t"))
    first = planner.initial_jobs(scope)
    scatter = next(s for s in first if s.id.startswith("scatter-"))
    allow = planner.PathAllowlist("/tmp/r", [])
    n = WDL.Env.Bindings(WDL.Env.Binding("n", WDL.Value.Int(width)))
    args = (scatter.id, scatter.node_id, scatter.deps, [], {"decl-n": n})
    evaluation = planner.evaluate(cfg, scope, "/tmp/r", allow, *args)
    return tuple(_job("r", "", [], spec, "start", 0) for spec in first + evaluation.new_jobs)


def gather_of(jobs: tuple[Job, ...]) -> Job:
    return next(job for job in jobs if job.node_id == "gather-call-t")


def test_a_100000_shard_scatter_plans_within_dynamodbs_item_limit():
    width = DEFAULT_MAX_SCATTER_WIDTH
    jobs = planned(width)
    assert len([job for job in jobs if job.node_id == "call-t"]) == width
    sizes = {job.job_id: job_item_size(job) for job in jobs}
    largest = max(sizes, key=sizes.__getitem__)
    assert sizes[largest] < ITEM_BOUND, (largest, sizes[largest])
    gather = gather_of(jobs)
    assert gather.deps == [] and gather.pending == width
    assert gather.shards == {
        "of": next(job.job_id for job in jobs if job.node_id.startswith("scatter-")),
        "node": "call-t",
        "prefix": "call-t-",
        "count": width,
    }


def test_no_item_grows_with_the_width():
    small, large = planned(100), planned(DEFAULT_MAX_SCATTER_WIDTH)
    # the gather: only its count's and pending's digits differ
    assert abs(job_item_size(gather_of(large)) - job_item_size(gather_of(small))) <= 16
    for kind in ("call-total", "outputs", "decl-n"):
        (a,) = [job for job in small if job.node_id == kind]
        (b,) = [job for job in large if job.node_id == kind]
        assert job_item_size(a) == job_item_size(b), kind
    # a shard's item: its id's digits only
    shard_sizes = [job_item_size(j) for j in large if j.node_id == "call-t"]
    assert max(shard_sizes) - min(shard_sizes) <= 16


def test_the_gather_reads_exactly_its_shards_from_the_store():
    jobs = planned(12)
    store = MemoryStore()
    store.put_new_jobs(list(jobs), expires_at=1)
    gather = gather_of(jobs)
    prefix = gather.shards["prefix"] if gather.shards else ""
    found = [job for job in store.query_jobs("r", prefix=prefix) if is_shard(gather, job)]
    assert [job.job_id for job in found] == [f"call-t-{i:02d}" for i in range(12)]
    assert all(gather.job_id in job.dependents for job in found)


def test_a_sub_workflow_shards_children_are_not_its_shards():
    gather = Job("r", "gather-call-s", node_id="gather-call-s", shards={"node": "call-s",
                 "prefix": "call-s-", "count": 1, "of": "scatter-x"})  # fmt: skip
    shard = Job("r", "call-s-0", node_id="call-s", scatter_stack=[["0", "i", 0]])
    child = Job("r", "call-s-0/call-s-1", node_id="call-s", scope="call-s-0",
                scatter_stack=[["1", "j", 1]])  # fmt: skip
    assert is_shard(gather, shard) and not is_shard(gather, child)
