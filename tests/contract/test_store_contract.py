"""One contract for the RunStore port, run on the in-memory store and on the DynamoDB store
(moto, tables from template.yaml), so the two cannot drift: transactions, conditional
claims, idempotence, waiters, leases, give-backs, owed answers and concurrent completions."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import pytest

from miniwdl_serverless.adapters.aws_errors import classify
from miniwdl_serverless.adapters.dynamodb import DynamoStore
from miniwdl_serverless.adapters.dynamodb_items import CacheItem, WorkTableItem
from miniwdl_serverless.adapters.memory import MemoryStore
from miniwdl_serverless.adapters.retrying import Retrying
from miniwdl_serverless.controller.ports import LeaseTake, MissingJob, RunStore, Started
from miniwdl_serverless.controller.progress import ready_dependents
from miniwdl_serverless.core.backoff import Backoff
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    FAILED,
    RUN_FAILED,
    RUN_PLANNING,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
    WAITING,
    Job,
    Run,
    tally_of,
)
from miniwdl_serverless.core.store_rules import TALLY_BUCKET
from tests.contract.conflicts import Conflicting

EXPIRES = int(time.time()) + 30 * 24 * 3600  # what the controller gives (store_rules.job_expiry)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request) -> RunStore:
    if request.param == "memory":
        return MemoryStore()
    tables = request.getfixturevalue("embedded").moto_tables()  # template.yaml's, in moto
    return DynamoStore(tables["runs"], tables["jobs"])


@pytest.fixture
def run_id() -> str:
    return "test-" + uuid.uuid4().hex[:10]


def make(store: RunStore, run_id: str, job_id: str, **fields) -> Job:
    created = store.put_new_jobs(
        [Job(run_id, job_id, node_id=job_id, **fields)], expires_at=EXPIRES
    )
    assert created == {job_id}
    job = store.get_job(run_id, job_id)
    assert job is not None
    return job


def test_tables_match_template(embedded):
    tables = embedded.moto_tables()
    store = DynamoStore(tables["runs"], tables["jobs"])
    models = {
        "RunsTable": store.runs,
        "JobsTable": store.jobs,
        "CacheTable": CacheItem,
        "WorkTable": WorkTableItem,
    }
    for table in embedded.project.tables():
        keys = [k["AttributeName"] for k in table.key_schema]
        model = models[table.logical_id]
        names = [model._hash_key_attribute().attr_name]
        if model._range_key_attribute() is not None:
            names.append(model._range_key_attribute().attr_name)
        assert names == keys


def test_run_is_created_once_and_moves_only_from_expected_states(store, run_id):
    assert store.get_run(run_id) is None
    assert store.create_run(
        Run(run_id, workflow_name="w", options={"a": [1]}, run_dir_created=True)
    )
    assert not store.create_run(Run(run_id, workflow_name="other"))
    run = store.get_run(run_id)
    assert run is not None and run.workflow_name == "w" and run.status == RUN_PLANNING
    assert run.options == {"a": [1]} and run.created_at
    assert run.run_dir_created is True  # what delete_after may delete
    assert not store.set_run_status(run_id, RUN_SUCCEEDED, [RUN_RUNNING])
    assert store.set_run_status(run_id, RUN_RUNNING, [RUN_PLANNING])
    assert store.set_run_status(run_id, RUN_FAILED, [RUN_RUNNING], error={"error": "X"})
    ended = store.get_run(run_id)
    assert ended is not None and ended.status == RUN_FAILED and ended.error == {"error": "X"}
    assert ended.finished_at and ended.expires_at and ended.expires_at > time.time()
    assert not store.set_run_status(run_id, RUN_SUCCEEDED, [RUN_RUNNING])


def test_counters_add_up(store, run_id):
    store.create_run(Run(run_id))
    store.count(run_id, jobs_total=3)
    store.count(run_id, jobs_total=2, jobs_done=1)
    run = store.get_run(run_id)
    assert run is not None and (run.jobs_total, run.jobs_done) == (5, 1)
    with pytest.raises(TypeError):
        store.count(run_id, not_a_counter=1)


def test_put_run_replaces_the_record(store, run_id):
    store.put_run(Run(run_id, status=RUN_FAILED, error={"error": "InputError"}))
    run = store.get_run(run_id)
    assert run is not None and run.status == RUN_FAILED and run.error == {"error": "InputError"}


def test_completion_decrements_dependents_once(store, run_id):
    make(store, run_id, "gather", pending=2)
    shard = make(store, run_id, "shard-0", dependents=["gather"], status=RUNNING)
    assert store.complete(shard, {"x": 1}) == ["gather"]
    assert store.complete(shard, {"x": 1}) is None  # a repeated event changes nothing
    again = store.get_job(run_id, "shard-0")
    assert again is not None and store.complete(again, {"x": 2}) is None
    assert store.get_job(run_id, "gather").pending == 1  # type: ignore[union-attr]
    done = store.get_job(run_id, "shard-0")
    assert done is not None and done.outputs == {"x": 1} and done.status == DONE
    assert done.finished_at


def test_completion_is_atomic(store, run_id):
    shard = make(store, run_id, "shard-0", dependents=["missing-dependent"], status=RUNNING)
    with pytest.raises(MissingJob):
        store.complete(shard, {"x": 1})  # the dependent must exist: nothing changes
    assert store.get_job(run_id, "shard-0").status == RUNNING  # type: ignore[union-attr]


def test_completion_with_more_dependents_than_one_transaction_holds(store, run_id):
    dependents = [f"d-{i:03d}" for i in range(250)]
    store.put_new_jobs(
        [Job(run_id, d, node_id=d, pending=1) for d in dependents], expires_at=EXPIRES
    )
    job = make(store, run_id, "decl", dependents=dependents, status=CLAIMED)
    assert store.complete(job, {}) == dependents
    assert {j.pending for j in store.get_jobs(run_id, dependents).values()} == {0}
    assert store.get_job(run_id, "decl").status == DONE  # type: ignore[union-attr]


def test_stale_attempt_is_rejected(store, run_id):
    job = make(store, run_id, "call", status=RUNNING, attempt=1)
    assert store.complete(job, {}, expected_attempt=0) is None
    assert store.complete(job, {}, expected_attempt=1) == []


def test_claim_is_exclusive_and_resumable(store, run_id):
    make(store, run_id, "j")
    claimed = store.claim(run_id, "j", "a")
    assert claimed is not None and claimed.status == CLAIMED and claimed.claimed_by == "a"
    assert store.claim(run_id, "j", "b") is None
    assert store.claim(run_id, "j", "a") is not None  # the same claimant resumes its work
    make(store, run_id, "k", pending=1)
    assert store.claim(run_id, "k", "a") is None  # not ready
    assert store.claim(run_id, "no-such-job", "a") is None


def test_submission_recorded_once(store, run_id):
    make(store, run_id, "call", status=CLAIMED)
    assert store.mark_running(run_id, "call", 0, batch_job_id="b1") is not None
    assert store.mark_running(run_id, "call", 0, batch_job_id="b2") is None
    retry = store.mark_running(run_id, "call", 1, batch_job_id="b3")  # the retry
    assert retry is not None and retry.batch_job_id == "b3" and retry.attempt == 1


def test_submission_recorded_before_the_batch_job_id(store, run_id):
    make(store, run_id, "call", status=CLAIMED)
    lease = time.time() + 45
    assert store.mark_running(run_id, "call", 0, batch_job_name="n0", lease_until=lease)
    # a duplicate invocation does not submit the same attempt again while the lease holds...
    assert store.mark_running(run_id, "call", 0, resubmit=True, batch_job_name="n0") is None
    # ...only once it ran out without a Batch job id (its submitter may have died)
    store.update_job(run_id, "call", lease_until=time.time() - 1)
    again = store.mark_running(run_id, "call", 0, resubmit=True, lease_until=time.time() + 45)
    assert again is not None
    assert store.record_batch_job(run_id, "call", 0, "b1")
    assert not store.record_batch_job(run_id, "call", 0, "b2")  # first one wins
    assert not store.record_batch_job(run_id, "call", 1, "b3")  # not that attempt
    assert store.get_job(run_id, "call").batch_job_id == "b1"  # type: ignore[union-attr]
    store.update_job(run_id, "call", lease_until=0)
    assert store.mark_running(run_id, "call", 0, resubmit=True) is None  # id known
    # an attempt marked without a lease (written before leases had an end) has none
    make(store, run_id, "old", status=RUNNING, submitted_at=time.time())
    assert store.mark_running(run_id, "old", 0, resubmit=True) is not None


def test_a_start_is_noted_once_and_only_for_the_attempts_batch_job(store, run_id):
    """RUNNING events are noted with no read: the write's condition is the whole check."""
    make(store, run_id, "call", status=CLAIMED)
    store.mark_running(run_id, "call", 0, batch_job_name="n0", batch_job_id=None)
    other_attempt = Started(1, "n0", "b1", "stream", 1.0)
    other_name = Started(0, "n1", "b1", "stream", 1.0)
    assert store.note_started(run_id, "call", other_attempt) is None
    assert store.note_started(run_id, "call", other_name) is None
    started = store.note_started(run_id, "call", Started(0, "n0", "b1", "stream", 5.0))
    assert started is not None and started.started_at == 5.0 and started.log_stream == "stream"
    assert store.note_started(run_id, "call", Started(0, "n0", "b1", "later", 6.0)) is None
    assert store.get_job(run_id, "call").started_at == 5.0  # type: ignore[union-attr]
    # once the Batch job is recorded, another job of the same name is not this attempt's
    make(store, run_id, "recorded", status=CLAIMED)
    store.mark_running(run_id, "recorded", 0, batch_job_name="m0")
    assert store.record_batch_job(run_id, "recorded", 0, "b7")
    assert store.note_started(run_id, "recorded", Started(0, "m0", "b8", "s", 1.0)) is None
    assert store.note_started(run_id, "recorded", Started(0, "m0", "b7", "s", 1.0)) is not None
    # nor a job that is not running (done, completing) or does not exist
    make(store, run_id, "done", status=DONE, attempt=0, batch_job_name="d0")
    assert store.note_started(run_id, "done", Started(0, "d0", "b9", "s", 1.0)) is None
    assert store.note_started(run_id, "no-such-job", Started(0, "d0", "b9", "s", 1.0)) is None


def test_leases_are_taken_and_batch_jobs_recorded_together_each_by_its_own_condition(store, run_id):
    """A stream batch's takes (and records) in one request: each job's condition decides it
    alone, so one that fails leaves the others taken."""
    held = time.time() + 5
    for name in ("a", "b", "c"):
        make(store, run_id, name, status=CLAIMED)
        store.mark_running(run_id, name, 0, batch_job_name=name, lease_until=held)
    takes = [
        LeaseTake("a", 0, held, held + 40, "item-a", {"queue": "q"}),
        LeaseTake("b", 0, held - 1, held + 40, "item-b"),  # not the lease held
        LeaseTake("c", 0, held, held + 40, "item-c"),
    ]
    assert store.take_leases(run_id, takes) == {"a", "c"}
    a, b = store.get_job(run_id, "a"), store.get_job(run_id, "b")
    assert a is not None and a.lease_until == held + 40 and a.lease_holder == "item-a"
    assert a.queue == "q"
    assert b is not None and b.lease_until == held and b.lease_holder is None
    assert store.take_leases(run_id, takes[:1]) == set()  # taken already: held changed
    assert store.record_batch_job(run_id, "c", 0, "bc")
    records = [("a", 0, "ba"), ("b", 1, "bb"), ("c", 0, "bc2")]  # b: not its attempt
    assert store.record_batch_jobs(run_id, records) == {"a"}
    assert store.get_job(run_id, "c").batch_job_id == "bc"  # type: ignore[union-attr]
    assert store.record_batch_jobs(run_id, []) == set()


def test_only_the_holder_renews_the_submit_lease(store, run_id):
    make(store, run_id, "call", status=CLAIMED)
    held = time.time() + 5
    assert store.mark_running(run_id, "call", 0, lease_until=held)
    renewed = time.time() + 45
    assert store.renew_lease(run_id, "call", 0, held, renewed)
    assert store.get_job(run_id, "call").lease_until == renewed  # type: ignore[union-attr]
    assert not store.renew_lease(run_id, "call", 0, held, renewed + 1)  # not the one held now
    assert not store.renew_lease(run_id, "call", 1, renewed, renewed + 1)  # another attempt
    # a resubmission took over once it ran out: the old holder has lost it
    store.update_job(run_id, "call", lease_until=time.time() - 1)
    expired = store.get_job(run_id, "call").lease_until  # type: ignore[union-attr]
    taken = time.time() + 45
    assert store.mark_running(run_id, "call", 0, resubmit=True, lease_until=taken)
    assert not store.renew_lease(run_id, "call", 0, expired, taken + 1)
    assert store.record_batch_job(run_id, "call", 0, "b1")
    assert not store.renew_lease(run_id, "call", 0, taken, taken + 1)  # submitted: no lease
    assert not store.renew_lease(run_id, "nope", 0, taken, taken + 1)


def test_the_submitters_take_writes_what_preparing_computed(store, run_id):
    """The prepared state travels in the submission and is written with the lease's take, in
    one conditional write: not by a take that lost."""
    make(store, run_id, "call", status=CLAIMED)
    held = time.time() + 45
    assert store.mark_running(run_id, "call", 0, lease_until=held)
    prepared = {"task_state": {"k": [1, "two"]}, "queue": "q", "runtime": {"cpu": 2}}
    lost = {"task_state": {"k": "lost"}, "queue": "other"}
    assert not store.renew_lease(run_id, "call", 0, held + 1, held + 2, "item", fields=lost)
    assert store.renew_lease(run_id, "call", 0, held, held + 5, holder="item", fields=prepared)
    job = store.get_job(run_id, "call")
    assert job is not None
    found = (job.task_state, job.queue, job.runtime, job.lease_holder, job.lease_until)
    assert found == ({"k": [1, "two"]}, "q", {"cpu": 2}, "item", held + 5)


def test_a_run_and_its_job_are_read_together(store, run_id):
    store.create_run(Run(run_id, workflow_name="w"))
    make(store, run_id, "call", status=CLAIMED, claimed_by="x")
    run, job = store.get_run_and_job(run_id, "call")
    assert run is not None and run.workflow_name == "w"
    assert job == store.get_job(run_id, "call")
    assert store.get_run_and_job(run_id, "nope") == (store.get_run(run_id), None)
    assert store.get_run_and_job("no-such-run", "call") == (None, None)


def test_an_outside_dependency_is_given_back_once(store, run_id):
    make(store, run_id, "j", pending=3, awaiting=["out-b", "out-a"])
    assert store.get_job(run_id, "j").awaiting == ["out-a", "out-b"]  # type: ignore[union-attr]
    released = store.stop_awaiting(run_id, "j", "out-a")
    assert released is not None and released.pending == 2 and released.awaiting == ["out-b"]
    assert store.stop_awaiting(run_id, "j", "out-a") is None  # a redelivery: not again
    assert store.stop_awaiting(run_id, "j", "inside") is None  # never counted as outside
    last = store.stop_awaiting(run_id, "j", "out-b")
    assert last is not None and last.pending == 1 and last.awaiting is None
    assert store.stop_awaiting(run_id, "j", "out-b") is None
    assert store.get_job(run_id, "j").pending == 1  # type: ignore[union-attr]
    assert store.stop_awaiting(run_id, "no-such-job", "out-a") is None
    make(store, run_id, "k", pending=1)
    assert store.stop_awaiting(run_id, "k", "out-a") is None


def test_an_owed_answer_is_kept_until_marked_sent(store, run_id):
    store.create_run(Run(run_id))
    assert store.set_run_status(run_id, RUN_FAILED, [RUN_PLANNING], answer_due={"error": "X"})
    assert store.get_run(run_id).answer_due == {"error": "X"}  # type: ignore[union-attr]
    store.mark_answered(run_id)
    store.mark_answered(run_id)  # idempotent
    run = store.get_run(run_id)
    assert run is not None and run.answer_due is None and run.status == RUN_FAILED
    store.mark_answered("no-such-run")
    assert store.get_run("no-such-run") is None  # not created by it


def test_update(store, run_id):
    make(store, run_id, "j", pending=2)
    updated = store.update_job(run_id, "j", queue="q", runtime={"cpu": 2}, log_stream=None)
    assert updated.queue == "q" and updated.runtime == {"cpu": 2} and updated.log_stream is None
    with pytest.raises(MissingJob):
        store.update_job(run_id, "nope", queue="q")
    with pytest.raises(TypeError):
        store.update_job(run_id, "j", not_a_field=1)


def test_fail_job_only_while_open(store, run_id):
    make(store, run_id, "w")
    assert not store.fail_job(run_id, "w", {"error": "X"})  # not claimed or running
    make(store, run_id, "r", status=RUNNING)
    assert store.fail_job(run_id, "r", {"error": "X"})
    failed = store.get_job(run_id, "r")
    assert failed is not None and failed.status == FAILED and failed.error == {"error": "X"}
    assert not store.fail_job(run_id, "r", {"error": "Y"})


def test_query_by_status(store, run_id):
    make(store, run_id, "a", status=RUNNING)
    make(store, run_id, "b")
    make(store, run_id, "c", status=RUNNING)
    store.register_waiter(run_id, "later", "a", expires_at=EXPIRES)  # a stub is not a job
    assert sorted(j.job_id for j in store.query_jobs(run_id)) == ["a", "b", "c"]
    assert sorted(j.job_id for j in store.query_jobs(run_id, [RUNNING])) == ["a", "c"]
    assert store.get_job(run_id, "later") is None
    assert set(store.get_jobs(run_id, ["a", "later", "zzz"])) == {"a"}


def test_query_by_id_prefix_reads_a_range_of_the_partition(store, run_id):
    shards = {"of": "scatter-s", "node": "call-t", "prefix": "call-t-", "count": 2}
    make(store, run_id, "gather-call-t", shards=shards, pending=2)
    for job_id in ("call-t-1", "call-t-0", "call-tt-0", "call-t-0/call-u", "decl-call-t-0"):
        make(store, run_id, job_id)
    store.register_waiter(run_id, "call-t-2", "x", expires_at=EXPIRES)  # a stub is not a job
    found = [j.job_id for j in store.query_jobs(run_id, prefix="call-t-")]
    assert found == ["call-t-0", "call-t-0/call-u", "call-t-1"]  # in id order
    gather = store.get_job(run_id, "gather-call-t")
    assert gather is not None and gather.shards == shards and gather.deps == []


def test_readiness_reads(store, run_id):
    make(store, run_id, "a", pending=0, dependents=["x"], outputs={"big": "value"})
    (job,) = store.get_jobs(run_id, ["a"], readiness_only=True).values()
    assert (job.job_id, job.status, job.pending, job.node_id) == ("a", WAITING, 0, "a")
    make(store, run_id, "b", status=RUNNING, claimed_by="a", batch_job_id="b-1")
    (job,) = store.get_jobs(run_id, ["b"], readiness_only=True).values()
    assert (job.status, job.claimed_by, job.batch_job_id) == (RUNNING, "a", "b-1")


def test_creation_is_idempotent_and_keeps_registered_waiters(store, run_id):
    assert store.register_waiter(run_id, "later", "shard-0", expires_at=EXPIRES)  # before "later"
    later = Job(run_id, "later", node_id="later", pending=0)
    assert store.put_new_jobs([later], expires_at=EXPIRES) == {"later"}
    assert store.put_new_jobs([Job(run_id, "later", node_id="changed")], expires_at=1) == set()
    stored = store.get_job(run_id, "later")
    assert stored is not None and stored.waiters == ["shard-0"] and stored.node_id == "later"
    assert store.register_waiter(run_id, "later", "shard-0", expires_at=EXPIRES)  # idempotent
    assert store.get_job(run_id, "later").waiters == ["shard-0"]  # type: ignore[union-attr]


def test_creation_in_chunks_reports_only_what_it_created(store, run_id):
    make(store, run_id, "j-050")
    jobs = [Job(run_id, f"j-{i:03d}", node_id="n") for i in range(150)]
    created = store.put_new_jobs(jobs, expires_at=EXPIRES)
    assert len(created) == 149 and "j-050" not in created


def test_waiter_registered_during_completion_is_not_missed(store, run_id):
    make(store, run_id, "shard-0", pending=1)
    make(store, run_id, "shard-1", pending=1)
    make(store, run_id, "slow", status=RUNNING)
    assert store.register_waiter(run_id, "slow", "shard-0", expires_at=EXPIRES)
    stale = store.get_job(run_id, "slow")
    assert stale is not None
    assert store.register_waiter(run_id, "slow", "shard-1", expires_at=EXPIRES)  # after the read
    assert sorted(store.complete(stale, {}) or []) == ["shard-0", "shard-1"]
    assert not store.register_waiter(run_id, "slow", "shard-2", expires_at=EXPIRES)  # done
    pending = {j.pending for j in store.get_jobs(run_id, ["shard-0", "shard-1"]).values()}
    assert pending == {0}


@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_shard_completions_claim_the_gather_exactly_once(store, run_id, attempt):
    width = 2
    make(store, run_id, "gather", pending=width)
    shards = [
        make(store, run_id, f"shard-{i}", dependents=["gather"], status=RUNNING)
        for i in range(width)
    ]
    barrier = threading.Barrier(width)
    claims: list[str] = []
    errors: list[BaseException] = []

    def finish(shard: Job) -> None:
        try:
            barrier.wait()
            targets = store.complete(shard, {"i": shard.job_id})
            for job in store.get_jobs(run_id, targets or []).values():
                if job.pending <= 0 and store.claim(run_id, job.job_id, shard.job_id):
                    claims.append(shard.job_id)
        except BaseException as exn:  # noqa: BLE001 - surfaced below
            errors.append(exn)

    threads = [threading.Thread(target=finish, args=(s,)) for s in shards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(claims) == 1
    gather = store.get_job(run_id, "gather")
    assert gather is not None and gather.pending == 0 and gather.status == CLAIMED
    assert gather.claimed_by == claims[0]


def test_a_completion_stopped_between_steps_is_continued_by_whoever_comes_next(store, run_id):
    """A completion with more targets than one transaction holds commits in steps; if it
    stopped after the first (a crashed invocation, or a retry of one whose response was
    lost), the next caller — even one holding the job as read before — finishes it."""
    dependents = [f"d-{i:03d}" for i in range(250)]
    # the first step decremented the first 99
    jobs = [Job(run_id, d, node_id=d, pending=0 if i < 99 else 1) for i, d in enumerate(dependents)]
    store.put_new_jobs(jobs, expires_at=EXPIRES)
    stale = make(store, run_id, "decl", dependents=dependents, status=CLAIMED)
    store.update_job(run_id, "decl", status="completing-1", outputs={"x": 1})
    assert store.complete(stale, {"x": 1}) == dependents
    assert {j.pending for j in store.get_jobs(run_id, dependents).values()} == {0}
    done = store.get_job(run_id, "decl")
    assert done is not None and done.status == DONE and done.outputs == {"x": 1}
    assert store.complete(stale, {"x": 1}) is None  # and only once


def test_defect_07_job_items_expire_with_their_run(store, run_id):
    """The jobs table's TTL attribute is set on every job item when it is created (so ending a
    run of 100,000 jobs writes none of them) and no later write drops it."""
    dependents = [f"d-{i:03d}" for i in range(120)]  # more than one transaction holds
    created = store.put_new_jobs(
        [Job(run_id, d, node_id=d, pending=1) for d in dependents], expires_at=EXPIRES
    )
    assert created == set(dependents)
    assert {j.expires_at for j in store.get_jobs(run_id, dependents).values()} == {EXPIRES}
    call = make(store, run_id, "call", dependents=dependents)
    assert call.expires_at == EXPIRES
    store.claim(run_id, "call", "start")
    store.mark_running(run_id, "call", 0, batch_job_name="n", submitted_at=time.time())
    store.record_batch_job(run_id, "call", 0, "b1")
    store.update_job(run_id, "call", queue="q")
    running = store.get_job(run_id, "call")
    assert running is not None and store.complete(running, {"x": 1}) == dependents
    assert store.get_job(run_id, "call").expires_at == EXPIRES  # type: ignore[union-attr]
    assert store.get_job(run_id, "d-000").expires_at == EXPIRES  # type: ignore[union-attr]
    failing = make(store, run_id, "failing", status=RUNNING)
    assert failing.expires_at == EXPIRES and store.fail_job(run_id, "failing", {"error": "X"})
    assert store.get_job(run_id, "failing").expires_at == EXPIRES  # type: ignore[union-attr]
    assert all(j.expires_at == EXPIRES for j in store.query_jobs(run_id))


def test_defect_07_a_job_created_over_registered_waiters_expires_too(store, run_id):
    assert store.register_waiter(run_id, "gather", "outputs", expires_at=EXPIRES)
    assert store.put_new_jobs([Job(run_id, "gather", node_id="g")], expires_at=EXPIRES + 5)
    gather = store.get_job(run_id, "gather")
    assert gather is not None and gather.waiters == ["outputs"]
    assert gather.expires_at == EXPIRES + 5


def test_defect_07_a_stub_item_expires_even_if_its_job_is_never_created(embedded, run_id):
    """DynamoDB only: waiters registered on a job that never comes (its run failed first) are
    an item of their own, which must expire too."""
    tables = embedded.moto_tables()
    store = DynamoStore(tables["runs"], tables["jobs"])
    assert store.register_waiter(run_id, "never", "outputs", expires_at=EXPIRES)
    stub = store.jobs.get(run_id, "never", consistent_read=True)
    assert stub.waiters == ["outputs"] and stub.expires_at == EXPIRES
    assert store.register_waiter(run_id, "never", "other", expires_at=EXPIRES + 9)
    assert store.jobs.get(run_id, "never", consistent_read=True).expires_at == EXPIRES  # kept


def test_defect_14_an_upload_is_recorded_on_the_run(store, run_id):
    store.create_run(Run(run_id, status=RUN_SUCCEEDED))
    assert store.get_run(run_id).uploaded_to is None  # type: ignore[union-attr]
    store.record_upload(run_id, "s3://results/runs/")
    assert store.get_run(run_id).uploaded_to == "s3://results/runs/"  # type: ignore[union-attr]


# -- a scatter's gather: shards tallied, no hot item in a transaction (design rule 7) --------

PREFIX = "call-t-"
ONE_DONE = {"jobs_done": 1, "calls_succeeded": 1}  # a shard's counters, kept by its bucket


def scatter(store: RunStore, run_id: str, width: int, *, tallied: bool = True) -> list[Job]:
    """A gather of ``width`` running shards as ``progress.py:_store_jobs`` creates them (the
    shards tallied into it: ``records.tally_of``; or, ``tallied=False``, as before tallies:
    each decrements the gather in its completion's transaction). The shards, as read."""
    shards = {"of": "scatter-s", "node": "call-t", "prefix": PREFIX, "count": width}
    gather = Job(run_id, "gather-call-t", node_id="gather-call-t", shards=shards, pending=width)
    jobs = [
        Job(
            run_id,
            f"{PREFIX}{i}",
            node_id="call-t",
            dependents=[gather.job_id],
            scatter_stack=[[str(i), "i", i]],
            status=RUNNING,
        )
        for i in range(width)
    ]
    for job in jobs:
        job.tally = tally_of(gather, job) if tallied else None
    assert store.put_new_jobs([gather, *jobs], expires_at=EXPIRES) == {
        j.job_id for j in [gather, *jobs]
    }
    found = store.get_jobs(run_id, [j.job_id for j in jobs])
    return [found[j.job_id] for j in jobs]


def graph(store: RunStore, run_id: str) -> SimpleNamespace:
    """What ``progress.ready_dependents`` needs of a run's context: its store."""
    return SimpleNamespace(run_id=run_id, ports=SimpleNamespace(store=store))


def finish(store: RunStore, run_id: str, shard: Job) -> list[str]:
    """A shard's completion as ``progress.py:complete`` does it, then the claims of what it
    offers (as ``progress.py:offer``): the ids it claimed."""
    targets = store.complete(shard, {"out": shard.job_id}, expected_attempt=0)
    offers = ready_dependents(graph(store, run_id), shard, targets, ONE_DONE)  # type: ignore[arg-type]
    return [o.job.job_id for o in offers if store.claim(run_id, o.job.job_id, shard.job_id)]


def test_shards_are_tallied_into_their_gather_not_decremented_in_a_transaction(store, run_id):
    width = TALLY_BUCKET + 50  # two buckets: one full-sized, one of 50
    shards = scatter(store, run_id, width)
    assert shards[0].tally == {"gather": "gather-call-t", "index": 0, "bucket": 0, "size": 200}
    assert shards[-1].tally == {"gather": "gather-call-t", "index": 249, "bucket": 1, "size": 50}
    assert shards[0].targets() == []  # the gather is a dependent, but no target
    assert store.complete(shards[0], {"x": 0}) == []
    assert store.get_job(run_id, "gather-call-t").pending == width  # type: ignore[union-attr]
    done = store.get_job(run_id, shards[0].job_id)
    assert done is not None and done.status == DONE and done.outputs == {"x": 0}
    for shard in shards[TALLY_BUCKET:-1]:
        assert not store.tally_shard(shard, ONE_DONE)
    assert not store.tally_shard(shards[TALLY_BUCKET], ONE_DONE)  # again: counted once
    assert store.tally_shard(shards[-1], ONE_DONE)  # its bucket is full
    assert store.tally_shard(shards[-1], ONE_DONE)  # and stays so
    gather = store.tally_bucket(shards[-1])
    assert gather is not None and gather.pending == TALLY_BUCKET and gather.status == WAITING
    again = store.tally_bucket(shards[TALLY_BUCKET])  # the same bucket: counted before
    assert again is not None and again.pending == TALLY_BUCKET
    for shard in shards[: TALLY_BUCKET - 1]:
        assert not store.tally_shard(shard, ONE_DONE)
    assert store.tally_shard(shards[TALLY_BUCKET - 1], ONE_DONE)
    last = store.tally_bucket(shards[0])
    assert last is not None and last.pending == 0
    assert store.get_job(run_id, "gather-call-t").tallied == [0, 1]  # type: ignore[union-attr]
    # the buckets are no jobs: no read or id range of the partition returns them
    assert len(list(store.query_jobs(run_id))) == width + 1
    assert len(list(store.query_jobs(run_id, prefix=PREFIX))) == width
    assert (
        store.tally_bucket(replace(shards[0], tally=dict(shards[0].tally or {}, gather="no")))
        is None
    )


def test_a_bucket_keeps_its_shards_counters_each_once(store, run_id):
    """The run's counters of a scatter's shards are in their buckets (one write a shard, not
    two): each shard counted once however often it is tallied, summed by ``tallied``."""
    shards = scatter(store, run_id, TALLY_BUCKET + 2)
    assert store.tallied(run_id) == {"jobs_done": 0, "calls_succeeded": 0, "calls_cached": 0}
    store.tally_shard(shards[0], ONE_DONE)
    store.tally_shard(shards[0], ONE_DONE)  # a redelivery
    store.tally_shard(shards[1], {"jobs_done": 1, "calls_cached": 1})
    store.tally_shard(shards[-1], ONE_DONE)  # the second bucket
    assert store.tallied(run_id) == {"jobs_done": 3, "calls_succeeded": 2, "calls_cached": 1}
    assert store.tallied(run_id + "-other") == {
        "jobs_done": 0,
        "calls_succeeded": 0,
        "calls_cached": 0,
    }
    run = store.get_run(run_id)
    assert run is None or run.jobs_done == 0  # the run item was not written


def test_a_tally_cut_short_is_finished_by_a_redelivery(store, run_id):
    """The completion's steps are separate writes: a crash after any of them leaves what a
    redelivery (``ready_dependents`` with nothing known, as ``progress.py:resume`` calls it)
    finishes, whichever shard's event comes again, and the gather is claimed once."""
    shards = scatter(store, run_id, 3)
    context = graph(store, run_id)
    assert finish(store, run_id, shards[0]) == []
    assert store.complete(shards[1], {}, expected_attempt=0) == []  # died: not tallied
    assert store.complete(shards[2], {}, expected_attempt=0) == []
    assert store.tally_shard(shards[2], ONE_DONE) is False  # died before its bucket was full
    assert store.get_job(run_id, "gather-call-t").pending == 3  # type: ignore[union-attr]
    # shard 2's event again: its tally is repeated, the bucket still waits for shard 1
    assert ready_dependents(context, shards[2], None, ONE_DONE) == []  # type: ignore[arg-type]
    # shard 1's event again: tallied, the bucket fills, the gather is offered to shard 1
    (offer,) = ready_dependents(context, shards[1], None, ONE_DONE)  # type: ignore[arg-type]
    assert offer.job.job_id == "gather-call-t" and offer.claimant == shards[1].job_id
    # it died before claiming: any shard's redelivery offers it again; one claim wins
    (again,) = ready_dependents(context, shards[0], None, ONE_DONE)  # type: ignore[arg-type]
    assert store.claim(run_id, "gather-call-t", again.claimant)
    assert store.claim(run_id, "gather-call-t", offer.claimant) is None
    gather = store.get_job(run_id, "gather-call-t")
    assert gather is not None and gather.pending == 0 and gather.tallied == [0]
    # a stale attempt's event neither completes nor tallies the shard
    running = scatter(store, run_id + "-b", 1)[0]
    store.update_job(run_id + "-b", running.job_id, attempt=1)
    assert store.complete(running, {}, expected_attempt=0) is None
    assert ready_dependents(graph(store, run_id + "-b"), running, None, ONE_DONE) == []  # type: ignore[arg-type]
    assert store.get_job(run_id + "-b", "gather-call-t").pending == 1  # type: ignore[union-attr]


def _concurrently(calls: list[Callable[[], list[str]]]) -> tuple[list[str], list[BaseException]]:
    barrier = threading.Barrier(len(calls))
    claims: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(call: Callable[[], list[str]]) -> None:
        try:
            barrier.wait()
            claimed = call()
            with lock:
                claims.extend(claimed)
        except BaseException as exn:  # noqa: BLE001 - surfaced by the caller
            with lock:
                errors.append(exn)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claims, errors


QUICK_RETRIES = Backoff(attempts=6, base_seconds=0.01, cap_seconds=0.2)


def test_hundreds_of_concurrent_completions_of_one_scatter_claim_the_gather_once(store, run_id):
    """250 shards (two buckets) complete at once in 250 threads, and 30 of them are delivered
    twice at the same time, through the store as production wires it (``Retrying``) with
    DynamoDB's transaction conflicts injected at the port: nothing conflicts, every shard is
    done, the gather is ready and claimed (so evaluated) exactly once."""
    width = TALLY_BUCKET + 50
    conflicting = Conflicting(store)
    wired = Retrying(conflicting, classify, QUICK_RETRIES)
    shards = scatter(store, run_id, width)
    deliveries = shards + shards[::9][:30]
    calls = [functools.partial(finish, wired, run_id, shard) for shard in deliveries]
    claims, errors = _concurrently(calls)  # type: ignore[arg-type]
    assert not errors, errors[:3]
    assert conflicting.calls["complete"] == len(deliveries)
    assert sum(conflicting.conflicts.values()) == 0  # no item is in two writes' transactions
    assert claims == ["gather-call-t"]
    found = store.get_jobs(run_id, [s.job_id for s in shards])
    assert {j.status for j in found.values()} == {DONE} and len(found) == width
    gather = store.get_job(run_id, "gather-call-t")
    assert gather is not None and gather.pending == 0 and gather.status == CLAIMED
    assert gather.tallied == [0, 1]


def test_the_conflicts_are_real_where_shards_decrement_their_gather_in_transactions(store, run_id):
    """The injected rule is not vacuous: shards that decrement the gather in their
    completion's transaction (as before tallies) meet conflicts when they complete at once."""
    shards = scatter(store, run_id, 40, tallied=False)
    conflicting = Conflicting(store)
    wired = Retrying(conflicting, classify, QUICK_RETRIES)
    calls = [functools.partial(finish, wired, run_id, shard) for shard in shards]
    _concurrently(calls)  # type: ignore[arg-type]
    assert conflicting.conflicts["complete"] > 0
