"""The paced submitter (controller/submitter.py) on in-memory ports: each queued submission
submitted once, at no more than the rate, through throttling; leases decide who submits."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import pytest
from botocore.exceptions import ClientError

from miniwdl_serverless.adapters import aws_errors
from miniwdl_serverless.adapters.memory import MemoryBatch, MemoryMetrics, MemoryStore, MemoryWork
from miniwdl_serverless.adapters.retrying import Retrying
from miniwdl_serverless.controller.ports import TransientError
from miniwdl_serverless.controller.submitter import SubmitterPorts, submit_queued
from miniwdl_serverless.core.backoff import Backoff
from miniwdl_serverless.core.records import RUN_RUNNING, RUNNING, WAITING, Job, Run
from miniwdl_serverless.core.resources import Resources, TaskSubmission
from miniwdl_serverless.core.work import REFUSED, Pacer, QueuedSubmission, WorkItem, submit_item
from tests.chaos.faults import Clock

RUN = "run-1"
BATCH_LIMIT = 50  # SubmitJob calls a second AWS Batch takes before it throttles


class Throttling:
    """A Batch port that, like AWS Batch, refuses (429) calls beyond ``limit`` a second of
    the clock; counts what it accepted and refused."""

    def __init__(self, batch: MemoryBatch, clock: Clock, limit: int = BATCH_LIMIT):
        self.batch, self.clock, self.limit = batch, clock, limit
        self.accepted: list[float] = []
        self.recent: deque[float] = deque()
        self.refused = 0

    def submit(self, submission: TaskSubmission) -> str:
        now = self.clock()
        while self.recent and self.recent[0] <= now - 1.0 + 1e-9:
            self.recent.popleft()
        if len(self.recent) >= self.limit:
            self.refused += 1
            error = {"Error": {"Code": "TooManyRequestsException"}}
            raise ClientError(error | {"ResponseMetadata": {"HTTPStatusCode": 429}}, "SubmitJob")  # type: ignore[arg-type]
        self.recent.append(now)
        self.accepted.append(now)
        return self.batch.submit(submission)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.batch, name)


def queued(store: MemoryStore, count: int) -> list[WorkItem]:
    """``count`` calls marked running under a lease, each with its queued submission."""
    store.create_run(Run(RUN, status=RUN_RUNNING))
    store.put_new_jobs(
        [Job(RUN, f"call-t-{i}", status=WAITING) for i in range(count)], expires_at=2**31
    )
    items = []
    for i in range(count):
        job_id = f"call-t-{i}"
        store.claim(RUN, job_id, "scatter-x")
        lease = time.time() + 45
        store.mark_running(RUN, job_id, 0, batch_job_name=f"{RUN}-{job_id}-try1", lease_until=lease)
        submission = TaskSubmission(
            f"{RUN}-{job_id}-try1", "queue", "ubuntu:22.04", Resources(), "true"
        )
        items.append(submit_item(QueuedSubmission(submission, RUN, job_id, lease=lease)))
    return items


def ports_on(store: MemoryStore, batch: Any, clock: Clock) -> SubmitterPorts:
    return SubmitterPorts(
        store, batch, MemoryMetrics(), MemoryWork(), sleep=clock.advance, clock=clock
    )


def test_each_queued_submission_is_submitted_once_and_recorded() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    items = queued(store, 3)
    ports = ports_on(store, batch, clock)
    assert submit_queued(items, ports, Pacer(rate=100.0), lambda: 900.0) == []
    assert submit_queued(items, ports, Pacer(rate=100.0), lambda: 900.0) == []  # redelivered
    assert len(batch.jobs) == 3 and ports.outcomes == ["submitted"] * 3 + ["taken"] * 3
    for i in range(3):
        job = store.get_job(RUN, f"call-t-{i}")
        assert job is not None and job.status == RUNNING and job.batch_job_id in batch.jobs
    run = store.get_run(RUN)
    assert run is not None and run.calls_submitted == 3


def test_a_submission_whose_attempt_was_taken_over_submits_nothing() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    (item,) = queued(store, 1)
    job = store.get_job(RUN, "call-t-0")
    assert job is not None and job.lease_until is not None
    assert store.renew_lease(RUN, "call-t-0", 0, job.lease_until, job.lease_until + 900)
    ports = ports_on(store, batch, clock)  # a resubmission took the attempt (a new lease)
    assert submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0) == []
    assert batch.jobs == {} and ports.outcomes == ["taken"]


class CountingStore(MemoryStore):
    """The store, counting the lease and record calls the submitter makes (not those the
    in-memory store makes of itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}
        self.inside = False

    def _count(self, name: str, method: Any, *args: Any) -> Any:
        if self.inside:
            return method(*args)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.inside = True
        try:
            return method(*args)
        finally:
            self.inside = False

    def take_leases(self, *args: Any) -> Any:
        return self._count("take_leases", super().take_leases, *args)

    def record_batch_jobs(self, *args: Any) -> Any:
        return self._count("record_batch_jobs", super().record_batch_jobs, *args)

    def renew_lease(self, *args: Any, **kwargs: Any) -> Any:
        return self._count(
            "renew_lease", lambda *a: super(CountingStore, self).renew_lease(*a, **kwargs), *args
        )

    def record_batch_job(self, *args: Any) -> Any:
        return self._count("record_batch_job", super().record_batch_job, *args)


def test_a_batchs_leases_are_taken_and_its_jobs_recorded_in_one_request_each() -> None:
    """Two writes a call as before (its lease taken before SubmitJob, its Batch job recorded
    after), but one request each for the stream batch: not two a call."""
    store, batch, clock = CountingStore(), MemoryBatch(), Clock(0.0)
    items = queued(store, 5)
    store.calls.clear()
    ports = ports_on(store, batch, clock)
    assert submit_queued(items, ports, Pacer(rate=100.0), lambda: 900.0) == []
    assert store.calls == {"take_leases": 1, "record_batch_jobs": 1}
    assert len(batch.jobs) == 5 and ports.outcomes == ["submitted"] * 5
    recorded = {store.get_job(RUN, f"call-t-{i}").batch_job_id for i in range(5)}  # type: ignore[union-attr]
    assert recorded == set(batch.jobs)


def test_leases_taken_for_calls_not_reached_are_given_back() -> None:
    """Out of time after the first call: the others' leases go back to what their items
    carry, so their redelivery takes them as a first delivery would (no look-up by name)."""
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    items = queued(store, 3)
    ports = ports_on(store, batch, clock)
    budget = iter([900.0, 0.0, 0.0])
    left = submit_queued(items, ports, Pacer(rate=100.0), lambda: next(budget, 0.0))
    assert left == [items[1].key, items[2].key] and len(batch.jobs) == 1
    for item in items[1:]:
        job = store.get_job(RUN, item.body["job_id"])
        assert job is not None and job.lease_until == item.body["lease"]
    assert submit_queued(items[1:], ports, Pacer(rate=100.0), lambda: 900.0) == []
    assert len(batch.jobs) == 3 and ports.outcomes == ["submitted"] * 3


def test_a_duplicate_batch_job_of_an_attempt_already_recorded_is_terminated() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    (item,) = queued(store, 1)
    real = store.renew_lease

    def recorded_meanwhile(*args: Any, **kwargs: Any) -> bool:  # another's job lands first
        taken = real(*args, **kwargs)
        store.record_batch_job(RUN, "call-t-0", 0, "batch-other")
        return taken

    store.renew_lease = recorded_meanwhile  # type: ignore[method-assign]
    ports = ports_on(store, batch, clock)
    submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0)
    (duplicate,) = batch.jobs.values()
    assert ports.outcomes == ["duplicate"] and duplicate.terminated is not None


def test_a_submission_batch_refuses_is_handed_to_the_work_function() -> None:
    store, clock = MemoryStore(), Clock(0.0)
    (item,) = queued(store, 1)

    class Refusing(MemoryBatch):
        def submit(self, submission: TaskSubmission) -> str:
            raise ClientError({"Error": {"Code": "ClientException"}}, "SubmitJob")  # type: ignore[arg-type]

    batch = Retrying(Refusing(), aws_errors.classify)
    ports = ports_on(store, batch, clock)
    assert submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0) == []
    (refused,) = ports.work.queue  # type: ignore[attr-defined]
    assert refused.kind == REFUSED and "ClientException" in refused.body["error"]


def test_a_submitter_that_died_after_taking_the_lease_is_redone_by_its_redelivery() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    (item,) = queued(store, 1)
    real = batch.submit

    def died_after_submitting(submission: TaskSubmission) -> str:
        real(submission)
        raise SystemExit("the Lambda was killed")  # SubmitJob went through, nothing recorded

    batch.submit = died_after_submitting  # type: ignore[method-assign]
    ports = ports_on(store, batch, clock)
    with pytest.raises(SystemExit):
        submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0)
    batch.submit = real  # type: ignore[method-assign]
    assert submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0) == []
    (submitted,) = batch.jobs.values()  # found by its name, adopted: not submitted twice
    assert ports.outcomes == ["adopted"]
    job = store.get_job(RUN, "call-t-0")
    assert job is not None and job.batch_job_id == submitted.batch_job_id


def test_a_submitter_that_died_before_submit_job_submits_on_its_redelivery() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    (item,) = queued(store, 1)
    real = batch.submit
    batch.submit = lambda submission: (_ for _ in ()).throw(SystemExit("killed"))  # type: ignore[method-assign]
    ports = ports_on(store, batch, clock)
    with pytest.raises(SystemExit):
        submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0)
    batch.submit = real  # type: ignore[method-assign]
    assert submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0) == []
    assert len(batch.jobs) == 1 and ports.outcomes == ["submitted"]


def test_a_run_that_ended_gets_nothing_more_and_what_was_submitted_meanwhile_is_stopped() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    items = queued(store, 3)
    real = batch.submit

    def run_fails_meanwhile(submission: TaskSubmission) -> str:
        store.set_run_status(RUN, "failed", [RUN_RUNNING])
        return real(submission)

    batch.submit = run_fails_meanwhile  # type: ignore[method-assign]
    ports = ports_on(store, batch, clock)
    assert submit_queued(items, ports, Pacer(rate=100.0), lambda: 900.0) == []
    assert all(job.terminated for job in batch.jobs.values()) and len(batch.jobs) == 3
    assert submit_queued(queued_again(store, "call-t-9"), ports, Pacer(100.0), lambda: 900.0) == []
    assert len(batch.jobs) == 3 and ports.outcomes[-1] == "run ended"


def queued_again(store: MemoryStore, job_id: str) -> list[WorkItem]:
    """One more call of the run, marked running and queued (the run is as it is)."""
    store.put_new_jobs([Job(RUN, job_id, status=WAITING)], expires_at=2**31)
    store.claim(RUN, job_id, "scatter-x")
    lease = time.time() + 45
    store.mark_running(RUN, job_id, 0, lease_until=lease)
    submission = TaskSubmission(
        f"{RUN}-{job_id}-try1", "queue", "ubuntu:22.04", Resources(), "true"
    )
    return [submit_item(QueuedSubmission(submission, RUN, job_id, lease=lease))]


def test_what_is_left_when_time_runs_out_is_delivered_again() -> None:
    store, batch, clock = MemoryStore(), MemoryBatch(), Clock(0.0)
    items = queued(store, 5)
    remaining = iter([900.0, 900.0, 5.0])
    left = submit_queued(
        items, ports_on(store, batch, clock), Pacer(100.0), lambda: next(remaining)
    )
    assert left == [i.key for i in items[2:]] and len(batch.jobs) == 2


def test_an_uncertain_failure_gives_the_attempt_back_to_the_reconciler() -> None:
    store, clock = MemoryStore(), Clock(0.0)
    (item,) = queued(store, 1)

    class TimingOut(MemoryBatch):
        def submit(self, submission: TaskSubmission) -> str:
            raise TransientError("SubmitJob: read timeout (after 5 tries)")

    ports = ports_on(store, TimingOut(), clock)
    assert submit_queued([item], ports, Pacer(rate=100.0), lambda: 900.0) == [item.key]
    job = store.get_job(RUN, "call-t-0")
    assert job is not None and job.lease_until == 0.0  # the reconciler resubmits, by name first


@pytest.mark.parametrize("rate", [40.0, 48.0])
def test_pacing_keeps_submit_job_under_batchs_limit_and_nothing_is_throttled(rate: float) -> None:
    store, clock = MemoryStore(), Clock(0.0)
    items = queued(store, 400)
    batch = Throttling(MemoryBatch(), clock)
    ports = ports_on(store, batch, clock)
    assert submit_queued(items, ports, Pacer(rate=rate), lambda: 900.0) == []
    assert batch.refused == 0 and len(batch.batch.jobs) == 400
    assert max_per_second(batch.accepted) <= rate


def test_a_rate_over_batchs_limit_is_throttled_retried_and_submits_everything_once() -> None:
    """Submitters whose shares add up to 80/s against Batch's 50/s: SubmitJob is throttled,
    the port's backoff and the stream's redelivery of what is left absorb it, and each call is
    submitted exactly once."""
    store, clock = MemoryStore(), Clock(0.0)
    items = queued(store, 600)
    batch = Throttling(MemoryBatch(), clock)
    backoff = Backoff(attempts=3, base_seconds=0.05, cap_seconds=0.5)
    ports = ports_on(store, Retrying(batch, aws_errors.classify, backoff, clock.advance), clock)
    pacer, rounds = Pacer(rate=80.0), 0
    while items:  # the stream: a batch of 100, and again from the first item left
        rounds += 1
        left = set(submit_queued(items[:100], ports, pacer, lambda: 900.0))
        items = [i for i in items[:100] if i.key in left] + items[100:]
        assert rounds < 200
    assert batch.refused > 0  # the limit was met
    names = [job.submission.name for job in batch.batch.jobs.values()]
    assert len(names) == len(set(names)) == 600  # every call submitted, once
    for i in range(600):
        job = store.get_job(RUN, f"call-t-{i}")
        assert job is not None and job.batch_job_id in batch.batch.jobs


def max_per_second(times: list[float]) -> int:
    window: deque[float] = deque()
    most = 0
    for t in sorted(times):
        window.append(t)
        while window[0] <= t - 1.0 + 1e-9:
            window.popleft()
        most = max(most, len(window))
    return most
