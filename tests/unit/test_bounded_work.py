"""No invocation does work that grows with a scatter's width: a wide scatter's expansion and
its shards' preparation go in parts of the budget's size, each its own invocation of the work
function (controller/drive.py's budget, progress.py's ranges, core/work.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from miniwdl_serverless.core.work import Budget
from tests.unit.harness import Harness


def scatter(width: int) -> str:
    return f"""version 1.0
task t {{ input {{ Int i }} command {{ echo ~{{i}} }} output {{ Int o = i }} }}
workflow w {{
  scatter (i in range({width})) {{ call t {{ input: i = i }} }}
  output {{ Array[Int] os = t.o }}
}}
"""


class Invocations:
    """What each invocation (the Start, each delivered work item) prepared and handed on."""

    def __init__(self, harness: Harness) -> None:
        self.prepared: list[int] = [0]  # per invocation, the current one last
        self.kinds: Counter[str] = Counter()
        files, work = harness.files, harness.work
        prepare, deliver = files.prepare_call, work.deliver
        assert deliver is not None

        def counted_prepare(*args: Any, **kwargs: Any) -> Any:
            self.prepared[-1] += 1
            return prepare(*args, **kwargs)

        def one_invocation(items: list[Any]) -> None:
            self.prepared.append(0)
            self.kinds.update(item.kind for item in items)
            deliver(items)

        files.prepare_call = counted_prepare
        work.deliver = one_invocation


def test_a_10000_shard_expansion_prepares_no_more_than_a_part_per_invocation() -> None:
    harness = Harness()
    harness.ports.budget = Budget(steps=100)
    invocations = Invocations(harness)
    harness.start(scatter(10_000))
    assert max(invocations.prepared) <= 100
    assert sum(invocations.prepared) == 10_000
    assert invocations.kinds["expand"] == 99  # shards 100.. in ranges of 100
    names = [job.submission.name for job in harness.batch.jobs.values()]
    assert len(names) == len(set(names)) == 10_000  # each shard submitted once
    assert harness.run().jobs_total >= 10_000


@pytest.mark.parametrize("steps", [7, 50])
def test_a_scatter_expanded_in_parts_gives_miniwdls_result(steps: int) -> None:
    harness = Harness()
    harness.ports.budget = Budget(steps=steps)
    invocations = Invocations(harness)
    harness.start(scatter(120))
    harness.play()
    assert harness.outputs() == {"w.os": list(range(120))}
    assert max(invocations.prepared) <= steps


def test_offers_past_the_budget_are_handed_on_and_each_job_runs_once() -> None:
    """A call many shards wait on (an outside dependency): its completion makes them all
    ready at once, more than one invocation's budget."""
    source = """version 1.0
task t { input { Int i } command { echo ~{i} } output { Int o = i } }
workflow w {
  call t as first { input: i = 1 }
  scatter (i in range(40)) { call t { input: i = i + first.o } }
  output { Array[Int] os = t.o }
}
"""
    harness = Harness()
    harness.ports.budget = Budget(steps=10)
    invocations = Invocations(harness)
    harness.start(source)
    harness.play()
    assert harness.outputs() == {"w.os": list(range(1, 41))}
    assert max(invocations.prepared) <= 10
    assert invocations.kinds["offers"] >= 3
    names = [job.submission.name for job in harness.batch.jobs.values()]
    assert len(names) == len(set(names)) == 41


def test_an_invocation_near_its_deadline_takes_one_step_and_hands_the_rest_on() -> None:
    from miniwdl_serverless.core.work import remaining_seconds

    harness = Harness()
    harness.ports.budget = Budget(steps=1000, reserve_seconds=120)
    token = remaining_seconds.set(lambda: 60.0)  # every invocation already past its reserve
    try:
        invocations = Invocations(harness)
        harness.start(scatter(30))
        harness.play()
    finally:
        remaining_seconds.reset(token)
    assert harness.outputs() == {"w.os": list(range(30))}
    assert max(invocations.prepared) <= 1 and invocations.kinds["offers"] >= 29


OUTSIDE = """version 1.0
task t { input { Int i } command { echo ~{i} } output { Int o = i } }
workflow w {
  call t as first { input: i = 1 }
  scatter (i in range(WIDTH)) { call t { input: i = i + first.o } }
  output { Array[Int] os = t.o }
}
"""


def test_shards_waiting_for_an_outside_call_are_one_waiter_per_part() -> None:
    """The scatter's shards wait for ``first``, still running: its item holds one entry per
    part of the expansion, not one per shard, and its completion releases them in parts."""
    harness = Harness()
    harness.ports.budget = Budget(steps=100)
    invocations = Invocations(harness)
    harness.start(OUTSIDE.replace("WIDTH", "300"))
    first = harness.job("call-first")
    assert first.status == "running" and len(first.waiters or []) == 3
    assert all(w.startswith("@waiters#") for w in first.waiters or [])
    harness.play()
    assert harness.outputs() == {"w.os": list(range(1, 301))}
    assert invocations.kinds["release"] == 3
    assert max(invocations.prepared) <= 100


def test_shards_created_after_their_outside_call_completed_are_released_at_once() -> None:
    harness = Harness()
    source = """version 1.0
task t { input { Int i } command { echo ~{i} } output { Int o = i } }
workflow w {
  call t as first { input: i = 1 }
  call t as gate { input: i = first.o }
  if (gate.o > 0) {
    scatter (i in range(5)) { call t { input: i = i + first.o } }
  }
  output { Array[Int]? os = t.o }
}
"""
    harness.start(source)
    harness.play()
    assert harness.outputs() == {"w.os": [1, 2, 3, 4, 5]}
