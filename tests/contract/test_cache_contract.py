"""One contract for the CacheStore port (download entries and call-cache entries), on the
in-memory cache and on DynamoDB (moto, the table from template.yaml)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from miniwdl_serverless.adapters.cache_table import DynamoCache
from miniwdl_serverless.adapters.memory import MemoryCache
from miniwdl_serverless.controller.ports import CacheEntry, CacheStore

pytestmark = pytest.mark.xdist_group("embedded")
NOW = 1_000_000.0


@pytest.fixture(params=["memory", "dynamodb"])
def cache(request) -> CacheStore:
    if request.param == "memory":
        return MemoryCache()
    request.getfixturevalue("embedded").moto_tables()  # CACHE_TABLE names its table
    return DynamoCache(os.environ["CACHE_TABLE"])


@pytest.fixture
def key() -> str:
    return "download:" + uuid.uuid4().hex


def claim(cache: CacheStore, key: str, who: str, until: float = NOW + 60, now: float = NOW):
    return cache.claim_entry(key, who, until, now, None, {"path": "/p"})


def test_one_downloader_at_a_time_and_its_own_claim_again(cache, key):
    assert claim(cache, key, "a")
    assert not claim(cache, key, "b")
    assert claim(cache, key, "a")  # a retried invocation of the same claimant
    entry = cache.get_entry(key)
    assert entry is not None and entry.status == "downloading" and entry.claimant == "a"
    assert entry.data == {"path": "/p"}


def test_a_claim_whose_lease_ran_out_is_taken_over_with_its_waiters(cache, key):
    assert claim(cache, key, "a", until=NOW + 10)
    assert cache.add_waiter(key, "w1")
    assert not claim(cache, key, "b", now=NOW + 5)
    assert claim(cache, key, "b", now=NOW + 11)
    assert cache.settle_entry(key, "a", "ready", {}) is None  # no longer a's
    assert cache.settle_entry(key, "b", "ready", {"x": 1}) == {"w1"}


def test_waiters_are_returned_once_and_none_join_after_settling(cache, key):
    assert not cache.add_waiter(key, "w0")  # nothing is downloading
    assert claim(cache, key, "a")
    assert cache.add_waiter(key, "w1") and cache.add_waiter(key, "w2")
    assert cache.add_waiter(key, "w1")  # a set: idempotent
    assert cache.settle_entry(key, "a", "ready", {"stamp": {"size": 1}}) == {"w1", "w2"}
    assert cache.settle_entry(key, "a", "ready", {}) is None
    assert not cache.add_waiter(key, "w3")
    entry = cache.get_entry(key)  # the waiters stay: a redelivered end tells them again
    assert entry is not None and entry.status == "ready" and entry.waiters == {"w1", "w2"}
    assert entry.data == {"stamp": {"size": 1}}


def test_failed_entries_are_claimed_again_and_ready_ones_only_when_found_stale(cache, key):
    assert claim(cache, key, "a")
    assert cache.settle_entry(key, "a", "failed", {"error": "404"}) == set()
    assert claim(cache, key, "b")
    assert cache.settle_entry(key, "b", "ready", {}) == set()
    assert not claim(cache, key, "c")
    assert not cache.claim_entry(key, "c", NOW + 60, NOW, "someone-else", {})
    assert cache.claim_entry(key, "c", NOW + 60, NOW, "b", {})  # b's copy was found changed


def test_concurrent_claims_have_one_winner(cache, key):
    wins: list[str] = []
    barrier = threading.Barrier(8)

    def race(who: str) -> None:
        barrier.wait()
        if claim(cache, key, who):
            wins.append(who)

    threads = [threading.Thread(target=race, args=(f"c{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1


def test_call_entries_are_put_and_read_the_last_writer_winning(cache):
    key = "call:" + uuid.uuid4().hex
    assert cache.get_entry(key) is None
    cache.put_entry(CacheEntry(key, "ready", "run-1", data={"outputs": {"t.x": 1}}))
    entry = cache.get_entry(key)
    assert entry is not None and entry.data == {"outputs": {"t.x": 1}}
    assert entry.claimant == "run-1"
    cache.put_entry(CacheEntry(key, "ready", "run-2", data={"outputs": {"t.x": 2}}))
    entry = cache.get_entry(key)  # the last writer wins (equal keys: equal calls)
    assert entry is not None and entry.claimant == "run-2"
