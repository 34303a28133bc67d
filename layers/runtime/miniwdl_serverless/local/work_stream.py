"""The work table's stream as Lambda delivers it (a batch of DynamoDB stream records, new
images): what the embedded AWS and the handler tests hand the submitter and the work function."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from miniwdl_serverless.core.work import OUTSIDE_KINDS, WorkItem
from miniwdl_serverless.local.event_bus import Redelivery
from miniwdl_serverless.local.project import matches
from miniwdl_serverless.local.resources import ACCOUNT, REGION

RETRY_SECONDS = (0.05, 0.2, 1.0)  # then every second: a stream retries a failed batch until it
MAX_TRIES = 120  # succeeds or its record expires (the template's MaximumRetryAttempts: 1000)

_sequence = itertools.count(100_000_000_000_000_000_000)
_serializer = TypeSerializer()
STREAM_LABEL = "2026-12-01T00:00:00.000"


class LocalWorkStream:
    """The WorkQueue port of the embedded AWS: each item with a new key delivered, as its own
    stream batch, to every function whose event source mapping's filter matches it (the
    template's), asynchronously on the event bus's pool; a batch that fails, or reports its
    item failed, is delivered again. ``table``: also written there (moto's work table)."""

    def __init__(self, bus: Any, routes: dict[str, list[dict[str, Any]]], table: Any = None):
        self.bus, self.routes, self.table = bus, routes, table
        self.by_key: dict[str, WorkItem] = {}
        self.items: list[WorkItem] = []  # every item put, in order (tests read them)

    def put(self, items: list[WorkItem]) -> None:
        fresh = [item for item in items if item.key not in self.by_key]
        self.by_key.update((item.key, item) for item in fresh)
        self.items += fresh
        if self.table is not None and items:
            self.table.put(items)
        for item in fresh:
            event = stream_event([item])
            for name, patterns in self.routes.items():
                if any(matches(p, event["Records"][0]) for p in patterns):
                    self.bus.deliver_until_done(name, event, REDELIVERY)

    def get(self, key: str) -> WorkItem | None:
        return self.by_key.get(key)


def _done(answer: Any) -> bool:
    """Lambda's partial batch response: nothing reported failed."""
    return not (isinstance(answer, dict) and answer.get("batchItemFailures"))


REDELIVERY = Redelivery(_done, RETRY_SECONDS, MAX_TRIES)


def function_of(item: WorkItem) -> str:
    """Which function the template's event source mappings hand the item to (by its kind)."""
    return "submitter" if item.kind in OUTSIDE_KINDS else "work"


def stream_event(items: list[WorkItem], table: str = "work") -> dict[str, Any]:
    now = time.time()
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/{STREAM_LABEL}"
    records = []
    for item in items:
        image = {k: _serializer.serialize(v) for k, v in item.to_item(now).items()}
        records.append(
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "dynamodb": {
                    "ApproximateCreationDateTime": int(now),
                    "Keys": {"key": {"S": item.key}},
                    "NewImage": image,
                    "SequenceNumber": str(next(_sequence)),
                    "SizeBytes": sum(len(str(v)) for v in image.values()),
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": arn,
            }
        )
    return {"Records": records}
