"""Every patch of moto internals the embedded AWS needs, each a function that applies one patch
and returns its undo (call the undos in reverse order to put moto back).

moto is pinned (``moto[server]==5.2.5`` in pyproject.toml: these patches follow that version's
internals) and this is the one place its internals are touched:
moto is imported inside each function, once the embedded AWS has started its mock. Besides the
patches, ``table_items`` and ``put_table_items`` read and fill a table's items directly (the
local state directory's load and save: through boto3 a few thousand items take seconds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Undo = Callable[[], None]

# Held around every DynamoDB request once patch_dynamodb_lock is applied, and around the direct
# reads and writes of table_items / put_table_items.
DYNAMODB_LOCK = threading.RLock()


def _replace(cls: Any, name: str, new: Any) -> Undo:
    """Set ``cls.name`` to ``new``; the undo puts back what the class itself defined."""
    old = cls.__dict__[name]
    setattr(cls, name, new)
    return lambda: setattr(cls, name, old)


def shared_model_loader() -> Undo:
    """moto reads a service's botocore model (the first request of each service) with a new
    loader each time, and a new loader lists botocore's ~400 service directories again (~30 ms
    a service); here every such read shares one of moto's loaders, which lists them once."""
    from moto.core import loaders, utils

    loader = loaders.create_loader()
    old = utils.create_loader
    utils.create_loader = lambda: loader  # type: ignore[assignment]
    return lambda: setattr(utils, "create_loader", old)


def shared_session() -> Undo:
    """moto lists a service's regions (each backend's first use) through a boto3 session of its
    own, which reads botocore's endpoint data (~1 MB of JSON, ~60 ms) a second time: here
    through boto3's default session, which the clients read it in."""
    import boto3
    from moto.core.base_backend import AccountSpecificBackend

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    return _replace(AccountSpecificBackend, "get_session", classmethod(lambda _cls: session))


def lazy_batch_package() -> Undo:
    """``moto.batch`` without running its ``__init__`` (which imports its models, and they
    moto's EC2 and ECS: most of a second) until something asks for one of its names. Step
    Functions' ASL interpreter imports ``moto.batch.utils`` (its Batch integration's job
    statuses), so every embedded AWS would pay for it; the default mode has no moto Batch."""
    import importlib
    import importlib.util
    import sys

    if "moto.batch" in sys.modules:
        return lambda: None
    spec = importlib.util.find_spec("moto.batch")
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)

    def attribute(name: str) -> Any:  # PEP 562: what the real __init__ would have bound
        if name.startswith("__"):
            raise AttributeError(name)
        models = importlib.import_module("moto.batch.models")
        return getattr(models, name)

    package.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["moto.batch"] = package
    return lambda: None  # it stays: it behaves as the real package once a name is asked


def patch_lambda_invoke(invoke: Callable[[str, Any, dict[str, str]], bytes]) -> Undo:
    """Lambda invocations (the state machine's tasks) call ``invoke(function name, request body,
    response headers)`` instead of moto's stub; it returns the response payload."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def hook(  # noqa: PLR0913 - moto's LambdaSimpleBackend.invoke signature
        backend: Any,  # noqa: ARG001
        function_name: str,
        qualifier: Any,  # noqa: ARG001
        body: Any,
        headers: Any,  # noqa: ARG001
        response_headers: Any,
    ) -> bytes:
        return invoke(function_name.split(":")[-1], body, response_headers)

    return _replace(LambdaSimpleBackend, "invoke", hook)


def patch_batch_jobs(
    queue: str,
    accept: Callable[[Any], None],
    accept_array: Callable[[Any, list[Any]], None] | None = None,
) -> Undo:
    """Jobs submitted to ``queue`` go to ``accept`` (the local executor) instead of being
    finished by moto; other queues keep moto's own behaviour. An array job (moto makes its
    children ``<parent>:<index>`` first, then the parent) goes to ``accept_array(parent,
    children)``, or without it each child to ``accept``."""
    from moto.batch_simple.models import BatchSimpleBackend

    original = BatchSimpleBackend.__dict__["_mark_job_as_finished"]
    lock = threading.Lock()
    children: dict[str, list[Any]] = {}  # parent id → its children, until the parent comes

    def hook(backend: Any, include_start_attempt: bool, job: Any) -> None:
        if job.job_queue.name != queue:
            return original(backend, include_start_attempt, job)  # type: ignore[no-any-return]
        backend.backend._jobs[job.job_id] = job
        properties = job.array_properties or {}
        if "index" in properties:
            with lock:
                children.setdefault(job.job_id.rsplit(":", 1)[0], []).append(job)
            return None
        if "size" in properties:
            with lock:
                kids = children.pop(job.job_id, [])
            if accept_array is not None:
                accept_array(job, kids)
            else:
                for kid in kids:
                    accept(kid)
            return None
        accept(job)
        return None

    return _replace(BatchSimpleBackend, "_mark_job_as_finished", hook)


def patch_dynamodb_lock() -> Undo:
    """DynamoDB applies each request atomically; moto in process does not lock, so requests
    from concurrent handler threads are serialized here like the real service would, both
    in process (BotocoreStubber) and over HTTP (server mode, DynamoHandler)."""
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.dynamodb.responses import DynamoHandler

    dynamodb_lock = DYNAMODB_LOCK
    original_call = BotocoreStubber.__call__

    def call(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if ".dynamodb." in event_name:
            with dynamodb_lock:
                return original_call(stubber, event_name, request, **kwargs)
        return original_call(stubber, event_name, request, **kwargs)

    original_action = DynamoHandler.__dict__["call_action"]

    def call_action(handler: Any) -> Any:
        with dynamodb_lock:
            return original_action(handler)

    undo_call = _replace(BotocoreStubber, "__call__", call)
    undo_action = _replace(DynamoHandler, "call_action", call_action)

    def undo() -> None:
        undo_action()
        undo_call()

    return undo


def patch_callback_delay(seconds: float = 0.02) -> Undo:
    """Step Functions notices a task token's callback by polling every 0.5 s; locally, 20 ms."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )

    delay = callback._DELAY_SECONDS_SYNC_CONDITION_CHECK
    callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = seconds  # type: ignore[misc]
    return lambda: setattr(callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", delay)


def patch_stopped_executions() -> Undo:
    """On AWS a stopped execution is ABORTED for good; moto lets a state that was still
    evaluating (a task failure arriving just after the stop) turn it into FAILED."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    undos: list[Undo] = []
    for name in ("set_error", "set_ended", "set_timed_out"):
        original = Environment.__dict__[name]

        def guarded(env: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if isinstance(env._program_state, ProgramStopped):
                return None
            return _original(env, *args, **kwargs)

        undos.append(_replace(Environment, name, guarded))

    def undo() -> None:
        for each in reversed(undos):
            each()

    return undo


def patch_stop_is_immediate() -> Undo:
    """On AWS an execution is ABORTED when StopExecution returns; moto's parser marks it only
    when the execution's worker notices the stop (a moment later, or after a Lambda it waits
    on returns), so a DescribeExecution right after the stop could still say RUNNING."""
    import datetime

    from moto.stepfunctions.models import StepFunctionBackend
    from moto.stepfunctions.parser.api import ExecutionStatus

    original = StepFunctionBackend.__dict__["stop_execution"]

    def stop_execution(backend: Any, execution_arn: str) -> Any:
        execution = original(backend, execution_arn)
        if getattr(execution, "exec_status", None) == ExecutionStatus.RUNNING:
            execution.exec_status = ExecutionStatus.ABORTED
            execution.stop_date = datetime.datetime.now(tz=datetime.timezone.utc)
        return execution

    return _replace(StepFunctionBackend, "stop_execution", stop_execution)


def patch_s3_notifications(object_created: Callable[[str, str, Any], None]) -> Undo:
    """S3 → EventBridge as AWS does it: a bucket with EventBridge notifications on calls
    ``object_created(event name, bucket name, key)`` for every new object, to put its
    "Object Created" event on the bus. (moto's own EventBridge message has the wrong shape and
    cannot reach Lambda targets.)"""
    from moto.s3 import notifications

    original = notifications.send_event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        original(account_id, event_name, bucket, key)
        name = str(getattr(event_name, "value", event_name))  # "s3:ObjectCreated:Put"
        configuration = bucket.notification_configuration
        if (
            configuration is not None
            and configuration.event_bridge is not None
            and name.startswith("s3:ObjectCreated:")
        ):
            object_created(name, bucket.name, key)

    notifications.send_event = send_event  # type: ignore[assignment]
    return lambda: setattr(notifications, "send_event", original)


def patch_transaction_snapshots() -> Undo:
    """moto snapshots the whole table (once per item!) for a transaction's rollback, which
    makes every completion O(size of the run). Snapshot only the items the transaction
    names; the rest of the table cannot change under the DynamoDB lock."""
    import copy as copy_module
    from collections import defaultdict
    from types import SimpleNamespace

    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched: dict[str, set[tuple[Any, Any]]] = {}
    backend_class = dynamodb_models.DynamoDBBackend
    original = backend_class.transact_write_items

    def snapshot(table: Any, memo: Any = None) -> Any:
        if not isinstance(table, dynamodb_models.Table):
            return copy_module.deepcopy(table, memo)
        keys = touched.get(table.name, set())
        hashes = {h for h, _ in keys}
        clone = copy_module.copy(table)
        clone.items = defaultdict(dict)
        for hash_key, partition in table.items.items():
            if hash_key not in hashes:
                clone.items[hash_key] = partition
            elif table.has_range_key:
                clone.items[hash_key] = {
                    r: copy_module.deepcopy(item) if (hash_key, r) in keys else item
                    for r, item in partition.items()
                }
            else:
                clone.items[hash_key] = copy_module.deepcopy(partition)
        return clone

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> Any:
        touched.clear()
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in key:
                continue
            range_value = (
                DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            )
            hash_value = DynamoType(key[table.hash_key_attr])
            touched.setdefault(table.name, set()).add((hash_value, range_value))
        return original(backend, transact_items)

    snapshots = SimpleNamespace(deepcopy=snapshot, copy=copy_module.copy)
    dynamodb_models.copy = snapshots  # type: ignore[assignment]
    backend_class.transact_write_items = transact_write_items  # type: ignore[assignment]

    def restore() -> None:
        dynamodb_models.copy = copy_module  # type: ignore[attr-defined]
        backend_class.transact_write_items = original  # type: ignore[method-assign]

    return restore


_LOGS_LOCK = threading.Lock()  # moto's log streams are not thread-safe (its own TODO says)


def put_job_log(  # noqa: PLR0913 - where (account, region, group, stream) and what
    account: str, region: str, group: str, stream: str, events: list[dict[str, Any]]
) -> None:
    """A job's output as the awslogs driver leaves it: its log stream (made even when empty),
    with these events, put into moto's CloudWatch Logs directly (through boto3 a CreateLogStream
    costs ~10 ms of moto's request handling, once per job)."""
    from moto.logs.models import logs_backends

    backend = logs_backends[account][region]
    with _LOGS_LOCK:
        backend.ensure_log_stream(group, stream)
        if events:
            backend.put_log_events(group, stream, events)


def _table(account: str, region: str, name: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[account][region].get_table(name)


def has_tables(account: str, region: str) -> bool:
    """Whether moto's DynamoDB holds any table (without starting its backend if never used)."""
    import sys

    models = sys.modules.get("moto.dynamodb.models")
    if models is None:
        return False
    backends = models.dynamodb_backends
    return account in backends and bool(backends[account][region].tables)


def table_items(account: str, region: str, name: str) -> list[dict[str, Any]]:
    """Every item of a table, in DynamoDB JSON (what GetItem returns as ``Item``)."""
    with DYNAMODB_LOCK:
        return [item.to_json()["Attributes"] for item in _table(account, region, name).all_items()]


def put_table_items(account: str, region: str, name: str, items: list[dict[str, Any]]) -> None:
    """Put items (DynamoDB JSON) into a table, replacing any with the same key. They were
    DynamoDB's items when they were saved, so moto's checks are skipped: its per-attribute size
    check (quadratic in the number of attributes), as moto's own copy of an item skips it, and
    its generic conversion of each value (a few times slower than ``_value`` here)."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    def value(typed: dict[str, Any]) -> DynamoType:
        ((kind, inner),) = typed.items()
        converted = DynamoType.__new__(DynamoType)
        converted.type = kind
        if kind == "L":
            inner = [value(v) for v in inner]
        elif kind == "M":
            inner = {k: value(v) for k, v in inner.items()}
        converted.value = inner
        return converted

    with DYNAMODB_LOCK:
        table = _table(account, region, name)
        hash_name, range_name = table.hash_key_attr, table.range_key_attr
        for attributes in items:
            item: Any = Item.__new__(Item)
            values = LimitedSizeDict.__new__(LimitedSizeDict)
            dict.__init__(values, ((k, value(v)) for k, v in attributes.items()))
            item.attrs = values
            item.hash_key = values[hash_name]
            item.range_key = values[range_name] if range_name else None
            if range_name:
                table.items[item.hash_key][item.range_key] = item
            else:
                table.items[item.hash_key] = item
