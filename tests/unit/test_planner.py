"""The planner without AWS: miniwdl's graph as job records, driven by the store's rules."""

from __future__ import annotations

import pytest
import WDL

from miniwdl_serverless.core import planner
from miniwdl_serverless.core.wdl_source import fetch_and_load

from .planner_sim import run


def load(source: str) -> WDL.Document:
    return fetch_and_load(None, source)[0]


def double(task, inputs):
    return {"y": inputs["x"].value * 2}


NESTED = """
version 1.1
workflow w {
  input { Array[Int] xs = [1, 2, 3]  Boolean go = true }
  Int offset = 10
  scatter (x in xs) {
    if (x > 1) { call t { input: x = x + offset } }
    scatter (k in range(x)) { Int kk = k * x }
    Int? maybe = t.y
  }
  if (go) { scatter (z in xs) { call t as t2 { input: x = z } } }
  output {
    Array[Int?] ys = t.y
    Array[Array[Int]] kks = kk
    Array[Int]? zs = t2.y
    Array[Int?] maybes = maybe
  }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_nested_sections_give_miniwdl_results():
    outputs = run(load(NESTED), {}, double)
    assert outputs == {
        "w.ys": [None, 24, 26],
        "w.kks": [[0], [0, 2], [0, 3, 6]],
        "w.zs": [2, 4, 6],
        "w.maybes": [None, 24, 26],
    }


SUBWORKFLOW = """
version 1.0
import "sub.wdl" as sub
workflow main {
  input { Array[Int] xs = [1, 2] }
  scatter (x in xs) { call sub.inner { input: x = x } }
  output { Array[Int] doubled = inner.out }
}
"""
INNER = """
version 1.0
workflow inner {
  input { Int x  Int unused = 5 }
  call t { input: x = x }
  output { Int out = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_subworkflow_runs_as_child_graph(tmp_path):
    (tmp_path / "main.wdl").write_text(SUBWORKFLOW)
    (tmp_path / "sub.wdl").write_text(INNER)
    doc, bundle = fetch_and_load(str(tmp_path / "main.wdl"), None)
    assert set(bundle.sources) == {str(tmp_path / "main.wdl"), str(tmp_path / "sub.wdl")}
    assert run(doc, {}, double) == {"main.doubled": [2, 4]}


def test_outputs_wait_for_every_job_so_failing_decls_fail_the_run():
    doc = load("""
version 1.1
workflow w {
  Map[String, Int] m = {"a": 1}
  Int c = m["c"]
}
""")
    with pytest.raises(WDL.Error.EvalError):
        run(doc, {}, double)


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
    scope = planner.Scope(doc.workflow, WDL.Env.Bindings())
    cfg = WDL.runtime.config.Loader(__import__("logging").getLogger("t"))
    scatter = next(s for s in planner.initial_jobs(scope) if s.id.startswith("scatter-"))
    assert scatter.deps == []  # a section only waits for its expression's inputs
    evaluation = planner.evaluate(cfg, scope, "/tmp/r", planner.PathAllowlist("/tmp/r", []), scatter.id, scatter.node_id, [], [], {})
    shards = [j for j in evaluation.new_jobs if j.node_id == "call-t"]
    assert [s.external for s in shards] == [["call-slow"], ["call-slow"]]
    assert run(doc, {}, double) == {"w.ys": [6, 8]}


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
    scope = planner.Scope(doc.workflow, WDL.Env.Bindings())
    cfg = WDL.runtime.config.Loader(__import__("logging").getLogger("t"))
    scatter = next(s for s in planner.initial_jobs(scope) if s.id.startswith("scatter-"))
    decl = planner.evaluate(cfg, scope, "/tmp/r", planner.PathAllowlist("/tmp/r", []), scatter.id, scatter.node_id, [], [], {})
    shards = [j for j in decl.new_jobs if j.node_id == "call-t"]
    assert len(shards) == width
    assert all(j.dependents == ["gather-call-t"] and j.pending == 0 for j in shards)


def test_job_ids_are_miniwdls():
    doc = load(NESTED)
    ids = {s.id for s in planner.initial_jobs(planner.Scope(doc.workflow, WDL.Env.Bindings()))}
    assert {"decl-offset", "output-ys", "outputs"} <= ids
    assert any(i.startswith("scatter-L") for i in ids)


def test_call_dir_layout():
    assert planner.call_dir("/efs/run", "call-t-2") == "/efs/run/call-t-2"
    assert planner.call_dir("/efs/run", "call-sub-0/call-t") == "/efs/run/call-sub-0/call-t"


def test_values_with_nulls_in_non_optional_types_round_trip():
    pair_type = WDL.Type.Pair(WDL.Type.File(), WDL.Type.File())
    value = planner.value_from_json(WDL.Type.Map((WDL.Type.String(), pair_type)), {"a": {"left": None, "right": None}})
    assert value.json == {"a": {"left": None, "right": None}}
