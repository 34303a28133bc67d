"""Calls queued together run as one Batch array job (controller/submitter.py:submit_array):
one SubmitJob for many shards, each child's events completing its own call, a failed child
retried alone, a redelivery finding the array by its name, a failed run stopping the array."""

from __future__ import annotations

from typing import Any

import pytest

from miniwdl_serverless.adapters.memory import SubmittedJob
from miniwdl_serverless.controller.ports import Throttled
from miniwdl_serverless.core.records import RUN_FAILED
from tests.unit.harness import SPOT_RECLAIMED, Harness, Outcome, succeeds


def scatter(width: int, runtime: str = "") -> str:
    return f"""version 1.0
task t {{
  input {{ Int i }}
  command {{ echo ~{{i}} }}
  output {{ Int o = i }}
  runtime {{ {runtime} }}
}}
workflow w {{
  scatter (i in range({width})) {{ call t {{ input: i = i }} }}
  output {{ Array[Int] os = t.o }}
}}
"""


def batched(tmp_path: Any = None, limit: int = 10_000) -> Harness:
    """A harness whose work table's stream hands the submitter its items in batches (as
    the template's BatchSize does), with array jobs on."""
    harness = Harness(tmp_path)
    harness.work.batch = 100
    real = harness.submitter

    def submitter() -> Any:
        ports = real()
        ports.array_limit = limit
        return ports

    harness.submitter = submitter  # type: ignore[method-assign]
    return harness


def start(harness: Harness, source: str) -> None:
    harness.start(source, config={"MINIWDL__SERVERLESS__ARRAY_JOBS": "true"})


def arrays(harness: Harness) -> list[SubmittedJob]:
    return [j for j in harness.batch.jobs.values() if j.size is not None]


def test_a_scatters_shards_are_one_array_job_whose_children_complete_their_calls() -> None:
    harness = batched()
    start(harness, scatter(30))
    (array,) = arrays(harness)
    assert array.size == 30 and len(harness.batch.jobs) == 31  # the parent and its children
    shards = list(harness.store.query_jobs(harness.run_id, prefix="call-t-"))
    children = sorted(str(j.batch_job_id) for j in shards)
    assert children == sorted(f"{array.batch_job_id}:{i}" for i in range(30))
    harness.play()
    assert harness.outputs() == {"w.os": list(range(30))}
    assert harness.run().calls_submitted == 30 and harness.metrics.counts["ArrayJobsSubmitted"] == 1


def test_the_children_run_their_own_calls_on_real_files(tmp_path) -> None:
    harness = batched(tmp_path)
    start(harness, scatter(5))
    (array,) = arrays(harness)
    harness.play(harness.execute)
    assert harness.outputs() == {"w.os": [0, 1, 2, 3, 4]}
    for shard in harness.store.query_jobs(harness.run_id, prefix="call-t-"):
        call_dir = f"{harness.run().run_dir}/{shard.job_id}"
        marker = open(f"{call_dir}/array-index").read().strip()
        assert shard.batch_job_id == f"{array.batch_job_id}:{marker}"  # the child ran its call
        assert open(f"{call_dir}/stdout.txt").read().strip().isdigit()


def test_an_array_parents_own_events_change_nothing() -> None:
    harness = batched()
    start(harness, scatter(3))
    (array,) = arrays(harness)
    assert harness.event(array, "SUCCEEDED", None) == "ignored: array parent"


def test_a_failed_child_is_retried_alone_and_the_run_goes_on() -> None:
    harness = batched()
    start(harness, scatter(4, "maxRetries: 1"))
    (array,) = arrays(harness)

    def child_one_fails_once(job: SubmittedJob) -> Outcome:
        if job.index == 1:
            return ("FAILED", 1, "Essential container in task exited")
        return succeeds(job)

    harness.play(child_one_fails_once)
    assert harness.outputs() == {"w.os": [0, 1, 2, 3]}
    singles = [j for j in harness.batch.jobs.values() if j.size is None and j.index is None]
    (retry,) = singles  # one single job: the retried child's second attempt
    assert retry.submission.name.endswith("-try2")


def test_a_spot_interrupted_child_is_retried_alone_on_the_fallback_queue() -> None:
    harness = batched()
    start(harness, scatter(3, "preemptible: 1"))

    def reclaimed(job: SubmittedJob) -> Outcome:
        if job.index == 0:
            return ("FAILED", None, SPOT_RECLAIMED)
        return succeeds(job)

    harness.play(reclaimed)
    assert harness.outputs() == {"w.os": [0, 1, 2]}
    (retry,) = [j for j in harness.batch.jobs.values() if j.size is None and j.index is None]
    assert retry.submission.queue == "queue-ondemand"


def test_wider_than_the_limit_goes_in_several_arrays() -> None:
    harness = batched(limit=10)
    start(harness, scatter(25))
    assert sorted(a.size or 0 for a in arrays(harness)) == [5, 10, 10]
    harness.play()
    assert harness.outputs() == {"w.os": list(range(25))}


def test_a_throttled_array_is_submitted_once_when_its_items_come_again(monkeypatch) -> None:
    harness = batched()
    real = harness.batch.submit
    tries: list[int] = []

    def throttled_once(submission: Any) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise Throttled("SubmitJob: TooManyRequestsException (after 5 tries)")
        return real(submission)

    monkeypatch.setattr(harness.batch, "submit", throttled_once)
    with pytest.raises(Exception):  # noqa: B017 - the stream's batch failed: delivered again
        start(harness, scatter(6))
    harness.play()
    assert harness.outputs() == {"w.os": list(range(6))}
    assert len(arrays(harness)) == 1


def test_a_submitter_that_died_after_submitting_the_array_adopts_it_on_redelivery(
    monkeypatch,
) -> None:
    harness = batched()
    real = harness.batch.submit
    died: list[str] = []

    def dies_after(submission: Any) -> str:
        batch_job_id = real(submission)
        if not died:
            died.append(batch_job_id)
            raise SystemExit("the submitter was killed")  # nothing recorded
        return batch_job_id

    monkeypatch.setattr(harness.batch, "submit", dies_after)
    with pytest.raises(SystemExit):
        start(harness, scatter(6))
    harness.play()  # the stream delivers the batch again
    assert harness.outputs() == {"w.os": list(range(6))}
    (array,) = arrays(harness)  # found by its name, adopted: not submitted twice
    assert array.batch_job_id == died[0]


def test_a_failed_run_stops_the_array() -> None:
    harness = batched()
    start(harness, scatter(4))
    (array,) = arrays(harness)
    child = harness.batch.jobs[f"{array.batch_job_id}:2"]
    harness.event(child, "RUNNING")
    harness.event(child, "FAILED", 1, "Essential container in task exited")
    assert harness.run().status == RUN_FAILED
    assert array.terminated is not None
    assert all(c.terminated for c in harness.batch.children(array.batch_job_id))


def test_without_array_jobs_each_call_is_its_own_job() -> None:
    harness = batched()
    harness.start(scatter(4), config={"MINIWDL__SERVERLESS__ARRAY_JOBS": "false"})
    assert arrays(harness) == [] and len(harness.batch.jobs) == 4
