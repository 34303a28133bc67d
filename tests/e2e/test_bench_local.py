"""The local benchmark's quick mode (bench/bench_local.py) runs `miniwdl run` and both local
modes and says what it measured: its shape is checked, never its speed. Being the one test
that runs `--embedded-aws full` through the CLI end to end on the demo, it also keeps that
mode's results checked: every run must succeed."""

from __future__ import annotations

import json

from bench import bench_local


def test_the_quick_mode_prints_a_table_and_merges_its_figures(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"other": {"kept": True}}))  # another benchmark's figures
    bench_local.main(["--quick", "--results", str(results)])
    written = json.loads(results.read_text())
    assert written["other"] == {"kept": True}
    figures = written["local"]
    assert figures["mode"] == "quick" and figures["repeats"] == 1
    assert [row["workload"] for row in figures["rows"]] == ["scatter 20", "demo"]
    for row in figures["rows"]:
        assert set(row["median"]) == {"miniwdl", "memory", "full"}
        assert all(seconds > 0 for seconds in row["median"].values())
        assert row["ratio"]["memory"] == row["median"]["memory"] / row["median"]["miniwdl"]
        assert all(seconds > 0 for seconds in row["cpu_median"].values())  # CPU beside wall
        assert row["cpu_ratio"]["memory"] == (
            row["cpu_median"]["memory"] / row["cpu_median"]["miniwdl"]
        )
    assert "wide" not in figures  # the 10,000-shard scatter is the full mode's only
    assert set(figures["startup"]) == {"memory", "full"}
    assert all(0 < seconds for seconds in figures["startup"].values())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["workload", "miniwdl"]
    assert [line.split()[0] for line in lines[1:3]] == ["scatter", "demo"]
    assert lines[-1].startswith("embedded AWS start-up:")


def test_the_full_mode_table_shows_the_wide_scatter_per_shard():
    rows = [
        {
            "workload": "scatter 200",
            "median": {"miniwdl": 5.0, "memory": 6.0, "full": 30.0},
            "ratio": {"memory": 1.2, "full": 6.0},
        }
    ]
    wide = {"shards": 10_000, "seconds": 330.0, "per_shard": 0.033, "per_shard_200": 0.03}
    wide["ratio"] = wide["per_shard"] / wide["per_shard_200"]
    results = {"rows": rows, "startup": {"memory": 1.0, "full": 2.0}, "wide": wide}
    lines = bench_local.table(results).splitlines()
    assert (
        lines[2]
        == "scatter 10000 (memory): 330.0 s, 33.0 ms a shard (1.10x the 200-shard run's 30.0 ms)"
    )
    assert lines[-1].startswith("embedded AWS start-up:")
