"""What every handler shares: powertools Logger/Tracer/Metrics, typed events, AWS clients.

Handlers in functions/ stay thin: parse the event into a model here, call the engine, return.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from miniwdl_serverless.batch import adapter_from_environment
from miniwdl_serverless.engine import Services

SERVICE = "miniwdl-serverless"

# Functions that count nothing in an invocation are normal here (RUNNING events, Finish).
warnings.filterwarnings("ignore", message="No application metrics to publish")
# In the embedded local mode stdout carries only the run's result, so logs go to stderr.
logger = Logger(service=SERVICE, stream=sys.stderr if os.environ.get("MSLS_LOCAL") else None)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MiniwdlServerless"), service=SERVICE)


class StartEvent(BaseModel):
    """Payload of the Start state (lambda:invoke.waitForTaskToken)."""

    input: dict[str, Any]
    task_token: str
    execution_arn: str
    started_at: str | None = None


class FinishEvent(BaseModel):
    """Payload of the Finish state: the whole state ({run, result} or {run, error})."""

    state: dict[str, Any]
    execution_name: str


class BatchJobDetail(BaseModel):
    """The "Batch Job State Change" detail (the DescribeJobs shape) — what the engine reads."""

    jobName: str
    jobId: str
    jobQueue: str | None = None
    status: Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    statusReason: str | None = None
    container: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    attempts: list[dict[str, Any]] = Field(default_factory=list)


class BatchJobStateChange(EventBridgeModel):
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


def lambda_handler(model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The cross-cutting concerns of every handler: logging context, metrics, tracing, and
    parsing the event into ``model`` (a bad event fails with a pydantic ValidationError)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        parsed = event_parser(model=model)(function)
        return logger.inject_lambda_context(clear_state=True)(  # type: ignore[no-any-return]
            metrics.log_metrics(tracer.capture_lambda_handler(parsed))
        )

    return decorate


def count_metric(name: str, value: int) -> None:
    if os.environ.get("MSLS_LOCAL"):  # EMF goes to stdout, which the local CLI keeps for results
        return
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@lru_cache(maxsize=1)
def services() -> Services:
    """AWS clients and adapters, created once per Lambda container."""
    return Services(
        batch=adapter_from_environment(boto3.client("batch")),
        sfn=sfn_client(),
        default_queue=os.environ.get("TASK_QUEUE") or None,
        default_fallback_queue=os.environ.get("TASK_QUEUE_FALLBACK") or None,
        metric=count_metric,
    )


@lru_cache(maxsize=1)
def s3_client() -> Any:
    return boto3.client("s3")


@lru_cache(maxsize=1)
def sfn_client() -> Any:
    return boto3.client("stepfunctions")


def submission_adapters() -> tuple[Any, Any]:
    """The S3 store and the executions of the stack's state machine (STATE_MACHINE_ARN)."""
    from miniwdl_serverless.controller.submit import S3SubmissionStore, StepFunctionsExecutions

    return S3SubmissionStore(s3_client()), StepFunctionsExecutions(sfn_client(), os.environ["STATE_MACHINE_ARN"])
