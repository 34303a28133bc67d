"""What the embedded AWS puts in place of the handlers' AWS ports (local mode): the in-memory
store and cache, and the work table's in-process stream. Kept apart from wiring.py so that
setting them does not import the handlers' dependencies (powertools, pydantic's event models:
most of a second), which the embedded AWS's start-up would otherwise pay."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from miniwdl_serverless.controller.ports import CacheStore, RunStore, WorkQueue

stores: tuple[RunStore, CacheStore] | None = None  # None: DynamoDB
work: WorkQueue | None = None  # None: the work table


def use_stores(local: tuple[RunStore, CacheStore] | None) -> None:
    """The handlers' store and cache from now on (None: DynamoDB again)."""
    global stores
    stores = local
    forget_clients()


def use_work(local: WorkQueue | None) -> None:
    """The handlers' work queue from now on (None: the work table again)."""
    global work
    work = local
    forget_clients()


def forget_clients() -> None:
    """Drop the handlers' cached clients and ports, if they were ever made."""
    wiring = sys.modules.get("miniwdl_serverless.handlers.wiring")
    if wiring is not None:
        wiring.forget_clients()
