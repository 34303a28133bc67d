"""The planning and cost benchmarks' quick modes (bench/bench_planning.py, bench/bench_cost.py)
run and say what they measured: their shape is checked, never their speed."""

from __future__ import annotations

import json

from bench import bench_cost, bench_planning


def test_planning_quick_mode_prints_a_table_and_merges_its_figures(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"other": {"kept": True}}))
    bench_planning.main(["--quick", "--results", str(results)])
    written = json.loads(results.read_text())
    assert written["other"] == {"kept": True}
    rows = written["planning"]["rows"]
    assert [row["files"] for row in rows] == [6, 1, 1]
    assert [row["calls"] for row in rows] == [40, 64, 300]
    for row in rows:
        assert row["plan_ms"] > 0 and row["start_ms"] > 0
        assert row["load_ms"] > 0 and row["check_ms"] > 0
        assert row["plan_over_check"] == row["plan_ms"] / row["check_ms"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["shape", "calls"] and len(lines) == 4


def test_the_generated_workflows_are_valid_wdl_of_their_shapes(tmp_path):
    pipeline = bench_planning.pipeline_files()
    assert len(pipeline) == 6
    assert sum(text.count("\ntask ") for text in pipeline.values()) == 40
    nested = bench_planning.nested_files(3)["main.wdl"]
    assert nested.count("scatter (") == 3 and "flatten(flatten(work.label))" in nested


def test_cost_quick_mode_counts_requests_and_prices_them(tmp_path, capsys):
    results = tmp_path / "results.json"
    figures = bench_cost.main(["--quick", "--results", str(results)])
    assert json.loads(results.read_text())["cost"]["counted_at"] == 50
    assert figures["sfn_transitions"] == 7  # Defaults, MergeDefaults, Start, Finish, ...
    assert figures["memory_mb"]["FinishFunction"] == 2048
    advance = figures["per_invocation"]["advance"]
    assert advance["invocations"] == 100  # RUNNING and SUCCEEDED of each of the 50 shards
    assert advance["units"]["write units"] > 0
    assert figures["fargate_total"] > figures["run_total"] > 0
    assert figures["run_with_nat_total"] > figures["run_total"]
    assert figures["idle_month_with_nat"] > figures["idle_month"] > 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("idle per month:")


def test_the_states_a_run_passes_through():
    asl = json.loads((bench_cost.ROOT / "statemachine" / "run_workflow.asl.json").read_text())
    assert bench_cost.states_passed(asl)[-2:] == ["Outcome", "Succeeded"]
    assert bench_cost.states_passed(asl, "failed")[-1] == "Failed"
