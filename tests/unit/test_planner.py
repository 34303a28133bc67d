"""The planner alone: miniwdl's graph as job records (the controller runs it in
test_controller.py)."""

from __future__ import annotations

import logging
import threading

import pytest
import WDL

from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.core import planner
from miniwdl_serverless.core.wdl_source import fetch_and_load


def load(source: str) -> WDL.Document:
    return fetch_and_load(None, source, UriSources().fetch)[0]


def expand_scatter(doc: WDL.Document) -> tuple[planner.JobSpec, list[planner.JobSpec]]:
    """The workflow's (first) scatter job, and the call-t shards evaluating it creates."""
    scope = planner.Scope(doc.workflow, WDL.Env.Bindings())
    cfg = WDL.runtime.config.Loader(logging.getLogger("t"))
    scatter = next(s for s in planner.initial_jobs(scope) if s.id.startswith("scatter-"))
    allow = planner.PathAllowlist("/tmp/r", [])
    args = (scatter.id, scatter.node_id, [], [], {})
    evaluation = planner.evaluate(cfg, scope, "/tmp/r", allow, *args)
    return scatter, [j for j in evaluation.new_jobs if j.node_id == "call-t"]


def test_section_body_may_wait_on_an_outside_job_that_is_still_running():
    # the scatter can expand before `slow` finishes: shard calls register as its waiters
    doc = load("""
version 1.0
workflow w {
  call t as slow { input: x = 1 }
  scatter (i in [1, 2]) { call t { input: x = i + slow.y } }
  output { Array[Int] ys = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
""")
    scatter, shards = expand_scatter(doc)
    assert scatter.deps == []  # a section only waits for its expression's inputs
    assert [s.external for s in shards] == [["call-slow"], ["call-slow"]]


@pytest.mark.parametrize("width", [10, 1000])
def test_work_per_completion_does_not_grow_with_the_scatter(width):
    doc = load(f"""
version 1.0
workflow w {{
  scatter (i in range({width})) {{ call t {{ input: x = i }} }}
  output {{ Array[Int] ys = t.y }}
}}
task t {{ input {{ Int x }} command {{}} output {{ Int y = x * 2 }} }}
""")
    _, shards = expand_scatter(doc)
    assert len(shards) == width
    assert all(j.dependents == ["gather-call-t"] and j.pending == 0 for j in shards)


def test_job_ids_are_miniwdls():
    doc = load("""
version 1.1
workflow w {
  input { Array[Int] xs = [1, 2, 3] }
  Int offset = 10
  scatter (x in xs) { call t { input: x = x + offset } }
  output { Array[Int] ys = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
""")
    ids = {s.id for s in planner.initial_jobs(planner.Scope(doc.workflow, WDL.Env.Bindings()))}
    assert {"decl-offset", "output-ys", "outputs"} <= ids
    assert any(i.startswith("scatter-L") for i in ids)


def test_call_dir_layout():
    assert planner.call_dir("/efs/run", "call-t-2") == "/efs/run/call-t-2"
    assert planner.call_dir("/efs/run", "call-sub-0/call-t") == "/efs/run/call-sub-0/call-t"


def test_values_with_nulls_in_non_optional_types_round_trip():
    pair_type = WDL.Type.Pair(WDL.Type.File(), WDL.Type.File())
    value = planner.value_from_json(
        WDL.Type.Map((WDL.Type.String(), pair_type)), {"a": {"left": None, "right": None}}
    )
    assert value.json == {"a": {"left": None, "right": None}}


def test_a_thread_reuses_its_workflow_stdlib_for_the_same_cfg_and_run() -> None:
    class Machine:
        def __init__(self, run_dir: str):
            self.run_dir = run_dir

    cfg = WDL.runtime.config.Loader(logging.getLogger("t"))
    first, second = Machine("/tmp/r"), Machine("/tmp/r")
    stdlib = planner._workflow_stdlib(cfg, "1.0", first)  # type: ignore[arg-type]
    assert stdlib.state is first
    again = planner._workflow_stdlib(cfg, "1.0", second)  # type: ignore[arg-type]
    assert again is stdlib and again.state is second
    other_cfg = WDL.runtime.config.Loader(logging.getLogger("t"))
    assert planner._workflow_stdlib(other_cfg, "1.0", second) is not stdlib  # type: ignore[arg-type]
    assert planner._workflow_stdlib(cfg, "1.1", second).wdl_version == "1.1"  # type: ignore[arg-type]
    assert planner._workflow_stdlib(cfg, "1.0", Machine("/tmp/s"))._write_dir == "/tmp/s/write_"  # type: ignore[arg-type]
    seen = []
    thread = threading.Thread(
        target=lambda: seen.append(planner._workflow_stdlib(cfg, "1.0", first))
    )  # type: ignore[arg-type]
    thread.start()
    thread.join()
    assert seen[0] is not stdlib  # each thread its own
