"""`run`'s embedded AWS starts with the cyclic garbage collector paused, and what its start made
is frozen out of the collections while the run goes on (cli/local_run.py:started_frozen); once
it is left (or its start failed) the collector is as it was."""

from __future__ import annotations

import gc

import pytest

from miniwdl_serverless.cli import local_run


class Started:
    """Stands in for the embedded AWS: notes the collector's state as it is entered and left."""

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.seen: dict[str, tuple[bool, int]] = {}

    def __enter__(self) -> Started:
        self.seen["enter"] = (gc.isenabled(), gc.get_freeze_count())
        if self.fail:
            raise RuntimeError("cannot start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.seen["exit"] = (gc.isenabled(), gc.get_freeze_count())


def test_the_start_is_uncollected_then_frozen_while_the_run_goes_on() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    manager = Started()
    with local_run.started_frozen(manager) as entered:
        assert entered is manager
        assert gc.isenabled() and gc.get_freeze_count() > 0
    assert manager.seen["enter"] == (False, 0)  # started with the collector paused
    assert manager.seen["exit"] == (True, 0)  # left with everything collectable again
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_start_that_fails_leaves_the_collector_as_it_was() -> None:
    with (
        pytest.raises(RuntimeError, match="cannot start"),
        local_run.started_frozen(Started(fail=True)),
    ):
        pass  # pragma: no cover
    assert gc.isenabled() and gc.get_freeze_count() == 0
