"""What `status`, `list` and `--follow` show, from plain job items."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from miniwdl_serverless.cli import views

JOBS = [
    {"job_id": "decl-x", "status": "done"},
    {
        "job_id": "call-a",
        "status": "done",
        "attempt": 1,
        "batch_job_name": "n",
        "batch_job_id": "j1",
        "log_stream": "s1",
        "started_at": 100.0,
        "finished_at": 165.0,
    },
    {
        "job_id": "call-b-0",
        "status": "running",
        "attempt": 0,
        "batch_job_name": "n",
        "batch_job_id": "j2",
        "started_at": 150.0,
    },
    {
        "job_id": "call-b-1",
        "status": "running",
        "attempt": 0,
        "batch_job_name": "n",
        "batch_job_id": "j3",
    },
    {"job_id": "call-sub/call-c", "status": "waiting"},
    {
        "job_id": "call-d",
        "status": "failed",
        "attempt": 2,
        "batch_job_name": "n",
        "batch_job_id": "j4",
        "started_at": 1.0,
        "finished_at": 2.0,
    },
]


def test_a_cached_call_is_shown_cached_and_counted_done():
    job = {"job_id": "call-x", "status": "done", "batch_job_name": "n", "cached_from": "/r/c"}
    (row,) = views.call_rows([job], now=1.0)
    assert row["status"] == "cached" and row["cached_from"] == "/r/c"
    counts = views.count_calls([row])
    assert (counts.done, counts.cached) == (1, 1)
    assert (
        views.progress_line(counts)
        == "calls: 1 of 1 done (1 cached), 0 running, 0 queued, 0 failed"
    )
    run = {"calls_submitted": 2, "calls_succeeded": 1, "calls_cached": 3}
    assert views.counts_from_run(run) == views.Counts(done=4, running=1, cached=3)


def test_call_rows_and_counts():
    rows = views.call_rows(JOBS, now=200.0)
    assert [r["call"] for r in rows] == [
        "call-a",
        "call-b-0",
        "call-b-1",
        "call-d",
        "call-sub/call-c",
    ]
    a, b0, b1, d, c = rows
    assert a == {
        "call": "call-a",
        "status": "succeeded",
        "attempts": 2,
        "duration_seconds": 65.0,
        "batch_job_id": "j1",
        "log_stream": "s1",
        "cached_from": None,
    }
    assert b0["status"] == "running" and b0["duration_seconds"] == 50.0
    assert b1["status"] == "queued" and b1["duration_seconds"] is None
    assert c["status"] == "waiting" and c["attempts"] == 0
    assert d["status"] == "failed" and d["attempts"] == 3
    counts = views.count_calls(rows)
    assert (counts.done, counts.running, counts.queued, counts.waiting, counts.failed) == (
        1,
        1,
        1,
        1,
        1,
    )
    # out of the 5 known: the waiting one counts in the total
    assert views.progress_line(counts) == "calls: 1 of 5 done, 1 running, 1 queued, 1 failed"
    assert (
        views.progress_line(counts, width=10)
        == "[##........] calls: 1 of 5 done, 1 running, 1 queued, 1 failed"
    )


def test_status_table_and_list():
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    execution = {"name": "r1", "executionArn": "arn:x", "status": "RUNNING", "startDate": start}
    report = views.status_report(
        execution,
        {"workflow_name": "w", "run_dir": "/mnt/efs/r", "status": "running"},
        views.call_rows(JOBS, now=200.0),
    )
    text = views.format_status(report)
    assert text.splitlines()[0] == "run r1: RUNNING"
    assert "  workflow: w" in text and "  dir: /mnt/efs/r" in text
    header = next(line for line in text.splitlines() if line.startswith("CALL"))
    assert header.split() == [
        "CALL",
        "STATUS",
        "ATTEMPTS",
        "DURATION",
        "BATCH",
        "JOB",
        "LOG",
        "STREAM",
    ]
    assert any(
        line.split()[:4] == ["call-a", "succeeded", "2", "1m05s"] for line in text.splitlines()
    )
    listed = views.format_list(
        [
            {
                "name": "r1",
                "status": "SUCCEEDED",
                "startDate": start,
                "stopDate": start + timedelta(seconds=3725),
            }
        ]
    )
    assert listed.splitlines()[1].split() == [
        "r1",
        "SUCCEEDED",
        "2026-01-02T03:04:05+00:00",
        "1h02m",
    ]
    assert views.format_list([]) == "no runs"


def test_large_runs_count_calls_from_the_run_counters():
    run = {
        "calls_submitted": 120,
        "calls_succeeded": 90,
        "calls_failed": 1,
        "calls_retried": 4,
        "jobs_total": 10_006,
    }
    counts = views.counts_from_run(run)
    assert (counts.done, counts.running, counts.failed, counts.queued) == (90, 25, 1, 0)
    assert views.progress_line(counts) == "calls: 90 of 116 done, 25 running, 0 queued, 1 failed"
    assert views.counts_from_run({}).total == 0


def test_a_failed_tasks_details_name_it_its_line_its_stderr_tail_and_its_logs():
    from miniwdl_serverless.cli.views import TAIL_LINES, failure_details

    stderr = "".join(f"line {n}\n" for n in range(30))
    info = {
        "cause": {
            "error": "CommandFailed",
            "exit_status": 3,
            "task": "align",
            "pos": {"source": "/home/me/pipeline/align.wdl", "line": 12, "column": 1},
            "stderr_file": "/mnt/efs/run/call-align/stderr.txt",
            "stderr_tail": stderr,
        },
        "logs": {
            "workflow_log": "/mnt/efs/run/workflow.log",
            "cloudwatch": {"group": "/aws/batch/job", "stream": "jd/default/abc"},
        },
    }
    lines = failure_details(info)
    assert lines[0] == "  task align (align.wdl Ln 12 Col 1) failed with exit status 3"
    assert lines[1] == "  last lines of its stderr (/mnt/efs/run/call-align/stderr.txt):"
    assert lines[2 : 2 + TAIL_LINES] == [f"    line {n}" for n in range(20, 30)]
    assert lines[-2:] == [
        "  workflow log: /mnt/efs/run/workflow.log",
        "  task log: CloudWatch /aws/batch/job jd/default/abc",
    ]
    assert failure_details({"error": "RunFailed", "message": "x"}) == []
