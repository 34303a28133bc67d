"""No NAT gateway: the functions inside the VPC make no Batch or Step Functions call. What they
would ask is a work item the submitter (outside the VPC) carries out, once in effect however
often the stream delivers it; a resubmission is looked up by name there before anything is
prepared, so a job that is already running is adopted, never prepared over."""

from __future__ import annotations

import time
from typing import Any

import pytest

from miniwdl_serverless.adapters.handed_on import HandedOnBatch, HandedOnOrchestrator, OutsideOnly
from miniwdl_serverless.adapters.memory import MemoryWork
from miniwdl_serverless.adapters.remotes import UriRemotes
from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.controller.submitter import carry_out, handle_items
from miniwdl_serverless.core import localizing
from miniwdl_serverless.core.ids import batch_job_name
from miniwdl_serverless.core.records import RUN_FAILED, RUN_SUCCEEDED
from miniwdl_serverless.core.resources import Resources, TaskSubmission
from miniwdl_serverless.core.work import ANSWER, LOOKUP, RESUBMIT, TERMINATE, WorkItem

from .harness import Harness
from .test_controller import CHAIN
from .test_recovery import PAIR


@pytest.fixture
def harness() -> Harness:
    return Harness()


def of_kind(harness: Harness, kind: str) -> list[WorkItem]:
    return [item for item in harness.work.items.values() if item.kind == kind]


def test_inside_the_vpc_batch_and_step_functions_are_work_items():
    work = MemoryWork()
    batch, orchestrator = HandedOnBatch(work), HandedOnOrchestrator(work)
    batch.terminate("batch-1", "why")
    assert orchestrator.send_failure("token-1", "RunFailed", "{}") is True
    assert [(i.kind, i.body) for i in work.items.values()] == [
        (TERMINATE, {"batch_job_id": "batch-1", "reason": "why"}),
        (ANSWER, {"token": "token-1", "error": "RunFailed", "cause": "{}"}),
    ]
    submission = TaskSubmission("n", "q", "image", Resources(1, 1024), "echo", {}, {})
    for call in (
        lambda: batch.find("n", "q"),
        lambda: batch.submit(submission),
        lambda: batch.describe(["batch-1"]),
    ):
        with pytest.raises(OutsideOnly):
            call()


def test_a_failed_run_terminates_its_other_jobs_through_the_submitter_once(harness):
    harness.start(PAIR)
    a, b = harness.batch_job_of("call-a"), harness.batch_job_of("call-b")
    harness.event(a, "FAILED", 1)  # maxRetries 0: the run fails fast
    assert harness.run().status == RUN_FAILED
    (terminate,) = [
        i for i in of_kind(harness, TERMINATE) if i.body["batch_job_id"] == b.batch_job_id
    ]
    assert b.terminated == terminate.body["reason"]
    calls: list[str] = []
    real = harness.batch.terminate
    harness.batch.terminate = lambda i, r: (calls.append(i), real(i, "again"))[1]  # type: ignore[method-assign]
    assert carry_out(terminate, harness.submitter())  # the stream delivers it again
    assert calls == [b.batch_job_id] and b.terminated == terminate.body["reason"]  # one effect


def test_the_answer_is_sent_by_the_submitter_and_a_refused_send_is_delivered_again(harness):
    harness.start(CHAIN)
    harness.play()
    assert harness.run().status == RUN_SUCCEEDED and harness.run().answer_due is None
    (answer,) = of_kind(harness, ANSWER)
    assert answer.body == {"token": harness.token, "output": harness.answer()[1]}
    sent = dict(harness.orchestrator.answers)
    ports = harness.submitter()
    assert carry_out(answer, ports) and harness.orchestrator.answers == sent  # the first counts
    refusing: Any = harness.orchestrator
    refusing.send_success = lambda token, output: False  # throttled: Step Functions not told
    assert handle_items([answer], ports, harness.pacer, lambda: 900.0) == [answer.key]


def lose_the_record(harness: Harness, job_id: str) -> None:
    """The submitter died after SubmitJob, before recording the Batch job (its lease ran out)."""
    lease_over = time.time() - 1
    harness.store.update_job(harness.run_id, job_id, batch_job_id=None, lease_until=lease_over)


def test_a_resubmission_adopts_the_running_job_it_finds_by_name_and_prepares_nothing(
    harness, monkeypatch
):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    harness.event(first, "RUNNING")
    lose_the_record(harness, "call-first")
    prepared: list[str] = []
    real = harness.files.prepare_call
    monkeypatch.setattr(
        harness.files, "prepare_call", lambda *a, **k: (prepared.append(a[0]), real(*a, **k))[1]
    )
    jobs = len(harness.batch.jobs)
    report = harness.reconcile()  # the lease is long past: resubmit
    assert [str(a) for a in report.done] == [
        "call-first: submission lost: marked running, no Batch job: resubmitted"
    ]
    (lookup,) = of_kind(harness, LOOKUP)
    assert lookup.body["name"] == batch_job_name(harness.run_id, "call-first", 0)
    assert harness.job("call-first").batch_job_id == first.batch_job_id  # adopted
    assert len(harness.batch.jobs) == jobs and prepared == []  # nothing submitted or written
    assert of_kind(harness, RESUBMIT) == [
        i for i in of_kind(harness, RESUBMIT) if i.body["held"] is None
    ]
    counted = harness.run().calls_submitted
    assert carry_out(lookup, harness.submitter())  # delivered again: nothing more
    assert harness.run().calls_submitted == counted
    harness.event(first, "SUCCEEDED", 0)
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_a_resubmission_nothing_of_its_name_was_found_for_is_prepared_and_submitted(harness):
    harness.start(CHAIN)
    first = harness.batch_job_of("call-first")
    lose_the_record(harness, "call-first")
    del harness.batch.jobs[first.batch_job_id]  # SubmitJob never went through
    harness.reconcile()
    (again,) = [i for i in of_kind(harness, RESUBMIT) if i.body["held"] is not None]
    resubmitted = harness.job("call-first").batch_job_id
    assert resubmitted is not None and resubmitted != first.batch_job_id
    assert carry_out(of_kind(harness, LOOKUP)[0], harness.submitter())  # delivered again
    assert harness.job("call-first").batch_job_id == resubmitted
    assert (
        len([j for j in harness.batch.jobs.values() if j.submission.name == first.submission.name])
        == 1
    )
    harness.play()
    assert harness.outputs() == {"chain.result": 12}


def test_without_internet_http_uris_are_not_probed_and_go_to_a_download_job():
    remote = UriRemotes(internet=False).probe("https://example.org/a.txt", False, False)
    assert not remote.reachable
    assert not localizing.in_lambda(remote, localizing.Settings("/efs/cache", True))
    assert localizing.Remote.from_json(remote.to_json()) == remote
    with pytest.raises(ValueError, match="FunctionsInternet"):
        UriSources(internet=False).fetch("https://example.org/w.wdl", 100)


def test_a_download_job_s_lost_end_is_described_by_the_submitter_and_replayed(harness):
    """A reconciling resubmission inside the VPC cannot DescribeJobs: it asks the submitter,
    which hands each ended job back as a replay (and nothing for one still running)."""
    from miniwdl_serverless.core.work import REPLAY, describe_item, graph_work

    done = harness.batch.submit(
        TaskSubmission("dl-1", "q", "image", Resources(1, 1024), "true", {}, {})
    )
    going = harness.batch.submit(
        TaskSubmission("dl-2", "q", "image", Resources(1, 1024), "true", {}, {})
    )
    harness.lose(harness.batch.jobs[done], "SUCCEEDED", 0)
    item = describe_item([done, going], now=1000.0)
    harness.work.deliver = None  # look at what it hands on, without delivering it
    assert carry_out(item, harness.submitter())
    (replay,) = of_kind(harness, REPLAY)
    assert graph_work(replay).detail.batch_job_id == done  # type: ignore[union-attr]
    assert carry_out(item, harness.submitter())  # delivered again: the same replay, once
    assert of_kind(harness, REPLAY) == [replay]


def test_an_unreadable_replay_is_skipped_not_retried():
    from miniwdl_serverless.core.work import REPLAY, unreadable

    assert unreadable(WorkItem(REPLAY, "r", "replay#x", {"detail": {"jobId": "j"}}))
