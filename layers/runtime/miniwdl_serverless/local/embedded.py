"""An embedded AWS in process: moto runs the real ASL, our handlers serve the Lambda invocations,
and a local Batch executor runs each job's command with bash and emits the EventBridge
"Batch Job State Change" events that AWS would send.

moto internals are patched here and only here (moto is pinned; see local-test-stack.md).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from miniwdl_serverless.local.project import Project, matches

ACCOUNT = "123456789012"
REGION = "us-east-1"
LOCAL_QUEUE = "miniwdl-serverless-local"
LOCAL_BUCKET = "miniwdl-serverless-local"
LOCAL_STACK = "miniwdl-serverless-local"
LOCAL_ACCESS_POINT = "fsap-0123456789abcdef0"
BATCH_LOG_GROUP = "/aws/batch/job"
TERMINAL = ("SUCCEEDED", "FAILED")


@dataclass
class FakeContext:
    """The Lambda context object the handlers' powertools decorators read."""

    function_name: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _environment(efs_root: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "MSLS_LOCAL": "1",
        "MSLS_EFS_ROOT": efs_root,
        "TASK_QUEUE": LOCAL_QUEUE,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        "POWERTOOLS_SERVICE_NAME": "miniwdl-serverless",
    }


def _envelope(detail_type: str, source: str, resource: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge event as delivered to a target (plain JSON)."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource],
        "detail": detail,
    }
    return json.loads(json.dumps(event))  # type: ignore[no-any-return]


class LocalBatch:
    """Runs submitted Batch jobs with bash, in parallel (bounded), and reports their changes."""

    def __init__(self, workers: int, emit: Callable[[Any], None], log: Callable[[Any, bytes], None] | None = None):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch")
        self.emit = emit
        self.log = log
        self.lock = threading.Lock()
        self.active = 0
        self.running: set[Any] = set()

    def accept(self, job: Any) -> None:
        job.status = "RUNNABLE"
        with self.lock:
            self.active += 1
            self.running.add(job)
        self.pool.submit(self._run, job)

    def idle(self) -> bool:
        with self.lock:
            return self.active == 0

    def _run(self, job: Any) -> None:
        try:
            self._execute(job)
        except Exception:  # never leave a job hanging: report it failed
            logging.getLogger(__name__).exception("local batch job crashed")
            job.job_stopped_reason = "local executor error"
            job._mark_stopped(success=False)
            self.emit(job)
        finally:
            with self.lock:
                self.active -= 1
                self.running.discard(job)

    def _execute(self, job: Any) -> None:
        if job.stop:
            job._mark_stopped(success=False)
            self.emit(job)
            return
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        job.status = "RUNNING"
        self.emit(job)
        properties = job.job_definition.container_properties or {}
        command = job.container_overrides.get("command") or properties.get("command")
        env = dict(os.environ)
        for item in properties.get("environment", []) + job.container_overrides.get("environment", []):
            env[item["name"]] = item["value"]
        env["AWS_BATCH_JOB_ID"] = job.job_id
        with tempfile.TemporaryFile() as output:  # the container's output, as the awslogs driver keeps it
            process = subprocess.Popen(
                list(command or []), stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            while process.poll() is None:
                if job.stop:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    break
                time.sleep(0.02)
            if self.log is not None:
                output.seek(0)
                try:
                    self.log(job, output.read(1 << 20))
                except Exception:  # the logs are a convenience; the job's outcome stands
                    logging.getLogger(__name__).warning("cannot put the job's output in CloudWatch Logs", exc_info=True)
        if job.stop:
            job._mark_stopped(success=False)
        else:
            job.exit_code = process.returncode
            job.job_stopped_reason = "Essential container in task exited"
            job._mark_stopped(success=process.returncode == 0)
        self.emit(job)

    def shutdown(self) -> None:
        with self.lock:
            for job in self.running:
                job.stop = True  # their processes are killed
        self.pool.shutdown(wait=False, cancel_futures=True)


class EmbeddedAWS:
    """moto with the project's tables, functions, state machine and a local Batch queue."""

    def __init__(self, efs_root: str = "/", workers: int | None = None, event_workers: int = 4, server: bool = False):
        self.project = Project()
        self.serve_http = server
        self.server: Any = None
        self.endpoint_url = ""  # http://127.0.0.1:PORT once serving (start_server)
        self.stack_name = ""
        self.bucket = LOCAL_BUCKET
        self._emitted: set[str] = set()  # executions whose end was announced on the bus
        self._watcher: threading.Thread | None = None
        self.efs_root = efs_root
        self.workers = workers or os.cpu_count() or 2
        self.event_pool = ThreadPoolExecutor(max_workers=event_workers, thread_name_prefix="eventbridge")
        self.handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self.patterns: dict[str, list[dict[str, Any]]] = {}
        self._saved_env: dict[str, str | None] = {}
        self._restore: list[Callable[[], None]] = []
        self._pending_events = 0
        self._events_lock = threading.Lock()
        self.state_machine_arn = ""
        self.last_execution_arn = ""
        self.closing = False
        self.refs: dict[str, str] = {}  # template logical id → local physical name (for event patterns)
        self._sequencer = 0
        self.sent: list[dict[str, Any]] = []  # every event put on the bus
        self.delivered: list[dict[str, Any]] = []  # those a handler processed without error
        self.handler_errors: list[BaseException] = []

    # -- lifecycle --
    def __enter__(self) -> EmbeddedAWS:
        for key, value in _environment(self.efs_root).items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        import moto
        from moto.moto_api import state_manager

        self.mock = moto.mock_aws(
            config={"batch": {"use_docker": False}, "lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
        )
        self.mock.start()
        state_manager.set_transition(model_name="batch::job", transition={"progression": "manual", "times": 10**9})
        for name in ("moto", "werkzeug", "botocore", "aws_lambda_powertools"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.batch_executor = LocalBatch(self.workers, self._emit_batch_event, self._batch_log)
        self._patch_moto()
        self._create_resources()
        if self.serve_http:
            self.start_server()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.drain()
        self.closing = True
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.batch_executor.shutdown()
        self.event_pool.shutdown(wait=False, cancel_futures=True)
        for undo in reversed(self._restore):
            undo()
        self.mock.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- moto patches --
    def _patch_moto(self) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.batch_simple.models import BatchSimpleBackend
        from moto.core.botocore_stubber import BotocoreStubber

        embedded = self

        def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> bytes:
            return embedded._invoke(function_name.split(":")[-1], body, response_headers)

        original_accept = BatchSimpleBackend.__dict__["_mark_job_as_finished"]

        def accept(backend: Any, include_start_attempt: bool, job: Any) -> None:
            if job.job_queue.name != LOCAL_QUEUE:  # other queues keep moto's own behaviour
                return original_accept(backend, include_start_attempt, job)  # type: ignore[no-any-return]
            backend.backend._jobs[job.job_id] = job
            embedded.batch_executor.accept(job)

        # DynamoDB applies each request atomically; moto in process does not lock, so requests
        # from concurrent handler threads are serialized here like the real service would.
        dynamodb_lock = threading.RLock()
        original_call = BotocoreStubber.__call__

        def call(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            if ".dynamodb." in event_name:
                with dynamodb_lock:
                    return original_call(stubber, event_name, request, **kwargs)
            return original_call(stubber, event_name, request, **kwargs)

        # the same for requests that come over HTTP (server mode)
        from moto.dynamodb.responses import DynamoHandler

        original_action = DynamoHandler.__dict__["call_action"]

        def call_action(handler: Any) -> Any:
            with dynamodb_lock:
                return original_action(handler)

        # Step Functions notices a task token's callback by polling every 0.5 s; locally, 20 ms.
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback as callback,
        )

        delay = callback._DELAY_SECONDS_SYNC_CONDITION_CHECK
        callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0.02  # type: ignore[misc]
        self._restore.append(lambda: setattr(callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", delay))

        self._patch_transaction_snapshots()
        self._patch_stopped_executions()
        self._patch_s3_notifications()

        for cls, name, new in (
            (LambdaSimpleBackend, "invoke", invoke),
            (BatchSimpleBackend, "_mark_job_as_finished", accept),
            (BotocoreStubber, "__call__", call),
            (DynamoHandler, "call_action", call_action),
        ):
            old = cls.__dict__[name]
            setattr(cls, name, new)
            self._restore.append(lambda cls=cls, name=name, old=old: setattr(cls, name, old))  # type: ignore[misc]

    def _patch_stopped_executions(self) -> None:
        """On AWS a stopped execution is ABORTED for good; moto lets a state that was still
        evaluating (a task failure arriving just after the stop) turn it into FAILED."""
        from moto.stepfunctions.parser.asl.eval.environment import Environment
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

        for name in ("set_error", "set_ended", "set_timed_out"):
            original = Environment.__dict__[name]

            def guarded(env: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                if isinstance(env._program_state, ProgramStopped):
                    return None
                return _original(env, *args, **kwargs)

            setattr(Environment, name, guarded)
            self._restore.append(lambda name=name, original=original: setattr(Environment, name, original))  # type: ignore[misc]

    def _patch_s3_notifications(self) -> None:
        """S3 → EventBridge as AWS does it: a bucket with EventBridge notifications on emits
        "Object Created" for every new object, delivered to the functions whose rule matches.
        (moto's own EventBridge message has the wrong shape and cannot reach Lambda targets.)"""
        from moto.s3 import notifications

        original = notifications.send_event
        embedded = self

        def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
            original(account_id, event_name, bucket, key)
            name = str(getattr(event_name, "value", event_name))  # "s3:ObjectCreated:Put"
            configuration = bucket.notification_configuration
            if configuration is not None and configuration.event_bridge is not None and name.startswith("s3:ObjectCreated:"):
                embedded.put_event(embedded.s3_object_created_event(name, bucket.name, key))

        notifications.send_event = send_event  # type: ignore[assignment]
        self._restore.append(lambda: setattr(notifications, "send_event", original))

    def _patch_transaction_snapshots(self) -> None:
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
                        r: copy_module.deepcopy(item) if (hash_key, r) in keys else item for r, item in partition.items()
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
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
                touched.setdefault(table.name, set()).add((DynamoType(key[table.hash_key_attr]), range_value))
            return original(backend, transact_items)

        dynamodb_models.copy = SimpleNamespace(deepcopy=snapshot, copy=copy_module.copy)  # type: ignore[assignment]
        backend_class.transact_write_items = transact_write_items  # type: ignore[assignment]

        def restore() -> None:
            dynamodb_models.copy = copy_module  # type: ignore[attr-defined]
            backend_class.transact_write_items = original  # type: ignore[method-assign]

        self._restore.append(restore)

    def _invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        handler = self.handlers[function_name]
        try:
            result = handler(json.loads(body or "{}"), FakeContext(function_name, aws_request_id=str(uuid.uuid4())))
        except Exception as exn:  # as Lambda reports an unhandled error: errorType → States error
            self.handler_errors.append(exn)
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exn).__name__, "errorMessage": str(exn)}).encode()
        return json.dumps(result).encode()

    # -- resources from template.yaml --
    def _create_resources(self) -> None:
        import boto3

        from miniwdl_serverless import store

        dynamodb = boto3.client("dynamodb")
        names = {}
        for table in self.project.tables():
            name = f"local-{table.logical_id}"
            names[table.logical_id] = name
            dynamodb.create_table(
                TableName=name, KeySchema=table.key_schema, AttributeDefinitions=table.attributes, BillingMode="PAY_PER_REQUEST"
            )
        runs, jobs = names[self.project.table_for_env("RUNS_TABLE")], names[self.project.table_for_env("JOBS_TABLE")]
        os.environ["RUNS_TABLE"], os.environ["JOBS_TABLE"] = runs, jobs
        self._saved_env.setdefault("RUNS_TABLE", None)
        self._saved_env.setdefault("JOBS_TABLE", None)
        store.configure(runs, jobs)

        role = boto3.client("iam").create_role(RoleName="local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch = boto3.client("batch")
        environment = batch.create_compute_environment(
            computeEnvironmentName="local", type="UNMANAGED", state="ENABLED", serviceRole=role
        )
        batch.create_job_queue(
            jobQueueName=LOCAL_QUEUE, state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=LOCAL_BUCKET)
        self.queue_arn = batch.describe_job_queues(jobQueues=[LOCAL_QUEUE])["jobQueues"][0]["jobQueueArn"]
        self.tables = {"runs": runs, "jobs": jobs}
        boto3.client("logs").create_log_group(logGroupName=BATCH_LOG_GROUP)
        for logical_id, props in self.project.buckets().items():  # all of them are the local bucket
            self.refs[logical_id] = LOCAL_BUCKET
            if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=LOCAL_BUCKET, VersioningConfiguration={"Status": "Enabled"})
            notification = props.get("NotificationConfiguration") or {}
            if (notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled"):
                s3.put_bucket_notification_configuration(
                    Bucket=LOCAL_BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
                )

        awslambda = boto3.client("lambda")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("app.py", "def handler(event, context):\n    return event\n")
        for function in self.project.functions():
            module_name, attribute = function.handler.rsplit(".", 1)
            path = function.code_dir / f"{module_name}.py"
            spec = importlib.util.spec_from_file_location(f"msls_functions.{function.logical_id}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.handlers[function.logical_id] = getattr(module, attribute)
            self.patterns[function.logical_id] = [self._local_pattern(p) for p in function.event_patterns]
            awslambda.create_function(
                FunctionName=function.logical_id, Runtime="python3.11", Role=role, Handler=function.handler,
                Code={"ZipFile": archive.getvalue()},
                Environment={"Variables": {"MSLS_EFS_ROOT": self.efs_root, "EFS_ACCESS_POINT_ID": LOCAL_ACCESS_POINT}},
            )

        def resolve(value: Any) -> Any:
            if isinstance(value, dict) and "GetAtt" in value:
                logical_id = value["GetAtt"].split(".")[0]
                return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
            if isinstance(value, dict) and "Ref" in value:
                return self.project.parameter_default(value["Ref"])
            return value

        sfn = boto3.client("stepfunctions")
        self.state_machine_arn = sfn.create_state_machine(
            name="RunWorkflow", definition=json.dumps(self.project.definition(resolve)),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/local",
        )["stateMachineArn"]
        self.sfn = sfn
        self._saved_env.setdefault("STATE_MACHINE_ARN", os.environ.get("STATE_MACHINE_ARN"))
        os.environ["STATE_MACHINE_ARN"] = self.state_machine_arn  # the submit function starts executions

    # -- EventBridge --
    def batch_event(self, job: Any) -> dict[str, Any]:
        """The "Batch Job State Change" event as EventBridge delivers it (detail = DescribeJobs)."""
        detail = job.describe()
        detail["jobQueue"] = job.job_queue.arn
        if job.exit_code is not None and job.status in TERMINAL:
            detail.setdefault("container", {})["exitCode"] = job.exit_code
        if job.job_stopped_reason:
            detail["statusReason"] = job.job_stopped_reason
        return _envelope("Batch Job State Change", "aws.batch", job.arn, detail)

    def execution_event(self, description: dict[str, Any]) -> dict[str, Any]:
        """The "Step Functions Execution Status Change" event EventBridge delivers at the end."""

        def millis(value: Any) -> int | None:
            return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

        detail = {
            "executionArn": description["executionArn"],
            "stateMachineArn": description["stateMachineArn"],
            "name": description["name"],
            "status": description["status"],
            "startDate": millis(description.get("startDate")),
            "stopDate": millis(description.get("stopDate")),
            "input": description.get("input"),
            "output": description.get("output"),
            "error": description.get("error"),
            "cause": description.get("cause"),
        }
        return _envelope("Step Functions Execution Status Change", "aws.states", description["executionArn"], detail)

    def s3_object_created_event(self, event_name: str, bucket: str, key: Any) -> dict[str, Any]:
        """The "Object Created" event S3 sends to EventBridge (key as stored, not URL-encoded)."""
        reasons = {"Put": "PutObject", "Post": "POST Object", "Copy": "CopyObject", "CompleteMultipartUpload": "CompleteMultipartUpload"}
        with self._events_lock:
            self._sequencer += 1
            sequencer = f"{time.time_ns() // 1000:014X}{self._sequencer:04X}"
        obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.strip('"')}
        if key.version_id and key.version_id != "null":  # unversioned buckets send no version-id
            obj["version-id"] = key.version_id
        obj["sequencer"] = sequencer
        detail = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": reasons.get(event_name.rsplit(":", 1)[-1], "PutObject"),
        }
        return _envelope("Object Created", "aws.s3", f"arn:aws:s3:::{bucket}", detail)

    def _emit_batch_event(self, job: Any) -> None:
        self.put_event(self.batch_event(job))

    @functools.cached_property
    def _logs_client(self) -> Any:  # one client for every finished job (boto3 clients are thread-safe)
        import boto3

        return boto3.client("logs")

    def _batch_log(self, job: Any, output: bytes) -> None:
        """A finished job's output in CloudWatch Logs, where the awslogs driver puts it."""
        if self.closing or not job.log_stream_name:
            return
        logs = self._logs_client
        try:
            logs.create_log_stream(logGroupName=BATCH_LOG_GROUP, logStreamName=job.log_stream_name)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        now = int(time.time() * 1000)
        lines = [line or " " for line in output.decode(errors="replace").splitlines()]
        events = [{"timestamp": now, "message": line} for line in lines[-5000:]]
        if events:
            logs.put_log_events(logGroupName=BATCH_LOG_GROUP, logStreamName=job.log_stream_name, logEvents=events)

    # -- server mode: the same AWS over HTTP, for CLIs in other processes --
    def start_server(self) -> str:
        """Serve this embedded AWS on 127.0.0.1 (a free port) and create a CloudFormation stack
        whose outputs name its resources, as a deployed stack's do. Returns the endpoint URL."""
        if self.server is not None:
            return self.endpoint_url
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._create_stack()
        self._watcher = threading.Thread(target=self._watch_executions, name="execution-events", daemon=True)
        self._watcher.start()
        return self.endpoint_url

    def stack_outputs(self) -> dict[str, str]:
        return {
            "StateMachineArn": self.state_machine_arn,
            "BucketName": self.bucket,
            "RunsTableName": self.tables["runs"],
            "JobsTableName": self.tables["jobs"],
            "TaskQueueArn": self.queue_arn,
            "TaskQueueFallbackArn": "",
            "LogsFunctionName": "LogsFunction",
            "AccessPointId": LOCAL_ACCESS_POINT,
        }

    def _create_stack(self) -> None:
        import boto3

        outputs = {k: {"Value": v} for k, v in self.stack_outputs().items() if v}
        template = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": outputs,
        }
        self.stack_name = LOCAL_STACK
        with warnings.catch_warnings():  # moto does not model the placeholder resource; only Outputs matter
            warnings.simplefilter("ignore")
            boto3.client("cloudformation").create_stack(StackName=self.stack_name, TemplateBody=json.dumps(template))
        self.sfn.tag_resource(
            resourceArn=self.state_machine_arn, tags=[{"key": "aws:cloudformation:stack-name", "value": self.stack_name}]
        )

    def _running_executions(self) -> set[str]:
        pages = self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")
        return {e["executionArn"] for page in pages for e in page["executions"]}

    def _watch_executions(self) -> None:
        """EventBridge's "Execution Status Change" for executions that end while the server runs
        (stopped, timed out, failed, or started over HTTP): their runs reach the cancel
        function, as on AWS. Watches the running set, so it costs little per tick."""
        running: set[str] = set()
        while not self.closing:
            try:
                now = self._running_executions()
                for arn in running - now:
                    if arn not in self._emitted:
                        self._announce_end(self.sfn.describe_execution(executionArn=arn))
                running = now
            except Exception:  # noqa: S110 (the bus keeps going; the next tick retries)
                if self.closing:
                    return
            time.sleep(0.3)

    def _announce_end(self, description: dict[str, Any]) -> None:
        with self._events_lock:
            if description["executionArn"] in self._emitted:
                return
            self._emitted.add(description["executionArn"])
        self.put_event(self.execution_event(description))

    def put_event(self, event: dict[str, Any]) -> None:
        """Deliver to every function whose rule matches, asynchronously, like EventBridge."""
        if self.closing:
            return
        self.sent.append(event)
        for name, patterns in self.patterns.items():
            if any(matches(p, event) for p in patterns):
                with self._events_lock:
                    self._pending_events += 1
                self.event_pool.submit(self._deliver, name, event)

    def _local_pattern(self, pattern: dict[str, Any]) -> dict[str, Any]:
        detail = {k: v for k, v in pattern.get("detail", {}).items() if k != "jobQueue"}  # one local queue
        return self._resolve_refs({**pattern, "detail": detail})

    def _resolve_refs(self, value: Any) -> Any:
        """{Ref: Bucket} → the local bucket's name (other references stay, and match anything)."""
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in self.refs:
                return self.refs[value["Ref"]]
            return {k: self._resolve_refs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve_refs(v) for v in value]
        return value

    def _deliver(self, name: str, event: dict[str, Any]) -> None:
        try:
            self.handlers[name](event, FakeContext(name, aws_request_id=str(uuid.uuid4())))
            self.delivered.append(event)
        except Exception as exn:
            self.handler_errors.append(exn)
            logging.getLogger(__name__).exception("event handler %s failed", name)
        finally:
            with self._events_lock:
                self._pending_events -= 1

    def drain(self, timeout: float = 30.0) -> None:
        """Let in-flight events finish (late RUNNING/terminated events) before AWS goes away."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._events_lock:
                pending = self._pending_events
            if pending == 0 and self.batch_executor.idle():
                return
            time.sleep(0.02)

    # -- running --
    def start(self, execution_input: dict[str, Any], name: str | None = None) -> str:
        name = name or f"run-{uuid.uuid4().hex[:12]}"
        arn = self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input))
        self.last_execution_arn = str(arn["executionArn"])
        return self.last_execution_arn

    def wait(self, execution_arn: str, progress: Callable[[], None] | None = None, poll: float = 0.1) -> dict[str, Any]:
        while True:
            description = self.sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                self._announce_end(description)
                return dict(description)
            if progress is not None:
                progress()
            time.sleep(poll)
