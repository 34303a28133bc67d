"""The WorkQueue port on DynamoDB: the work table, whose stream (new images, inserts only)
delivers each item to the submitter or the work function (template.yaml's filters by kind)."""

from __future__ import annotations

import os
import time
from typing import Any

from miniwdl_serverless.adapters.dynamodb_items import WorkTableItem, bound
from miniwdl_serverless.core.work import WorkItem


class DynamoWork:
    def __init__(self, table: str, host: str | None = None):
        self.items: Any = bound(WorkTableItem, table, host)

    @classmethod
    def from_environment(cls) -> DynamoWork:
        return cls(os.environ["WORK_TABLE"])

    def put(self, items: list[WorkItem]) -> None:
        """Batched writes (25 a request). Writing a key again only modifies the item, and the
        stream's filter hands on inserts only: nothing is delivered twice for it."""
        now = time.time()
        with self.items.batch_write() as batch:
            for item in items:
                batch.save(self.items(**item.to_item(now)))

    def get(self, key: str) -> WorkItem | None:
        try:
            found = self.items.get(key, consistent_read=True)
        except self.items.DoesNotExist:
            return None
        return WorkItem.from_item(found.attribute_values)
