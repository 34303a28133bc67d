"""Numbers every store adapter shares (so the in-memory and DynamoDB stores cannot drift)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TRANSACTION_LIMIT = 100  # DynamoDB TransactWriteItems: at most 100 actions
FINISHED_RUN_TTL_SECONDS = 90 * 24 * 3600
SUBMIT_LEASE_SECONDS = 900  # a Lambda invocation lives at most 15 minutes


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
