"""The CacheStore port on DynamoDB (pynamodb): one item per download or call-cache entry.

What each conditional write guards:
- claiming a download: nobody else is downloading it (absent, failed, a claim whose lease ran
  out, or this claimant's own), or the ready entry the claimant found stale is still that one;
- waiting for a download: it is still downloading (a waiter added after it settled would never
  be told);
- settling a download: the claim is still this claimant's; the waiters (runs) are returned as
  they were, and kept, so that a redelivered end of the download job tells them again.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition

from miniwdl_serverless.adapters.dynamodb import condition_failed
from miniwdl_serverless.adapters.dynamodb_items import CacheItem, bound, cache_entry
from miniwdl_serverless.controller.ports import CacheEntry

DOWNLOADING, READY, FAILED = "downloading", "ready", "failed"


class DynamoCache:
    def __init__(self, table: str, host: str | None = None):
        self.items: Any = bound(CacheItem, table, host)

    @classmethod
    def from_environment(cls) -> DynamoCache | None:
        table = os.environ.get("CACHE_TABLE")
        return cls(table) if table else None

    def get_entry(self, key: str) -> CacheEntry | None:
        try:
            item = self.items.get(key, consistent_read=True)
        except self.items.DoesNotExist:
            return None
        return cache_entry(item)

    def claim_entry(  # noqa: PLR0913 - the port's signature
        self,
        key: str,
        claimant: str,
        lease_until: float,
        now: float,
        replacing: str | None,
        data: dict[str, Any],
    ) -> bool:
        items = self.items
        condition: Condition = (
            items.key.does_not_exist()
            | (items.status == FAILED)
            | ((items.status == DOWNLOADING) & (items.lease_until < now))
            | ((items.status == DOWNLOADING) & (items.claimant == claimant))
        )
        if replacing is not None:
            condition = condition | ((items.status == READY) & (items.claimant == replacing))
        actions = [
            items.status.set(DOWNLOADING),
            items.claimant.set(claimant),
            items.lease_until.set(lease_until),
            items.data.set(data),
            items.updated_at.set(time.time()),
        ]
        return self._update(key, actions, condition)

    def add_waiter(self, key: str, waiter: str) -> bool:
        items = self.items
        return self._update(key, [items.waiters.add({waiter})], items.status == DOWNLOADING)

    def settle_entry(
        self, key: str, claimant: str, status: str, data: dict[str, Any]
    ) -> set[str] | None:
        items = self.items
        actions = [
            items.status.set(status),
            items.data.set(data),
            items.lease_until.remove(),
            items.updated_at.set(time.time()),
        ]
        condition = (items.status == DOWNLOADING) & (items.claimant == claimant)
        try:
            response = items._get_connection().update_item(
                key, actions=actions, condition=condition, return_values="ALL_NEW"
            )
        except UpdateError as exn:
            if condition_failed(exn):
                return None
            raise
        old = (response or {}).get("Attributes", {}).get("waiters", {})
        return set(old.get("SS", []))

    def put_entry(self, entry: CacheEntry) -> None:
        item = self.items(
            entry.key,
            status=entry.status,
            claimant=entry.claimant,
            data=entry.data,
            updated_at=time.time(),
        )
        item.save()

    def _update(self, key: str, actions: list[Any], condition: Condition) -> bool:
        try:
            self.items(key).update(actions=actions, condition=condition)
        except UpdateError as exn:
            if condition_failed(exn):
                return False
            raise
        return True
