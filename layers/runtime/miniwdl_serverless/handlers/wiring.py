"""What every handler shares: powertools Logger/Tracer/Metrics, event parsing, and the ports
wired to AWS once per Lambda container.

Handlers in functions/ stay thin: the event arrives parsed (handlers/events.py), they call the
controller with ``ports()``, log and return.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel
from pydantic import BaseModel

from miniwdl_serverless.adapters import aws_errors, clients
from miniwdl_serverless.adapters.batch import adapter_from_environment
from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.adapters.handed_on import HandedOnBatch, HandedOnOrchestrator
from miniwdl_serverless.adapters.remotes import UriRemotes
from miniwdl_serverless.adapters.retrying import Retrying
from miniwdl_serverless.adapters.s3 import S3SubmissionStore, S3Uploads
from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.adapters.sqs import SqsDeadLetters
from miniwdl_serverless.adapters.stepfunctions import (
    StepFunctionsExecutions,
    StepFunctionsOrchestrator,
    StepFunctionsRuns,
)
from miniwdl_serverless.controller.ports import CacheStore, Ports, RunStore, WorkQueue
from miniwdl_serverless.controller.submit import SubmissionPorts
from miniwdl_serverless.controller.submitter import SubmitterPorts
from miniwdl_serverless.core.options import efs_root
from miniwdl_serverless.core.reconciling import Rules
from miniwdl_serverless.core.uploads import MAX_CONCURRENCY, Deadline, UploadSettings
from miniwdl_serverless.core.work import Budget, Pacer, WorkItem, remaining_seconds, submit_pace
from miniwdl_serverless.handlers import local_ports
from miniwdl_serverless.handlers.events import EventBridgeDetail, stream_items

if TYPE_CHECKING:  # the reconciler's controller needs miniwdl: imported where it is wired
    from miniwdl_serverless.controller.reconcile import ReconcilePorts

SERVICE = "miniwdl-serverless"

# Functions that count nothing in an invocation are normal here (RUNNING events, Finish).
warnings.filterwarnings("ignore", message="No application metrics to publish")
# In the embedded local mode stdout carries only the run's result, so logs go to stderr.
logger = Logger(service=SERVICE, stream=sys.stderr if os.environ.get("MSLS_LOCAL") else None)
if os.environ.get("MSLS_LOCAL"):  # the embedded AWS: no X-Ray (nor its SDK's import)
    from miniwdl_serverless.handlers.local_tracing import NoTracing

    tracer = Tracer(service=SERVICE, provider=NoTracing())
else:
    tracer = Tracer(service=SERVICE)
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MiniwdlServerless")
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def lambda_handler(
    model: type[BaseModel], envelope: type[EventBridgeDetail] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The cross-cutting concerns of every handler: logging context, metrics, tracing, and
    parsing the event into ``model`` — inside ``envelope`` if given (a bad event fails with a
    pydantic ValidationError)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        # powertools calls the envelope's parse (typed as its own BaseEnvelope, which ours is
        # not: see handlers/events.py:EventBridgeDetail)
        parsed = event_parser(model=model, envelope=cast(Any, envelope))(function)
        traced = logger.inject_lambda_context(clear_state=True)(
            metrics.log_metrics(tracer.capture_lambda_handler(parsed))
        )

        @functools.wraps(function)
        def within_deadline(event: Any, context: Any) -> Any:
            # the driver hands work on before the invocation's time runs out (drive.py)
            token = remaining_seconds.set(lambda: context.get_remaining_time_in_millis() / 1000)
            try:
                return traced(event, context)
            finally:
                remaining_seconds.reset(token)

        return within_deadline

    return decorate


def count_metric(name: str, value: int = 1) -> None:
    if os.environ.get("MSLS_LOCAL"):  # EMF goes to stdout, which the local CLI keeps for results
        return
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


class PowertoolsMetrics:
    """The Metrics port on powertools (EMF, published when the handler returns)."""

    def count(self, name: str, value: int = 1) -> None:
        if value:
            count_metric(name, value)


def work_items(event: DynamoDBStreamModel) -> list[tuple[str, WorkItem]]:
    """The work items a stream batch inserted; an unreadable record is logged, counted
    (MalformedWorkItems) and skipped."""

    def skipped(sequence: str, why: str) -> None:
        logger.error("unreadable work item skipped", extra={"sequence": sequence, "why": why})
        count_metric("MalformedWorkItems")

    return stream_items(event, skipped)


@lru_cache(maxsize=1)
def ports() -> Ports:
    """The controller's ports on AWS, created once per Lambda container (template.yaml sets
    the environment: tables, queues, EFS, roles). These are the ports of the functions inside
    the VPC, which reach only DynamoDB and S3: their Batch and Step Functions calls are work
    items for the submitter (adapters/handed_on.py)."""
    work = work_queue()
    return Ports(
        store=Retrying(run_store(), aws_errors.classify),
        files=EfsRunFiles(efs_root()),  # confined to the EFS mount ("/" in local mode)
        batch=HandedOnBatch(work),
        orchestrator=HandedOnOrchestrator(work),
        uploads=Retrying(
            S3Uploads(s3_client(), root=efs_root(), settings=upload_settings()),
            aws_errors.classify,
        ),
        metrics=PowertoolsMetrics(),
        sources=UriSources(s3_client, root=efs_root(), internet=functions_internet()),
        remotes=UriRemotes(internet=functions_internet()),
        cache=cache_store(),
        work=work,
        budget=work_budget(),
        default_queue=os.environ.get("TASK_QUEUE") or None,
        default_fallback_queue=os.environ.get("TASK_QUEUE_FALLBACK") or None,
        default_gpu_queue=os.environ.get("TASK_QUEUE_GPU") or None,
        stack_bucket=os.environ.get("STACK_BUCKET") or None,
    )


@lru_cache(maxsize=1)
def outside_ports() -> Ports:
    """The ports of the functions outside the VPC that share the controller's (cancel, the
    reconciler): Batch and Step Functions called directly; they touch no file."""
    return dataclasses.replace(ports(), batch=batch_jobs(), orchestrator=orchestrator())


def batch_jobs() -> Any:
    return Retrying(adapter_from_environment(clients.client("batch")), aws_errors.classify)


def orchestrator() -> StepFunctionsOrchestrator:
    return StepFunctionsOrchestrator(sfn_client())


def use_stores(stores: tuple[RunStore, CacheStore] | None) -> None:
    """The handlers' store and cache from now on (None: DynamoDB again): local_ports.py."""
    local_ports.use_stores(stores)


def use_work(work: WorkQueue | None) -> None:
    """The handlers' work queue from now on (None: the work table again): local_ports.py."""
    local_ports.use_work(work)


def work_queue() -> WorkQueue:
    if local_ports.work is not None:
        return local_ports.work
    from miniwdl_serverless.adapters.work_table import DynamoWork  # (see run_store)

    return Retrying(DynamoWork.from_environment(), aws_errors.classify)  # type: ignore[return-value]


def functions_internet() -> bool:
    """Whether the functions in the VPC can reach the internet (FUNCTIONS_INTERNET: the
    stack's FunctionsInternet; the created VPC has no NAT gateway, so no)."""
    return os.environ.get("FUNCTIONS_INTERNET", "true").lower() == "true"


def work_budget() -> Budget:
    """How much one invocation does before handing the rest on (MSLS_WORK_STEPS)."""
    steps = os.environ.get("MSLS_WORK_STEPS")
    return Budget(steps=int(steps)) if steps else Budget()


@lru_cache(maxsize=1)
def submitter_ports() -> SubmitterPorts:
    """The submitter's: the store, Batch, Step Functions and the cache (no files: it runs
    outside the VPC)."""
    store = Retrying(run_store(), aws_errors.classify)
    return SubmitterPorts(
        store,
        batch_jobs(),
        PowertoolsMetrics(),
        work_queue(),
        cache_store(),
        orchestrator=orchestrator(),
    )


@lru_cache(maxsize=1)
def submit_pacer() -> Pacer:
    """This container's share of the account-wide SubmitJob rate (SUBMIT_RATE per second,
    across SUBMITTER_CONCURRENCY containers: the function's reserved concurrency)."""
    rate = float(os.environ.get("SUBMIT_RATE") or 40)
    return submit_pace(rate, int(os.environ.get("SUBMITTER_CONCURRENCY") or 1))


@lru_cache(maxsize=1)
def run_store() -> RunStore:
    if local_ports.stores is not None:
        return local_ports.stores[0]
    # imported here: the embedded AWS's default mode holds the tables in memory, and the
    # DynamoDB adapters' pynamodb models would be imports a local run never uses
    from miniwdl_serverless.adapters.dynamodb import DynamoStore

    return DynamoStore.from_environment()


@lru_cache(maxsize=1)
def cache_store() -> Any:
    if local_ports.stores is not None:
        return local_ports.stores[1]
    from miniwdl_serverless.adapters.cache_table import DynamoCache  # (see run_store)

    cache = DynamoCache.from_environment()
    return Retrying(cache, aws_errors.classify) if cache is not None else None


@lru_cache(maxsize=1)
def s3_client() -> Any:
    # room for a connection per part in flight, at any UPLOAD_CONCURRENCY (boto3's pool: 10)
    pool = MAX_CONCURRENCY + 2
    from botocore.config import Config

    return clients.client("s3", Config(max_pool_connections=pool))


def upload_settings(check_memory: bool = False) -> UploadSettings:
    """The finish function's transfer settings (template.yaml: UPLOAD_*, FINISH_RESERVE_SECONDS;
    a bad value fails the invocation naming the variable)."""
    return UploadSettings.from_environment(os.environ, check_memory)


def finish_deadline(context: Any) -> Deadline:
    """When Finish must stop uploading: the invocation's remaining time (the Lambda context)
    less the reserve for what Finish does after its uploads. Also where the finish function
    finds out that its parts would not fit in its memory (the other functions upload nothing)."""
    settings = upload_settings(check_memory=True)
    remaining = context.get_remaining_time_in_millis() / 1000
    return Deadline.within(remaining, settings.reserve_seconds)


@lru_cache(maxsize=1)
def sfn_client() -> Any:
    return clients.client("stepfunctions")


def submission_ports() -> SubmissionPorts:
    """The S3 drop's: the stack's bucket and state machine (STATE_MACHINE_ARN)."""
    executions = StepFunctionsExecutions(sfn_client(), os.environ["STATE_MACHINE_ARN"])
    return SubmissionPorts(S3SubmissionStore(s3_client()), executions, PowertoolsMetrics())


def reconcile_ports() -> ReconcilePorts:
    """The reconciler's (outside the VPC): the controller's ports, the stack's state machine's
    running executions (STATE_MACHINE_ARN) and its dead-letter queue (DEAD_LETTER_QUEUE_URL)."""
    from miniwdl_serverless.controller.reconcile import ReconcilePorts

    queue = os.environ.get("DEAD_LETTER_QUEUE_URL")
    letters = SqsDeadLetters(clients.client("sqs"), queue) if queue else None
    runs = StepFunctionsRuns(sfn_client(), os.environ["STATE_MACHINE_ARN"])
    return ReconcilePorts(outside_ports(), runs, letters, reconcile_rules())


def reconcile_rules() -> Rules:
    """The reconciler's waiting times; ``MSLS_RECONCILE_<NAME>_SECONDS`` overrides one (the
    embedded AWS shortens them: its events take milliseconds, not minutes)."""
    defaults = Rules()
    values = {}
    for name in ("replay_after", "resubmit_after", "lost_after", "quiet_after"):
        value = os.environ.get(f"MSLS_RECONCILE_{name.upper()}_SECONDS")
        values[name] = float(value) if value else getattr(defaults, name)
    return Rules(**values)


def forget_clients() -> None:
    """Drop the cached clients and ports (the embedded AWS, entered after a client was made)."""
    cached_ones = (ports, outside_ports, run_store, cache_store, s3_client, sfn_client)
    for cached in (*cached_ones, submitter_ports):
        cached.cache_clear()
