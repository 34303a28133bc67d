"""The work table's stream as Lambda delivers it (a batch of DynamoDB stream records, new
images): what the embedded AWS and the handler tests hand the submitter and the work function."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from miniwdl_serverless.core.work import SUBMIT, WorkItem
from miniwdl_serverless.local.resources import ACCOUNT, REGION

_sequence = itertools.count(100_000_000_000_000_000_000)
_serializer = TypeSerializer()
STREAM_LABEL = "2026-12-01T00:00:00.000"


def function_of(item: WorkItem) -> str:
    """Which function the template's event source mappings hand the item to (by its kind)."""
    return "submitter" if item.kind == SUBMIT else "work"


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
