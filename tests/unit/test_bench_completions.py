"""The completions benchmark's quick mode (bench/bench_completions.py) runs and says what it
measured: its shape is checked, never its speed (speed is measured in the benchmark)."""

from __future__ import annotations

import json

from bench import bench_completions

KINDS = {"DynamoDB read", "DynamoDB write", "DynamoDB transaction", "EFS file operation"}


def test_the_quick_mode_prints_a_table_and_merges_its_figures(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"other": {"kept": True}}))  # another benchmark's figures
    bench_completions.main(["--quick", "--results", str(results)])
    written = json.loads(results.read_text())
    assert written["other"] == {"kept": True}
    figures = written["completions"]
    assert figures["mode"] == "quick"
    assert [row["n"] for row in figures["rows"]] == [10, 100]
    for row in figures["rows"]:
        ours, theirs = row["ours"], row["baseline"]
        assert 0 < ours["median_ms"] <= ours["p95_ms"] <= ours["max_ms"]
        assert 0 < theirs["median_ms"] <= theirs["p95_ms"] <= theirs["max_ms"]
        assert theirs["timed"] == min(row["n"], bench_completions.BASELINE_SAMPLES)
        assert row["baseline_over_ours"] > 0
        assert KINDS <= set(ours["requests_per_completion"])
        # a shard's completion is no transaction (its gather is tallied, design rule 7): the
        # shard done, its index and counters tallied in its bucket; transactions are the
        # gather's own
        requests = ours["requests_per_completion"]
        assert requests["DynamoDB write"] >= 2
        assert requests["DynamoDB transaction"] <= 2 / row["n"] + 1e-9
    assert figures["target"]["n"] == 100 and figures["target"]["over"] == 10
    assert set(figures["target"]) >= {"cpu_ratio", "requests_ratio", "holds"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["N", "median", "ms"]
    assert [line.split()[0] for line in lines[1:3]] == ["10", "100"]
    assert lines[-1].startswith("target:")


class _Batch:
    def submit(self, submission: object) -> str:
        return "id"

    def describe(self, batch_job_ids: list[str]) -> list:
        return []


def test_requests_are_counted_by_kind_as_the_adapters_make_them():
    counts = bench_completions.Counting(_Batch(), bench_completions._batch_kind)
    assert counts.submit("job") == "id"
    counts.describe(["a"] * 150)  # DescribeJobs takes 100 ids a request
    assert counts.requests == {"Batch SubmitJob": 1, "Batch DescribeJobs": 2}  # no ListJobs first
