"""The DynamoDB store against moto: transactions, conditional claims, idempotence, and
concurrent completions (the gather of a scatter is claimed exactly once)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from pynamodb.exceptions import TransactWriteError

from miniwdl_serverless import store


@pytest.fixture
def run_id(embedded):  # the embedded AWS holds the tables, created from template.yaml
    return "test-" + uuid.uuid4().hex[:10]


def make(run_id: str, job_id: str, **fields) -> store.JobModel:
    job = store.JobModel(run_id, job_id, node_id=job_id, **fields)
    assert store.put_new_jobs([job]) == {job_id}
    return store.get_job(run_id, job_id)


def test_tables_match_template(embedded):
    for table in embedded.project.tables():
        keys = [k["AttributeName"] for k in table.key_schema]
        model = store.RunModel if len(keys) == 1 else store.JobModel
        names = [model._hash_key_attribute().attr_name]
        if model._range_key_attribute() is not None:
            names.append(model._range_key_attribute().attr_name)
        assert names == keys


def test_completion_decrements_dependents_once(run_id):
    make(run_id, "gather", pending=2)
    shard = make(run_id, "shard-0", dependents=["gather"], status=store.RUNNING)
    assert store.complete(shard, {"x": 1}) == ["gather"]
    assert store.complete(shard, {"x": 1}) is None  # a repeated event changes nothing
    assert store.complete(store.get_job(run_id, "shard-0"), {"x": 2}) is None
    assert store.get_job(run_id, "gather").pending == 1
    assert store.get_job(run_id, "shard-0").outputs == {"x": 1}


def test_completion_is_atomic(run_id):
    shard = make(run_id, "shard-0", dependents=["missing-dependent"], status=store.RUNNING)
    with pytest.raises(TransactWriteError):
        store.complete(shard, {"x": 1})  # the dependent must exist: the whole transaction fails
    assert store.get_job(run_id, "shard-0").status == store.RUNNING


def test_completion_with_more_dependents_than_one_transaction_holds(run_id):
    dependents = [f"d-{i:03d}" for i in range(250)]
    store.put_new_jobs([store.JobModel(run_id, d, node_id=d, pending=1) for d in dependents])
    job = make(run_id, "decl", dependents=dependents, status=store.CLAIMED)
    assert store.complete(job, {}) == dependents
    assert {j.pending for j in store.get_jobs(run_id, dependents).values()} == {0}
    assert store.get_job(run_id, "decl").status == store.DONE


def test_stale_attempt_is_rejected(run_id):
    job = make(run_id, "call", status=store.RUNNING, attempt=1)
    assert store.complete(job, {}, expected_attempt=0) is None
    assert store.complete(job, {}, expected_attempt=1) == []


def test_claim_is_exclusive_and_resumable(run_id):
    job = make(run_id, "j")
    assert store.claim(job, "a")
    assert not store.claim(store.get_job(run_id, "j"), "b")
    assert store.claim(store.get_job(run_id, "j"), "a")  # the same claimant resumes its work
    waiting = make(run_id, "k", pending=1)
    assert not store.claim(waiting, "a")  # not ready


def test_submission_recorded_once(run_id):
    job = make(run_id, "call", status=store.CLAIMED)
    assert store.mark_running(job, 0, batch_job_id="b1")
    assert not store.mark_running(store.get_job(run_id, "call"), 0, batch_job_id="b2")
    assert store.mark_running(store.get_job(run_id, "call"), 1, batch_job_id="b3")  # the retry
    assert store.get_job(run_id, "call").batch_job_id == "b3"


def test_submission_recorded_before_the_batch_job_id(run_id):
    job = make(run_id, "call", status=store.CLAIMED)
    assert store.mark_running(job, 0, batch_job_name="n0", submitted_at=time.time())
    # a duplicate invocation does not submit the same attempt again...
    assert not store.mark_running(store.get_job(run_id, "call"), 0, resubmit=True, batch_job_name="n0")
    # ...unless the submitter's lease expired without a Batch job id (it died)
    store.update_job(store.get_job(run_id, "call"), submitted_at=time.time() - store.SUBMIT_LEASE_SECONDS - 1)
    assert store.mark_running(store.get_job(run_id, "call"), 0, resubmit=True, batch_job_name="n0", submitted_at=time.time())
    store.record_batch_job(store.get_job(run_id, "call"), 0, "b1")
    store.record_batch_job(store.get_job(run_id, "call"), 0, "b2")  # first one wins
    assert store.get_job(run_id, "call").batch_job_id == "b1"
    store.update_job(store.get_job(run_id, "call"), submitted_at=0)
    assert not store.mark_running(store.get_job(run_id, "call"), 0, resubmit=True)  # id known


def test_creation_is_idempotent_and_keeps_registered_waiters(run_id):
    assert store.register_waiter(run_id, "later", "shard-0")  # before "later" exists
    job = store.JobModel(run_id, "later", node_id="later", pending=0)
    assert store.put_new_jobs([job]) == {"later"}
    assert store.put_new_jobs([store.JobModel(run_id, "later", node_id="changed")]) == set()
    stored = store.get_job(run_id, "later")
    assert stored.waiters == ["shard-0"] and stored.node_id == "later"
    assert store.register_waiter(run_id, "later", "shard-0")  # idempotent
    assert store.get_job(run_id, "later").waiters == ["shard-0"]


def test_waiter_registered_during_completion_is_not_missed(run_id):
    make(run_id, "shard-0", pending=1)
    make(run_id, "shard-1", pending=1)
    job = make(run_id, "slow", status=store.RUNNING)
    assert store.register_waiter(run_id, "slow", "shard-0")
    stale = store.get_job(run_id, "slow")
    assert store.register_waiter(run_id, "slow", "shard-1")  # after the completer read the job
    assert sorted(store.complete(stale, {}) or []) == ["shard-0", "shard-1"]
    assert not store.register_waiter(run_id, "slow", "shard-2")  # done: nothing to wait for
    assert {j.pending for j in store.get_jobs(run_id, ["shard-0", "shard-1"]).values()} == {0}
    del job


@pytest.mark.parametrize("attempt", range(10))
def test_concurrent_shard_completions_claim_the_gather_exactly_once(run_id, attempt):
    width = 2
    make(run_id, "gather", pending=width)
    shards = [make(run_id, f"shard-{i}", dependents=["gather"], status=store.RUNNING) for i in range(width)]
    barrier = threading.Barrier(width)
    claims: list[str] = []
    errors: list[BaseException] = []

    def finish(shard: store.JobModel) -> None:
        try:
            barrier.wait()
            targets = store.complete(shard, {"i": shard.job_id})
            for job in store.get_jobs(run_id, targets or []).values():
                if job.pending <= 0 and store.claim(job, shard.job_id):
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
    assert gather.pending == 0 and gather.status == store.CLAIMED and gather.claimed_by == claims[0]
