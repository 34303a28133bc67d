"""The run report's pure parts: workflow.log parsed into attempts, the model built from job
items, the cost estimate, and the HTML (every run-controlled string escaped, nothing fetched)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from miniwdl_serverless.core import report_html
from miniwdl_serverless.core.cost_model import Prices, orchestration_cost
from miniwdl_serverless.core.decisions import DISKS_LIMIT, runtime_summary, task_submission
from miniwdl_serverless.core.run_report import (
    CACHED,
    FAILED,
    RETRIED,
    STOPPED,
    SUCCEEDED,
    build_report,
    estimate_usage,
    parse_workflow_log,
)

T0 = datetime(2026, 12, 3, 7, 0, 0, tzinfo=timezone.utc).timestamp()
HOSTILE = '<script>alert("x")</script>&\'"'


def line(seconds: float, message: str) -> str:
    stamp = datetime.fromtimestamp(T0 + seconds, tz=timezone.utc)
    return f"{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} wdl.w:w {message}"


LOG = "\n".join(
    [
        line(0, "run run-1 started: /data/w.wdl"),
        line(1, "submitting call-t-0 attempt 1 (ubuntu:22.04, queue)"),
        line(1, "submitting call-t-10 attempt 1 (ubuntu:22.04, queue)"),
        line(1, "submitting call-t-2 attempt 1 (ubuntu:22.04, queue)"),
        line(2, "call-t-0 attempt 1 running as Batch job b-0"),
        line(3, "retrying call-t-0 after attempt 1: task command failed with exit status 3"),
        line(4, "submitting call-t-0 attempt 2 (ubuntu:22.04, queue)"),
        line(5, "call-t-0 attempt 2 running as Batch job b-1"),
        line(9, "finished call-t-0 (exit status 0)"),
        line(2, "call-t-10 attempt 1 running as Batch job b-2"),
        line(3, "call-t-2 attempt 1 running as Batch job b-3"),
        line(6, "call-sub/call-c: call cache hit, outputs of /runs/old/call-sub/call-c"),
        "a line cut sho",
        line(10, "not an event the timeline knows"),
        line(11, "workflow failed: call-t-2 command failed with exit status 7"),
    ]
)


def job(job_id: str, **fields):
    base = {"job_id": job_id, "status": "done", "scope": "", "scatter_stack": []}
    return {**base, **fields}


RUNTIME = {
    "cpu": 2,
    "memory_mib": 2015,
    "gpus": 1,
    "docker": "ubuntu:22.04",
    "disks": "local-disk 20 SSD",
}
JOBS = [
    job("decl-x"),
    job("call-t-0", runtime=RUNTIME, batch_job_name="n0", attempt=1, scatter_stack=[["0", "i", 0]]),
    job(
        "call-t-2",
        runtime=RUNTIME,
        batch_job_name="n2",
        status="failed",
        scatter_stack=[["2", "i", 2]],
    ),
    job(
        "call-t-10",
        runtime=RUNTIME,
        batch_job_name="n10",
        status="running",
        scatter_stack=[["10", "i", 10]],
    ),
    job("call-sub", scatter_stack=[["1", "s", 1]]),  # a sub-workflow call: its children are rows
    job("call-sub/call-c", scope="call-sub", cached_from="/runs/old/call-sub/call-c"),
]
ERROR = {
    "error": "RunFailed",
    "message": "call-t-2 command failed with exit status 7",
    "cause": {
        "error": "CommandFailed",
        "exit_status": 7,
        "node": "call-t-2",
        "stderr_file": "/runs/r/call-t-2/stderr.txt",
    },
}


def report(**overrides):
    arguments = {
        "run_id": "run-1",
        "run": {"workflow_name": "w", "status": "failed", "created_at": T0, "finished_at": T0 + 11},
        "jobs": JOBS,
        "log_text": LOG,
        "error": ERROR,
        "stderr_tail": "last words\n",
        "now": T0 + 20,
    }
    arguments.update(overrides)
    return build_report(**arguments)


def test_log_lines_become_events_and_other_lines_are_skipped():
    events = parse_workflow_log(LOG)
    kinds = [e.kind for e in events]
    assert kinds.count("submitted") == 4 and kinds.count("running") == 4
    assert kinds[0] == "run-started" and kinds[-1] == "run-ended"
    assert events[0].at == T0  # the log's stamps are UTC
    retry = next(e for e in events if e.kind == "retrying")
    assert (retry.call, retry.attempt) == ("call-t-0", 1)
    assert "exit status 3" in retry.detail
    assert len(events) == 13  # the cut line and the unknown message are not events


def test_one_row_per_shard_in_index_order_with_attempts():
    rows = {r.call: r for r in report().calls}
    assert list(rows) == ["call-sub/call-c", "call-t-0", "call-t-2", "call-t-10"]
    retried = rows["call-t-0"]
    assert [(a.number, a.outcome) for a in retried.attempts] == [(1, RETRIED), (2, SUCCEEDED)]
    assert retried.status == SUCCEEDED and retried.shard == "0"
    assert retried.queued_seconds == 2.0  # 1 s before each attempt ran
    assert retried.running_seconds == 5.0 and retried.wall_seconds == 8.0


def test_the_failed_call_fails_and_calls_still_running_were_stopped_with_the_run():
    rows = {r.call: r for r in report().calls}
    failed = rows["call-t-2"]
    assert failed.status == FAILED and failed.attempts[-1].outcome == FAILED
    assert failed.attempts[-1].ended_at == T0 + 11  # the workflow's failure
    stopped = rows["call-t-10"]
    assert stopped.status == STOPPED and stopped.attempts[-1].ended_at == T0 + 11


def test_a_cache_hit_is_a_cached_row_without_a_batch_attempt():
    rows = {r.call: r for r in report().calls}
    hit = rows["call-sub/call-c"]
    assert hit.status == CACHED and [a.outcome for a in hit.attempts] == [CACHED]
    assert hit.shard == "1"  # its sub-workflow call's shard


def test_resources_asked_come_from_the_job_items():
    row = next(r for r in report().calls if r.call == "call-t-0")
    r = row.resources
    assert (r.cpu, r.memory_mib, r.gpus, r.disks, r.image) == (
        2,
        2015,
        1,
        "local-disk 20 SSD",
        "ubuntu:22.04",
    )


def test_the_failure_names_the_call_its_status_and_stderr_tail():
    failure = report().failure
    assert failure is not None
    assert (failure.call, failure.exit_status, failure.stderr_tail) == (
        "call-t-2",
        7,
        "last words\n",
    )
    assert failure.error == "RunFailed" and "exit status 7" in failure.message
    assert report(run={"status": "succeeded"}, error=None).failure is None


def test_without_the_log_the_job_items_give_the_last_attempt():
    built = report(log_text="")
    row = next(r for r in built.calls if r.call == "call-t-0")
    jobs = [
        job(
            "call-x",
            runtime=RUNTIME,
            batch_job_name="n",
            attempt=2,
            submitted_at=T0 + 1,
            started_at=T0 + 2,
            finished_at=T0 + 5,
        )
    ]
    only = report(log_text="", jobs=jobs, error=None, run={"status": "succeeded"}).calls
    assert [(a.number, a.outcome) for a in only[0].attempts] == [(3, SUCCEEDED)]
    assert only[0].running_seconds == 3.0 and only[0].queued_seconds == 1.0
    assert row.status == SUCCEEDED  # the item says done; its attempt times are not kept


def test_without_records_the_status_comes_from_the_log():
    built = build_report("run-1", None, [], LOG, None, now=T0 + 20)
    assert built.status == "failed" and built.started_at == T0 and built.ended_at == T0 + 11
    assert {r.call for r in built.calls} == {"call-t-0", "call-t-2", "call-t-10", "call-sub/call-c"}
    running = build_report("run-1", None, [], LOG.rsplit("\n", 1)[0], None, now=T0 + 20)
    assert running.status == "running" and running.ended_at is None


def test_cost_counts_events_per_attempt_at_the_price_table():
    built = report()
    usage = built.usage
    by_function = {i.function: i for i in usage.invocations}
    submitted = 4  # call-t-0 twice, call-t-2, call-t-10; the cache hit has no Batch job
    assert by_function["advance"].count == 2 * submitted
    assert usage.aws_events == 2 * submitted + 1
    assert by_function["start"].count == by_function["finish"].count == 1
    assert built.cost.total == orchestration_cost(usage, Prices()).total > 0
    dearer = report(prices=Prices(lambda_request=1.0))
    assert dearer.cost.items["Lambda requests"] == sum(i.count for i in usage.invocations)


def test_a_longer_run_pays_for_its_reconcile_rounds():
    short = estimate_usage([], 10, hours=0.0)
    hour = estimate_usage([], 10, hours=1.0)
    rounds = {i.function: i.count for i in hour.invocations}["reconcile"]
    assert rounds == 12 and {i.function: i.count for i in short.invocations}["reconcile"] == 0
    assert hour.sqs_requests == 12


def test_every_run_controlled_string_is_escaped():
    jobs = [
        job(
            f"call-{HOSTILE}",
            runtime={**RUNTIME, "docker": HOSTILE, "disks": HOSTILE},
            batch_job_name="n",
            scatter_stack=[[HOSTILE, "i", 0]],
        )
    ]
    log = "\n".join(
        [
            line(0, f"submitting call-{HOSTILE} attempt 1 ({HOSTILE}, q)"),
            line(1, f"retrying call-{HOSTILE} after attempt 1: {HOSTILE}"),
        ]
    )
    error = {
        "error": HOSTILE,
        "message": HOSTILE,
        "cause": {"node": HOSTILE, "stderr_file": HOSTILE},
    }
    built = build_report(
        "run-<b>",
        {"workflow_name": HOSTILE, "run_dir": HOSTILE, "status": "failed", "created_at": T0},
        jobs,
        log,
        error,
        stderr_tail=HOSTILE,
        source=HOSTILE,
        now=T0 + 5,
    )
    page = report_html.render(built)
    assert "<script" not in page.lower()
    assert "run-&lt;b&gt;" in page
    assert page.count("&lt;script&gt;") >= 8  # title, header, failure, stderr, rows, table...
    # a quote cannot end an attribute: no raw " after an escaped value
    assert '"x")' not in page and "&quot;x&quot;" in page
    for attribute in re.findall(r"<[a-z]+ ([^>]*)>", page):
        assert "<" not in attribute


def test_the_page_fetches_nothing():
    page = report_html.render(report())
    lowered = page.lower()
    for fetch in ("<script", "<link", "src=", "href=", "url(", "@import", "<iframe", "<img"):
        assert fetch not in lowered, fetch
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</html>" in page


def test_the_gantt_draws_each_outcome_in_its_colour():
    page = report_html.render(report())
    svg = page[page.index("<svg") : page.index("</svg>")]
    for outcome in (SUCCEEDED, RETRIED, FAILED, CACHED, STOPPED, "queued"):
        assert f'fill="{report_html.COLOURS[outcome]}"' in svg, outcome
    assert svg.count("<title>") == 9  # a queued and a running part per attempt; a cache hit's mark


def test_a_wide_run_is_cut_at_max_rows(monkeypatch):
    monkeypatch.setattr(report_html, "MAX_ROWS", 2)
    page = report_html.render(report())
    assert "2 more calls not shown" in page


def test_job_items_keep_disks_as_written_and_bounded():
    from miniwdl_serverless.core.decisions import CallAttempt, TaskSettings

    call = CallAttempt("run-1", "call-t", 0, {"cpu": 1}, {"disks": "local-disk 20 SSD"}, "true")
    submission = task_submission(call, TaskSettings(), "queue", {})
    assert runtime_summary(submission, {}, {"disks": "local-disk 20 SSD"})["disks"] == (
        "local-disk 20 SSD"
    )
    listed = runtime_summary(submission, {}, {"disks": ["/a 1 SSD", "/b 2 HDD"]})
    assert listed["disks"] == "/a 1 SSD, /b 2 HDD"
    assert len(runtime_summary(submission, {}, {"disks": "x" * 1000})["disks"]) == DISKS_LIMIT
    assert "disks" not in runtime_summary(submission, {})


def test_a_live_run_draws_open_attempts_to_now():
    live = "\n".join(LOG.splitlines()[:5])  # call-t-0 running, the others queued
    built = build_report("run-1", None, [], live, None, now=T0 + 20)
    assert built.status == "running"
    page = report_html.render(built)
    assert f'fill="{report_html.COLOURS["running"]}"' in page
    widths = [float(w) for w in re.findall(r'width="([\d.]+)" height="12"', page)]
    assert len(widths) == 4 and max(widths) > 3.0  # nothing vanishes for want of an end


# ---- the shell's reads and writes in a run directory a task could tamper with ----------------


def test_local_records_never_read_through_a_link_or_a_fifo(tmp_path):
    import json
    import os

    from miniwdl_serverless.cli.report import local_records

    secret = tmp_path / "secret.txt"
    secret.write_text("do not show")
    run_dir = tmp_path / "run"
    call = run_dir / "call-t"
    call.mkdir(parents=True)
    (run_dir / "workflow.log").write_text(LOG)
    error = {
        "error": "RunFailed",
        "cause": {"node": "call-t", "stderr_file": str(call / "stderr.txt")},
    }
    (run_dir / "error.json").write_text(json.dumps(error))
    (call / "stderr.txt").symlink_to(secret)  # a task left a link where its stderr was
    log_text, found, tail = local_records(str(run_dir), None)
    assert log_text == LOG and found == error and tail is None
    (call / "stderr.txt").unlink()
    os.mkfifo(call / "stderr.txt")  # a FIFO: opening it must not block, nor be read
    assert local_records(str(run_dir), None)[2] is None
    (call / "stderr.txt").unlink()
    (call / "stderr.txt").write_text("x" * 10_000 + "the end\n")
    tail = local_records(str(run_dir), None)[2]
    assert tail is not None and tail.endswith("the end\n") and len(tail) == 4096
    outside = {**error, "cause": {"stderr_file": str(secret)}}  # an error naming another file
    assert local_records(str(run_dir), outside)[2] is None


def test_the_report_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    from miniwdl_serverless.cli.report import write_report

    target = tmp_path / "elsewhere.txt"
    target.write_text("kept")
    page = tmp_path / "report.html"
    page.symlink_to(target)
    write_report("<html></html>", str(page))
    assert target.read_text() == "kept"
    assert not page.is_symlink() and page.read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
