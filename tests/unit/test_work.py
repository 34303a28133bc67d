"""The work table's items and the bounds of one invocation (core/work.py): pure values."""

from __future__ import annotations

import pytest

from miniwdl_serverless.core.resources import Resources, TaskSubmission
from miniwdl_serverless.core.work import (
    EXPAND,
    OFFERS,
    REFUSED,
    SUBMIT,
    Budget,
    ExpandRange,
    Offers,
    Pacer,
    QueuedSubmission,
    Refused,
    WorkItem,
    expand_items,
    graph_work,
    offers_items,
    queued_submission,
    refused_item,
    submit_item,
    submit_pace,
)

SUBMISSION = TaskSubmission(
    name="run-1-call-t-0-try1",
    queue="queue-spot",
    image="ubuntu:22.04",
    resources=Resources(vcpus=2, memory_mib=4000, gpus=0),
    script="echo hi",
    environment={"A": "1"},
    tags={"miniwdl-serverless:run": "run-1"},
    timeout_seconds=600,
)


def test_a_queued_submission_survives_the_table_and_its_stream() -> None:
    queued = QueuedSubmission(SUBMISSION, "run-1", "call-t-0", attempt=2, lease=1733112000.25)
    item = submit_item(queued)
    assert item.kind == SUBMIT and item.run_id == "run-1"
    stored = item.to_item(now=1000.0)
    assert stored["expires_at"] == 1000 + 7 * 24 * 3600 and isinstance(stored["body"], str)
    assert queued_submission(WorkItem.from_item(stored)) == queued


def test_each_lease_taken_on_an_attempt_is_its_own_item() -> None:
    first = submit_item(QueuedSubmission(SUBMISSION, "run-1", "call-t-0", lease=10.0))
    again = submit_item(QueuedSubmission(SUBMISSION, "run-1", "call-t-0", lease=10.0))
    taken_over = submit_item(QueuedSubmission(SUBMISSION, "run-1", "call-t-0", lease=70.0))
    assert first.key == again.key != taken_over.key


def test_a_download_submission_names_its_entry() -> None:
    queued = QueuedSubmission(
        SUBMISSION, "run-1", entry="download:s3://b/k", claimant="c", entry_data={"path": "/p"}
    )
    assert queued_submission(WorkItem.from_item(submit_item(queued).to_item(0))) == queued


@pytest.mark.parametrize(
    "item",
    [
        {"kind": "other", "run_id": "r", "key": "k", "body": "{}"},
        {"kind": SUBMIT, "run_id": 3, "key": "k", "body": "{}"},
        {"kind": SUBMIT, "run_id": "r", "key": "k", "body": "[1]"},
        {"kind": OFFERS, "run_id": "r", "key": None, "body": "{}"},
    ],
)
def test_what_is_not_a_work_item_is_refused(item: dict) -> None:
    with pytest.raises(ValueError):
        WorkItem.from_item(item)


def test_offers_go_in_parts_whose_keys_are_their_content() -> None:
    offers = [(f"call-t-{i}", "scatter-x") for i in range(250)]
    items = offers_items("run-1", offers, chunk=100)
    assert [len(i.body["offers"]) for i in items] == [100, 100, 50]
    assert all(i.kind == OFFERS for i in items)
    again = offers_items("run-1", list(offers), chunk=100)
    assert [i.key for i in items] == [i.key for i in again]  # an invocation redone: same items
    parts = [graph_work(i) for i in items]
    assert all(isinstance(p, Offers) for p in parts)
    assert sorted(o for p in parts for o in p.offers) == sorted(offers)  # type: ignore[union-attr]


def test_a_wide_scatter_is_handed_on_in_ranges_after_its_first_part() -> None:
    items = expand_items("run-1", "scatter-x", width=10_000, chunk=100)
    assert len(items) == 99 and all(i.kind == EXPAND for i in items)
    ranges = [graph_work(i) for i in items]
    assert ranges[0] == ExpandRange("scatter-x", 100, 200)
    assert ranges[-1] == ExpandRange("scatter-x", 9_900, 10_000)
    assert len({i.key for i in items}) == 99
    assert expand_items("run-1", "scatter-x", width=250, chunk=100)[-1].body["stop"] == 250
    assert expand_items("run-1", "scatter-x", width=100, chunk=100) == []


def test_a_refused_submission_carries_the_submission_and_why() -> None:
    item = submit_item(QueuedSubmission(SUBMISSION, "run-1", "call-t-0", lease=5.0))
    refused = refused_item(item, "AccessDeniedException: no")
    assert refused.kind == REFUSED and refused.key != item.key
    piece = graph_work(WorkItem.from_item(refused.to_item(0)))
    assert isinstance(piece, Refused) and piece.error == "AccessDeniedException: no"
    assert piece.queued == queued_submission(item)


def test_a_budget_is_spent_by_steps_or_by_time() -> None:
    budget = Budget(steps=100, reserve_seconds=120)
    assert not budget.spent(99, remaining_seconds=900)
    assert budget.spent(100, remaining_seconds=900)
    assert budget.spent(3, remaining_seconds=119)
    assert not budget.spent(0, remaining_seconds=1)  # one step, whatever the time: progress


def test_the_pacer_keeps_calls_under_its_rate() -> None:
    pacer = Pacer(rate=20.0, burst=1.0)
    now, times = 0.0, []
    for _ in range(100):
        now += pacer.delay(now)  # the caller sleeps that long, then calls
        times.append(now)
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(99 / 20.0)
    window = [t for t in times if t < 1.0]
    assert len(window) <= 20


def test_the_pacer_lets_an_idle_bucket_refill_up_to_its_burst() -> None:
    pacer = Pacer(rate=10.0, burst=5.0)
    assert [pacer.delay(0.0) for _ in range(5)] == [0.0] * 5
    assert pacer.delay(0.0) == pytest.approx(0.1)
    assert pacer.delay(100.0) == 0.0  # refilled, but never beyond the burst
    assert sum(pacer.delay(100.0) == 0.0 for _ in range(10)) == 4


def test_the_account_rate_is_shared_by_the_submitters() -> None:
    assert submit_pace(40, 2).rate == 20.0
    assert submit_pace(40, 0).rate == 40.0


def test_a_group_of_waiting_jobs_is_keyed_by_its_dependency_too() -> None:
    from miniwdl_serverless.core.work import waiters_item

    jobs = ["call-t-0", "call-t-1"]
    assert waiters_item("r", "decl-a", jobs).key != waiters_item("r", "decl-b", jobs).key
    assert waiters_item("r", "decl-a", jobs).key == waiters_item("r", "decl-a", jobs[::-1]).key
