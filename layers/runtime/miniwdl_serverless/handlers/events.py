"""The events the handlers receive, as typed models (powertools parser, pydantic). The Batch
detail is the controller's own type (core/events.py): parsed once, handed on as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel, EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.work import WorkItem, unreadable

WorkStream = DynamoDBStreamModel  # the work table's stream, as Lambda delivers a batch of it
Model = TypeVar("Model")


class EventBridgeDetail:
    """The EventBridge envelope of powertools' parser: the event is validated as an EventBridge
    event (``EventBridgeModel``), then its ``detail`` is parsed into the handler's model. Ours,
    not powertools' ``EventBridgeEnvelope``: importing that one runs its ``envelopes`` package,
    which builds every envelope and event model powertools has (~60 ms of each cold start)."""

    def parse(self, data: dict[str, Any] | Any | None, model: type[Model]) -> Model | None:
        detail = EventBridgeModel.model_validate(data).detail
        if detail is None:  # as powertools' envelopes do
            return None
        return parse(event=detail, model=model)  # type: ignore[arg-type]  # (a dict, as sent)


def stream_items(
    event: DynamoDBStreamModel, skipped: Callable[[str, str], None]
) -> list[tuple[str, WorkItem]]:
    """Each record's sequence number (to report it failed) and the item it inserted. A record
    that is not a readable work item is reported to ``skipped`` (its sequence number and why)
    and left out: it can never succeed, so it must not hold up the records after it."""
    found = []
    for record in event.Records:
        stream = record.dynamodb
        image = stream.NewImage if stream is not None else None
        if stream is None or not isinstance(image, dict):
            continue
        try:
            item = WorkItem.from_item(image)
        except ValueError as error:
            skipped(str(stream.SequenceNumber), str(error))
            continue
        why = unreadable(item)
        if why is None:
            found.append((stream.SequenceNumber, item))
        else:
            skipped(str(stream.SequenceNumber), f"work item {item.key!r}: {why}")
    return found


def item_failures(items: list[tuple[str, WorkItem]], left: list[str]) -> dict[str, Any]:
    """Lambda's partial batch response: the stream resumes from the first item left."""
    keys = set(left)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq, i in items if i.key in keys]}


class StartEvent(BaseModel):
    """Payload of the Start state (lambda:invoke.waitForTaskToken)."""

    input: dict[str, Any]
    task_token: str
    execution_arn: str
    started_at: str | None = None


class ReconcileRequest(BaseModel):
    """The reconcile function's event: EventBridge's "Scheduled Event" (no run id: every live
    run and the dead-letter queue), or ``{"run_id": RUN}`` from `miniwdl-serverless reconcile`
    (that run only). Other fields are ignored."""

    run_id: str | None = None


class FinishEvent(BaseModel):
    """Payload of the Finish state: the whole state ({run, result} or {run, error})."""

    state: dict[str, Any]
    execution_name: str


class BatchJobStateChange(EventBridgeModel):
    """The whole EventBridge event (the advance handler takes just its detail, through
    powertools' EventBridge envelope)."""

    detail: BatchJobDetail


class ExecutionStatusDetail(BaseModel):
    """The "Step Functions Execution Status Change" detail."""

    executionArn: str
    stateMachineArn: str
    name: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]


class ExecutionStatusChange(EventBridgeModel):
    detail: ExecutionStatusDetail


class S3Bucket(BaseModel):
    name: str


class S3Object(BaseModel):
    """detail.object of an S3 event on EventBridge (the key as stored, not URL-encoded)."""

    model_config = ConfigDict(populate_by_name=True)

    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None


class S3ObjectCreatedDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: str
    bucket: S3Bucket
    object: S3Object
    request_id: str | None = Field(default=None, alias="request-id")
    requester: str | None = None
    source_ip_address: str | None = Field(default=None, alias="source-ip-address")
    reason: str | None = None


class S3ObjectCreated(EventBridgeModel):
    """EventBridge "Object Created" from S3 (the bucket has EventBridge notifications on)."""

    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    source: Literal["aws.s3"]
    detail: S3ObjectCreatedDetail
