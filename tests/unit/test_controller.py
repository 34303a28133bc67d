"""The real controller (start, advance, the driver loop, stop) on in-memory ports, through
every path: planning, each Batch event kind, stale and duplicate events, retries, spot
interruptions and the fallback queue, sub-workflows, scope ends, stop, fail fast."""

from __future__ import annotations

import json
import os

import pytest

from miniwdl_serverless.adapters.memory import SubmittedJob
from miniwdl_serverless.controller.ports import PortError
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB, TAG_RUN
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    FAILED,
    RUN_FAILED,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
    WAITING,
)

from .harness import FALLBACK, QUEUE, SPOT_RECLAIMED, Harness, Outcome

CHAIN = """
version 1.0
workflow chain {
  input { Int x = 3 }
  call double as first { input: x = x }
  call double as second { input: x = first.y }
  output { Int result = second.y }
}
task double {
  input { Int x }
  command {}
  output { Int y = x * 2 }
  runtime { cpu: 2, memory: "4 GiB", maxRetries: 1, preemptible: 2 }
}
"""


@pytest.fixture
def harness() -> Harness:
    return Harness()


def fails(exit_code: int = 1):
    def behaviour(job: SubmittedJob) -> Outcome:
        return ("FAILED", exit_code, "Essential container in task exited")

    return behaviour


# ---- start ----------------------------------------------------------------------------------


def test_start_plans_the_run_and_submits_what_is_ready(harness):
    result = harness.start(CHAIN, {"x": 5})
    run = harness.run()
    assert result == {"run_id": harness.run_id, "dir": run.run_dir}
    assert run.status == RUN_RUNNING and run.workflow_name == "chain"
    assert run.run_dir == "/efs/runs/20261201_100000_chain"
    assert harness.files.is_file(run.run_dir + "/inputs.json")
    assert json.loads(harness.files.read_text(run.run_dir + "/inputs.json")) == {"chain.x": 5}
    (job,) = harness.batch.jobs.values()
    submission = job.submission
    assert submission.name == f"{harness.run_id}-call-first-try1"
    assert submission.queue == QUEUE and submission.image == "ubuntu:22.04"
    assert (submission.resources.vcpus, submission.resources.memory_mib) == (2, 4096 - 33)
    assert submission.tags == {TAG_RUN: harness.run_id, TAG_JOB: "call-first", TAG_ATTEMPT: "0"}
    assert submission.timeout_seconds == 86400
    assert "bash ../command" in submission.script
    first = harness.job("call-first")
    assert (first.status, first.batch_job_id, first.queue) == (RUNNING, job.batch_job_id, QUEUE)
    assert first.runtime == {
        "docker": "ubuntu:22.04",
        "cpu": 2,
        "memory_mib": 4063,
        "gpus": 0,
        "maxRetries": 1,
        "preemptible": 2,
    }
    assert harness.job("call-second").status == WAITING
    assert harness.files.is_file(run.run_dir + "/call-first/command")
    assert harness.metrics.counts["TasksSubmitted"] == 1
    assert harness.answer() is None  # Step Functions keeps waiting


def test_a_run_plays_to_its_outputs(harness):
    harness.start(CHAIN, {"x": 5})
    harness.play()
    assert harness.outputs() == {"chain.result": 20}
    answer = harness.answer()
    assert answer == ("success", {"run_id": harness.run_id, "dir": harness.run().run_dir})
    run = harness.run()
    assert run.status == RUN_SUCCEEDED and run.finished_at and run.expires_at
    assert (run.calls_submitted, run.calls_succeeded, run.jobs_done) == (2, 2, run.jobs_total)
    assert harness.metrics.counts["TasksSucceeded"] == 2
    log = harness.files.read_text(run.run_dir + "/workflow.log")
    assert "finished call-second (exit status 0)" in log and "workflow finished" in log


def test_a_retried_start_changes_nothing(harness):
    harness.start(CHAIN)
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{harness.run_id}"
    again = __import__("miniwdl_serverless.controller.start", fromlist=["start_run"]).start_run(
        {"workflow_source": CHAIN, "dir": harness.root}, harness.token, arn, None, harness.ports
    )
    assert again == {"run_id": harness.run_id, "resumed": True}
    assert len(harness.batch.jobs) == 1


def test_a_document_of_one_task_runs_it_without_task(harness):
    """As `miniwdl run` (its runner_exe): no workflow and one task, that task."""
    harness.start("version 1.0\ntask lone { command { echo hi } }")
    assert harness.run().workflow_name == "lone"
    assert len(harness.batch.jobs) == 1


@pytest.mark.parametrize(
    "source, inputs, options, error, message",
    [
        ("version 1.0\nworkflow w { Int x = }", {}, {}, "SyntaxError", ":2:"),
        (CHAIN, {"nope": 1}, {}, "InputError", "nope"),
        (CHAIN, {"x": "three"}, {}, "InputError", "x"),
        (CHAIN, {}, {"task": "missing"}, "InputError", "no task named missing"),
        (
            "version 1.0\ntask t { command {} }\ntask u { command {} }",
            {},
            {},
            "InputError",
            "give 'task' for a WDL document with several tasks",
        ),
        (CHAIN, {}, {"s3upload": "results"}, "InvalidSubmission", "s3upload"),
        (
            "version 1.0\nworkflow w { input { File f } }",
            {"f": "/nonexistent/f.txt"},
            {},
            "InputError",
            "/nonexistent/f.txt",
        ),
    ],
)
def test_bad_input_fails_before_any_job(harness, source, inputs, options, error, message):
    result = harness.start(source, inputs, **options)
    assert result == {"run_id": harness.run_id, "failed": error}
    assert harness.batch.jobs == {}
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["error"] == error
    assert message in run.error["message"]
    kind, (name, cause) = harness.answer()
    assert (kind, name) == ("failure", error) and message in json.loads(cause)["message"]


def test_a_lone_task_runs_with_task(harness):
    harness.start(CHAIN, {"x": 4}, task="double")
    (job,) = harness.batch.jobs.values()
    assert job.submission.tags[TAG_JOB] == "call-double"
    harness.play()
    assert harness.outputs() == {"double.y": 8}


# ---- Batch events ---------------------------------------------------------------------------


def test_running_is_noted_once(harness):
    harness.start(CHAIN)
    job = harness.batch_job_of("call-first")
    assert harness.event(job, "RUNNING") == "noted"
    noted = harness.job("call-first")
    assert noted.started_at and noted.log_stream == f"default/{job.batch_job_id}"
    assert harness.event(job, "STARTING") == "noted"
    assert harness.job("call-first").started_at == noted.started_at
    assert harness.event(job, "RUNNABLE") == "ignored: status RUNNABLE"


def test_duplicate_and_late_events_change_nothing(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    assert harness.event(first, "SUCCEEDED", 0) == "collected"
    second = harness.job("call-second")
    run = harness.run()
    assert harness.event(first, "SUCCEEDED", 0) == "resumed"  # EventBridge delivers again
    assert harness.event(first, "RUNNING") == "resumed"  # out of order
    assert harness.job("call-second") == second
    assert harness.run().jobs_done == run.jobs_done
    assert len(harness.batch.jobs) == 2


def test_stale_unknown_and_foreign_events_are_ignored(harness):
    harness.start(CHAIN)
    job = harness.batch_job_of("call-first")
    stale = harness.detail(job, "SUCCEEDED", 0, None)
    from miniwdl_serverless.controller.advance import on_batch_event

    older = stale.model_copy(update={"tags": {**stale.tags, TAG_ATTEMPT: "7"}})
    assert on_batch_event(older, harness.ports) == "ignored: stale event"
    other = stale.model_copy(update={"jobId": "another-batch-job"})
    assert on_batch_event(other, harness.ports) == "ignored: stale event"
    unknown = stale.model_copy(update={"tags": {**stale.tags, TAG_JOB: "call-nope"}})
    assert on_batch_event(unknown, harness.ports) == "ignored: unknown job"
    foreign = stale.model_copy(update={"tags": {}})
    assert on_batch_event(foreign, harness.ports) == "ignored: not a miniwdl-serverless job"
    no_run = stale.model_copy(update={"tags": {**stale.tags, TAG_RUN: "run-unknown"}})
    assert on_batch_event(no_run, harness.ports) == "ignored: run not running"
    assert harness.job("call-first").status == RUNNING


def test_a_failed_command_is_retried_then_fails_the_run(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    assert harness.event(first, "FAILED", 3, "Essential container in task exited") == "retried"
    retried = harness.job("call-first")
    assert (retried.attempt, retried.interruptions, retried.status) == (1, 0, RUNNING)
    again = harness.batch_job_of("call-first")
    assert again.submission.name.endswith("-try2") and again.submission.queue == QUEUE
    assert again.submission.tags[TAG_ATTEMPT] == "1"
    run_dir = harness.run().run_dir
    call = f"{run_dir}/call-first"  # miniwdl's names: the retry runs in work2/
    assert harness.files.is_dir(f"{call}/work") and harness.files.is_dir(f"{call}/work2")
    assert harness.files.is_file(f"{call}/stdout2.txt")
    assert harness.files.is_file(f"{call}/stderr2.txt")
    assert again.submission.script.startswith(f"cd {call}/work2\n")
    assert harness.event(again, "FAILED", 3) == "failed"
    run = harness.run()
    assert run.status == RUN_FAILED and run.calls_retried == 1 and run.calls_failed == 1
    assert run.error["error"] == "RunFailed" and run.error["cause"]["exit_status"] == 3
    assert run.error["cause"]["stderr_file"] == f"{call}/stderr2.txt"
    assert run.error["cause"]["error"] == "CommandFailed"
    assert run.error["message"] == "call-first command failed with exit status 3"
    assert harness.job("call-first").status == FAILED
    kind, (name, cause) = harness.answer()
    assert (kind, name) == ("failure", "CommandFailed")
    assert json.loads(harness.files.read_text(run_dir + "/error.json"))["cause"]["exit_status"] == 3
    assert harness.event(first, "FAILED", 3) == "ignored: run not running"


def test_return_codes_decide_success(harness):
    source = CHAIN.replace("maxRetries: 1", "maxRetries: 0, returnCodes: [0, 3]")
    harness.start(source)
    assert harness.event(harness.batch_job_of("call-first"), "FAILED", 3) == "collected"
    assert harness.job("call-first").status == DONE


def test_spot_interruptions_use_preemptible_then_the_fallback_queue(harness):
    harness.start(CHAIN)
    queues = []
    for expected in ("retried", "retried", "retried", "failed"):
        job = harness.batch_job_of("call-first")
        queues.append(job.submission.queue)
        assert harness.event(job, "FAILED", None, SPOT_RECLAIMED) == expected
    # two interruptions use up preemptible: 2 (the next try goes on demand), then the third
    # failure is the one maxRetries: 1 allows, and the fourth fails the run
    assert queues == [QUEUE, QUEUE, FALLBACK, FALLBACK]
    job = harness.job("call-first")
    assert (job.attempt, job.interruptions) == (3, 2)
    assert harness.run().status == RUN_FAILED
    assert harness.run().error["cause"]["error"] == "Interrupted"


def test_a_job_that_never_ran_fails_with_batchs_reason(harness):
    harness.start(CHAIN.replace("maxRetries: 1", "maxRetries: 0"))
    reason = "Task failed to start - CannotPullContainerError: not found"
    assert harness.event(harness.batch_job_of("call-first"), "FAILED", None, reason) == "failed"
    error = harness.run().error
    assert error["error"] == "RunFailed" and reason in error["message"]


# ---- fail fast, stop, stragglers ------------------------------------------------------------

SCATTER = """
version 1.0
workflow fan {
  scatter (i in range(3)) { call work { input: i = i } }
  output { Array[Int] out = work.out }
}
task work { input { Int i } command {} output { Int out = i } }
"""


def test_a_failed_call_terminates_the_runs_other_jobs(harness):
    harness.start(SCATTER)
    jobs = [harness.batch_job_of(f"call-work-{i}") for i in range(3)]
    assert harness.event(jobs[1], "FAILED", 1) == "failed"
    terminated = {j.batch_job_id for j in harness.batch.jobs.values() if j.terminated}
    assert terminated == {jobs[0].batch_job_id, jobs[2].batch_job_id}
    # a start is noted without reading the run (one write): the run's end terminated the job
    assert harness.event(jobs[0], "RUNNING") == "noted"
    # one the write refuses (noted before, the attempt moved on) is read in full: of a run
    # that ended, it is terminated
    assert harness.event(jobs[0], "RUNNING") == "terminated: run failed"  # a straggler
    assert harness.event(jobs[0], "FAILED", None, "terminated") == "ignored: run not running"


def test_stop_fails_the_run_and_terminates_its_jobs(harness):
    harness.start(SCATTER)
    assert harness.stop("ABORTED") == 3
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["error"] == "RunStopped"
    assert all(j.terminated for j in harness.batch.jobs.values())
    assert harness.stop("ABORTED") == 3  # idempotent: terminating again is harmless
    assert harness.stop("ABORTED") and harness.run().error["error"] == "RunStopped"


def test_stop_after_success_does_nothing(harness):
    harness.start(SCATTER)
    harness.play()
    assert harness.stop("FAILED") == 0 and harness.run().status == RUN_SUCCEEDED


# ---- graphs ---------------------------------------------------------------------------------

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


def test_nested_sections_give_miniwdl_results(harness):
    harness.start(NESTED)
    harness.play()
    assert harness.outputs() == {
        "w.ys": [None, 24, 26],
        "w.kks": [[0], [0, 2], [0, 3, 6]],
        "w.zs": [2, 4, 6],
        "w.maybes": [None, 24, 26],
    }


GATHERED = """
version 1.1
workflow w {
  input { Array[String] names = ["ann", "bob", "cy"] }
  scatter (name in names) {
    call t { input: x = if name == "cy" then 2 else 3 }
    scatter (k in range(t.y)) { Int kk = k + t.y }
  }
  call add { input: ys = t.y }
  scatter (v in [0, 1]) { call add as again { input: ys = flatten(kk) } }
  output { Int total = add.s  Array[Array[Int]] kks = kk  Array[Int] agains = again.s }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
task add { input { Array[Int] ys } command {} output { Int s = length(ys) * 1000 + ys[0] } }
"""


def test_a_gather_holds_its_shards_count_and_feeds_later_calls(harness):
    harness.start(GATHERED)
    harness.play()
    kks = [[6 + k for k in range(6)], [6 + k for k in range(6)], [4 + k for k in range(4)]]
    assert harness.outputs() == {"w.total": 3006, "w.kks": kks, "w.agains": [16006, 16006]}
    jobs = {j.job_id: j for j in harness.store.query_jobs(harness.run_id)}
    gathers = [j for j in jobs.values() if j.node_id.startswith("gather-") and j.shards]
    # gather-call-t, gather-decl-kk at each name (nested) and of them all, gather-call-again
    assert len(gathers) == 6
    for gather in gathers:
        assert gather.deps == [] and gather.status == DONE
        shards = [j for j in jobs.values() if j.job_id.startswith(gather.shards["prefix"])]
        assert (
            len([j for j in shards if j.node_id == gather.shards["node"]])
            == (gather.shards["count"])
        )
    # miniwdl's ids, with the value tags of the names (call-t-0-ann, ...)
    assert jobs["gather-call-t"].shards["prefix"] == "call-t-"
    assert "call-t-0-ann" in jobs


MAIN = """
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


def test_subworkflows_run_as_child_graphs_and_complete_their_calls(harness, tmp_path):
    (tmp_path / "main.wdl").write_text(MAIN)
    (tmp_path / "sub.wdl").write_text(INNER)
    harness.start("", workflow=str(tmp_path / "main.wdl"), workflow_source=None)
    names = sorted(j.submission.tags[TAG_JOB] for j in harness.batch.jobs.values())
    calls = [name.split("/")[0] for name in names]  # miniwdl's ids: index, then the value tag
    assert [name.split("/")[1] for name in names] == ["call-t", "call-t"]
    assert harness.job(calls[0]).status == RUNNING  # the call is open while its graph runs
    harness.play()
    assert harness.outputs() == {"main.doubled": [2, 4]}
    assert harness.job(calls[1]).status == DONE
    log = harness.files.read_text(harness.run().run_dir + "/workflow.log")
    assert f"sub-workflow {calls[0]} finished" in log


SCATTERING = """
version 1.0
workflow inner {
  input { Int x }
  scatter (i in range(x)) { call t { input: x = i + x } }
  output { Array[Int] out = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
"""


def test_a_scatter_inside_a_scattered_sub_workflow_gathers_its_own_shards(harness, tmp_path):
    (tmp_path / "main.wdl").write_text(
        MAIN.replace("Array[Int] doubled", "Array[Array[Int]] doubled")
    )
    (tmp_path / "sub.wdl").write_text(SCATTERING)
    harness.start("", workflow=str(tmp_path / "main.wdl"), workflow_source=None)
    harness.play()
    assert harness.outputs() == {"main.doubled": [[2], [4, 6]]}
    inner = [j for j in harness.store.query_jobs(harness.run_id) if j.node_id == "gather-call-t"]
    assert sorted(j.shards["prefix"] for j in inner) == [
        "call-inner-0-1/call-t-",  # miniwdl's ids: the index, then the value's tag
        "call-inner-1-2/call-t-",
    ]


def test_the_outputs_wait_for_every_job_so_a_failing_decl_fails_the_run(harness):
    harness.start('version 1.1\nworkflow w {\n  Map[String, Int] m = {"a": 1}\n  Int c = m["c"]\n}')
    run = harness.run()
    assert run.status == RUN_FAILED and run.error["cause"]["error"] == "OutOfBounds"
    assert run.error["cause"]["node"] == "decl-c"
    assert harness.answer()[0] == "failure"


def test_gpu_tasks_are_submitted_to_the_stacks_gpu_queue(harness):
    import dataclasses

    harness.ports = dataclasses.replace(harness.ports, default_gpu_queue="gpu-queue")
    harness.start("""
version 1.0
workflow w {
  call t as plain
  call t as gpu { input: gpu = true }
  call nvidia
}
task t { input { Boolean gpu = false } command {} runtime { gpu: gpu } }
task nvidia { command {} runtime { acceleratorType: "nvidia-tesla-t4" acceleratorCount: 2 } }
""")
    queues = {
        j.submission.tags[TAG_JOB]: (j.submission.queue, j.submission.resources.gpus)
        for j in harness.open_jobs()
    }
    assert queues == {
        "call-plain": (QUEUE, 0),
        "call-gpu": ("gpu-queue", 1),
        "call-nvidia": ("gpu-queue", 2),
    }


def test_a_wdl_error_is_logged_as_the_runs_failure_without_a_traceback(harness, caplog):
    # the workflow's own fault (miniwdl's EvalError): its message, not the controller's stack
    with caplog.at_level("ERROR"):
        harness.start('version 1.1\nworkflow w {\n  Int x = "a" + "1"\n}')
    assert harness.run().status == RUN_FAILED
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == "the run failed" and record.exc_info is None
    assert "invalid literal" in record.__dict__["error"]["cause"]["message"]


def test_a_controller_error_is_logged_with_its_traceback(harness, monkeypatch, caplog):
    harness.start(CHAIN)
    monkeypatch.setattr(harness.files, "prepare_call", lambda *a, **k: 1 / 0)
    with caplog.at_level("ERROR"):
        harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == "advancing the run failed" and record.exc_info is not None


def test_a_section_may_wait_on_an_outside_call_that_is_still_running(harness):
    harness.start("""
version 1.0
workflow w {
  call t as slow { input: x = 1 }
  scatter (i in [1, 2]) { call t { input: x = i + slow.y } }
  output { Array[Int] ys = t.y }
}
task t { input { Int x } command {} output { Int y = x * 2 } }
""")
    # the scatter expanded while slow runs: its shards wait on it
    shards = [j for j in harness.store.query_jobs(harness.run_id) if j.node_id == "call-t"]
    assert [(j.status, j.pending) for j in shards] == [(WAITING, 1), (WAITING, 1)]
    (group,) = harness.job("call-slow").waiters or []  # one entry for the shards together
    assert group.startswith("@") and harness.work.get(group[1:]).body == {
        "dependency": "call-slow",
        "jobs": sorted(j.job_id for j in shards),
    }
    harness.play()
    assert harness.outputs() == {"w.ys": [6, 8]}


# ---- crashes --------------------------------------------------------------------------------


class LambdaDied(BaseException):
    """Stands in for a Lambda killed mid-invocation (timeout, out of memory)."""


def test_a_redelivered_event_resubmits_after_the_submitter_died(harness, monkeypatch):
    harness.start(CHAIN)
    real_submit = harness.batch.submit

    def dies_once(submission):
        if submission.name.endswith("call-second-try1") and not died:
            died.append(submission.name)
            raise LambdaDied()
        return real_submit(submission)

    died: list[str] = []
    monkeypatch.setattr(harness.batch, "submit", dies_once)
    first = harness.batch_job_of("call-first")
    with pytest.raises(LambdaDied):
        harness.event(first, "SUCCEEDED", 0)
    stuck = harness.job("call-second")
    assert stuck.status == RUNNING and stuck.batch_job_id is None  # no event will ever come
    harness.store.update_job(harness.run_id, "call-second", lease_until=0)  # it ran out
    harness.ended.discard(first.batch_job_id)
    assert harness.event(first, "SUCCEEDED", 0) == "resumed"  # EventBridge retries the event
    assert harness.job("call-second").batch_job_id is not None
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_crash_between_completion_and_dependents_is_finished_by_the_redelivery(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    job = harness.job("call-first")
    decremented = harness.store.complete(job, {"first.y": 6}, expected_attempt=0)
    assert decremented == ["call-second", "outputs"]
    assert harness.job("call-second").status == WAITING  # the invocation died here
    assert harness.event(first, "SUCCEEDED", 0) == "resumed"
    assert harness.job("call-second").status == RUNNING
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_an_exception_in_a_step_fails_the_run_at_that_job(harness, monkeypatch):
    harness.start(CHAIN)

    def broken(*args, **kwargs):
        raise RuntimeError("EFS is on fire")

    monkeypatch.setattr(harness.files, "prepare_call", broken)
    outcome = harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    assert outcome == "failed: RuntimeError"
    run = harness.run()
    assert run.status == RUN_FAILED and "call-second" in run.error["message"]
    assert "EFS is on fire" in run.error["message"]
    assert harness.answer()[0] == "failure"


def test_a_submission_batch_refuses_fails_the_attempt_and_the_run_names_batchs_error(harness):
    harness.start(CHAIN)

    def refused(submission):
        raise PortError("submit: AccessDeniedException: not authorized to perform SubmitJob")

    harness.batch.submit = refused  # the submitter's Batch, outside the controller's steps
    harness.event(harness.batch_job_of("call-first"), "SUCCEEDED", 0)
    run = harness.run()
    assert run.status == RUN_FAILED and "call-second" in run.error["message"]
    assert "AWS Batch refused the job" in run.error["message"]
    assert "AccessDeniedException" in run.error["message"]
    assert harness.answer()[0] == "failure"


def test_a_claimed_job_is_not_evaluated_twice(harness):
    harness.start(CHAIN)
    job = harness.job("call-first")
    assert job.status == RUNNING and job.claimed_by == "decl-x"  # whoever made it ready
    assert harness.store.claim(harness.run_id, "call-second", "someone") is None  # not ready
    assert CLAIMED  # the status between being ready and being evaluated


# ---- real files: task scripts run with bash -------------------------------------------------

FILES = """
version 1.0
workflow files {
  input { String greeting = "hello" }
  call write { input: text = greeting }
  call count { input: f = write.out }
  output { File written = write.out  Int chars = count.n }
}
task write {
  input { String text }
  command <<< echo "~{text} world" > out.txt >>>
  output { File out = "out.txt" }
}
task count {
  input { File f }
  command <<< wc -c < ~{f} >>>
  output { Int n = read_int(stdout()) }
}
"""


def test_task_scripts_run_with_bash_on_real_files(tmp_path):
    harness = Harness(tmp_path)
    harness.start(FILES)
    harness.play(harness.execute)
    outputs = harness.outputs()
    assert outputs["files.chars"] == len("hello world\n")
    written = outputs["files.written"]
    run_dir = str(harness.run().run_dir)
    assert written == run_dir + "/out/written/out.txt"  # miniwdl's out/ link
    assert os.path.realpath(written).startswith(os.path.realpath(run_dir) + "/call-write/work/")
    with open(written) as infile:
        assert infile.read() == "hello world\n"
    inputs = list((tmp_path / "runs").glob("*/call-count/work/_miniwdl_inputs/0/out.txt"))
    assert inputs and inputs[0].is_symlink()


def test_a_task_that_swaps_its_stdout_for_a_link_fails(tmp_path):
    harness = Harness(tmp_path)
    harness.start(
        """
version 1.0
task leak { command <<< rm ../stdout.txt; ln -s /etc/passwd ../stdout.txt >>>
  output { String s = read_string(stdout()) } }
""",
        task="leak",
    )
    harness.play(harness.execute)
    run = harness.run()
    assert run.status == RUN_FAILED and "link or non-file" in run.error["message"]
