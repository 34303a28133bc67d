"""An embedded AWS in process: the real ASL runs (on the in-process Step Functions by default,
on moto's in full and server mode), our handlers serve the Lambda invocations, and a local
Batch executor runs each job's command with bash and emits the EventBridge
"Batch Job State Change" events that AWS would send.

``EmbeddedAWS`` wires the pieces together: ``moto_patches`` (every patch of moto internals),
``resources`` (what template.yaml declares), ``batch_service`` and ``step_functions`` (the
default mode's Batch and Step Functions, in process), ``batch_executor`` (the local Batch
queue) and ``event_bus`` (EventBridge); with a state directory, ``persistence`` loads its
tables at the start and saves them at the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.core.containers import Engine
from miniwdl_serverless.local import batch_service, in_process, moto_patches
from miniwdl_serverless.local.asl import StatesError
from miniwdl_serverless.local.batch_executor import BATCH_LOG_GROUP, JobLogs, LocalBatch
from miniwdl_serverless.local.event_bus import TERMINAL, EventBus
from miniwdl_serverless.local.memory_tables import MemoryTables, MotoTables, Tables, TableSpec
from miniwdl_serverless.local.persistence import Persistence
from miniwdl_serverless.local.project import Project
from miniwdl_serverless.local.resources import (
    ACCOUNT,
    LOCAL_ACCESS_POINT,
    LOCAL_BUCKET,
    LOCAL_QUEUE,
    LOCAL_STACK,
    REGION,
    Handler,
    create_batch_queue,
    create_functions,
    create_resources,
    create_stack,
    create_state_machine,
    table_name,
)
from miniwdl_serverless.local.state import StateDir, deferred_signals
from miniwdl_serverless.local.step_functions import SERVICE as STEP_FUNCTIONS
from miniwdl_serverless.local.step_functions import HandedOver, LocalStepFunctions
from miniwdl_serverless.local.work_stream import LocalWorkStream

# miniwdl's [download_cache] dir: STATE_DIR/downloads for the functions, unless the user set it
DOWNLOAD_CACHE_ENV = "MINIWDL__DOWNLOAD_CACHE__DIR"
LAMBDA_DOWNLOAD_LIMIT_ENV = "MINIWDL__SERVERLESS__LAMBDA_DOWNLOAD_LIMIT"

# Where the template's tables are held: the in-memory store (the default: moto's DynamoDB
# costs ~10 ms a request, most of a local run's time), or moto's DynamoDB ("full").
MODES = ("memory", "full")
STATUS_POLL_SECONDS = 0.01  # how often `wait` reads the execution's status
TABLE_ROLES = {"runs": "RUNS_TABLE", "jobs": "JOBS_TABLE", "cache": "CACHE_TABLE"}

__all__ = [
    "ACCOUNT",
    "BATCH_LOG_GROUP",
    "LOCAL_ACCESS_POINT",
    "LOCAL_BUCKET",
    "LOCAL_QUEUE",
    "LOCAL_STACK",
    "REGION",
    "TERMINAL",
    "EmbeddedAWS",
    "EventBus",
    "FakeContext",
    "LocalBatch",
]


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
        "STACK_BUCKET": LOCAL_BUCKET,
        "STACK_NAME": LOCAL_STACK,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        "POWERTOOLS_SERVICE_NAME": "miniwdl-serverless",
        # the reconciler's waiting times, for events that take milliseconds here, not minutes
        # (resubmitting and failing stay slower than a test's own redelivery)
        "SUBMIT_RATE": "1000000",  # no Batch quota to keep under here
        "MSLS_RECONCILE_REPLAY_AFTER_SECONDS": "5",
        "MSLS_RECONCILE_RESUBMIT_AFTER_SECONDS": "60",
        "MSLS_RECONCILE_LOST_AFTER_SECONDS": "60",
        "MSLS_RECONCILE_QUIET_AFTER_SECONDS": "60",
    }


class EmbeddedAWS:
    """moto with the project's tables, functions, state machine and a local Batch queue."""

    def __init__(  # noqa: PLR0913 - the embedded AWS's settings, all with defaults
        self,
        efs_root: str = "/",
        workers: int | None = None,
        event_workers: int = 4,
        server: bool = False,
        state: StateDir | None = None,
        mode: str = "memory",
        engine: Engine | None = None,
    ):
        """``state``: the state directory whose tables are loaded at the start and saved at the
        end (None: nothing is kept, as in the tests). ``mode``: one of MODES. ``engine``: the
        container engine tasks run in (None: bash, local/batch_executor.py)."""
        if mode not in MODES:
            raise ValueError(f"the embedded AWS is one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self._tables_in_moto = False
        self.project = Project()
        self.state = state
        self.persistence: Persistence | None = None
        self.serve_http = server
        self.server: Any = None
        self.endpoint_url = ""  # http://127.0.0.1:PORT once serving (start_server)
        self.stack_name = ""
        self.bucket = LOCAL_BUCKET
        self.efs_root = efs_root
        self.engine = engine
        self.drain_seconds = 30.0  # how long leaving waits for events and jobs in flight
        self.workers = workers or os.cpu_count() or 2
        self.events = EventBus(event_workers, self._call)
        self.handlers: dict[str, Handler] = {}
        self.batch_service: batch_service.LocalBatchService | None = None
        self.step_functions: LocalStepFunctions | None = None  # None: moto's
        self._saved_env: dict[str, str | None] = {}
        self._restore: list[moto_patches.Undo] = []
        self.state_machine_arn = ""
        self.last_execution_arn = ""
        self.handler_errors: list[BaseException] = []
        self.reconcile_seconds: float | None = 2.0  # how often `wait` runs the reconciler
        self.reconciled: list[dict[str, Any]] = []  # the reconciler's reports, newest last
        self._reconciled_at = time.monotonic()

    # the bus's state, under the names it had here
    @property
    def sent(self) -> list[dict[str, Any]]:  # every event put on the bus
        return self.events.sent

    @property
    def delivered(self) -> list[dict[str, Any]]:  # those a handler processed without error
        return self.events.delivered

    # -- lifecycle --
    def __enter__(self) -> EmbeddedAWS:
        environment = _environment(self.efs_root)
        if self.state is not None and not os.environ.get(DOWNLOAD_CACHE_ENV):
            environment[DOWNLOAD_CACHE_ENV] = str(self.state.downloads)
        if not os.environ.get(LAMBDA_DOWNLOAD_LIMIT_ENV):  # no Lambda time limit locally, and
            environment[LAMBDA_DOWNLOAD_LIMIT_ENV] = str(1 << 62)  # no aws CLI image: in process
        for key, value in environment.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        import moto

        self.mock = moto.mock_aws(
            config={
                "batch": {"use_docker": False},
                "lambda": {"use_docker": False},
                "stepfunctions": {"execute_state_machine": True},
            }
        )
        self.mock.start()
        try:
            self._enter_started()
        except BaseException:  # nothing of this run stays patched, mocked or set in os.environ
            if self.server is not None:
                self.server.stop()
                self.server = None
            if hasattr(self, "batch_executor"):
                self.batch_executor.shutdown()
            self.events.shutdown()
            self._undo()
            raise
        return self

    def _enter_started(self) -> None:
        for name in ("moto", "werkzeug", "botocore", "aws_lambda_powertools"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.batch_executor = LocalBatch(
            self.workers,
            self.events.emit_batch_event,
            JobLogs(lambda: self.events.closing),
            self.engine,
        )
        self._patch_moto()
        self._create_resources()
        if self.state is not None:
            self.persistence = Persistence(self.state, self._tables())
        self._load_state()
        if self.serve_http:
            self.start_server()

    def __exit__(self, *exc: Any) -> None:
        self.drain(self.drain_seconds)
        self.events.close()
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.events.join_watcher(timeout=5)
        self.batch_executor.shutdown()
        self.events.shutdown()
        with deferred_signals():  # Ctrl-C now comes after the state is saved and moto stopped
            self._save_state()
            self._undo()

    def _undo(self) -> None:
        """Undo what entering did: moto's patches and mock, the handlers' ports, os.environ."""
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()
        from miniwdl_serverless.handlers import local_ports

        local_ports.use_work(None)
        batch_service.serve(None)
        in_process.serve(STEP_FUNCTIONS, None)
        if self.mode == "memory":
            local_ports.use_stores(None)
        self.mock.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _load_state(self) -> None:
        if self.persistence is None:
            return
        try:
            self.persistence.load()
        except Exception as exn:  # run on, saving nothing rather than losing what is kept
            self.persistence.state.warn(
                f"not using the local state in {self.persistence.state.path}: {exn}"
            )
            self.persistence = None

    def _save_state(self) -> None:
        """Save the tables and executions (also after a failure or Ctrl-C: __exit__ runs)."""
        if self.persistence is None:
            return
        try:
            self.persistence.save(self.sfn, self.state_machine_arn, self.tables)
        except Exception as exn:  # the run's own result stands
            self.persistence.state.warn(
                f"cannot save the local state in {self.persistence.state.path}: {exn}"
            )

    def _patch_moto(self) -> None:
        events = self.events
        for patch in (
            moto_patches.shared_model_loader,
            moto_patches.shared_session,
            moto_patches.lazy_batch_package,
            lambda: moto_patches.patch_s3_notifications(
                lambda name, bucket, key: events.put_event(
                    events.s3_object_created_event(name, bucket, key)
                )
            ),
        ):
            self._restore.append(patch())
        if self.mode == "full":  # (importing moto's DynamoDB takes time the default saves)
            self._restore.append(moto_patches.patch_transaction_snapshots())
            self._restore.append(moto_patches.patch_dynamodb_lock())

    def _step_functions_in_moto(self) -> None:
        """moto's Step Functions (full mode, and server mode, where CLIs in other processes
        call it over HTTP): it runs the ASL with moto's interpreter and invokes the functions
        through moto's Lambda, whose invocations reach the handlers here."""
        for patch in (
            moto_patches.patch_callback_delay,
            moto_patches.patch_stopped_executions,
            moto_patches.patch_stop_is_immediate,
            lambda: moto_patches.patch_lambda_invoke(self._invoke),
        ):
            self._restore.append(patch())
        handed_over = HandedOver(self.step_functions) if self.step_functions else None
        self.step_functions = None
        in_process.serve(STEP_FUNCTIONS, handed_over)  # (None: moto's for everything)

    def _step_functions_in_process(self) -> None:
        """The in-process Step Functions (the default mode): every boto3 client reaches it."""
        self.step_functions = LocalStepFunctions(ACCOUNT, REGION, self._invoke_in_process)
        in_process.serve(STEP_FUNCTIONS, self.step_functions)

    def _batch_in_moto(self) -> None:
        """moto's Batch, its jobs on the local queue run by the local executor (full mode, and
        server mode, where CLIs in other processes call Batch over HTTP)."""
        from moto.moto_api import state_manager

        state_manager.set_transition(
            model_name="batch::job", transition={"progression": "manual", "times": 10**9}
        )
        executor = self.batch_executor
        self._restore.append(
            moto_patches.patch_batch_jobs(LOCAL_QUEUE, executor.accept, executor.accept_array)
        )
        self.batch_service = None
        batch_service.serve(None)

    def _batch_in_process(self) -> None:
        """The in-process Batch (the default mode): every boto3 Batch client reaches it."""
        executor = self.batch_executor
        self.batch_service = batch_service.LocalBatchService(executor.accept, executor.accept_array)
        batch_service.serve(self.batch_service)

    def _create_resources(self) -> None:
        batch_in_moto = self.mode == "full" or self.serve_http
        if batch_in_moto:
            self._batch_in_moto()
            self._step_functions_in_moto()
        else:
            self._batch_in_process()
            self._step_functions_in_process()
        resources = create_resources(
            self.project, self.efs_root, self.mode == "full", batch_in_moto, batch_in_moto
        )
        for key, value in resources.environment.items():
            self._saved_env.setdefault(key, value)
        self.tables = resources.tables
        self.store: Any  # for tests and the CLI: the handlers' store
        if self.mode == "full":
            from miniwdl_serverless.adapters.dynamodb import DynamoStore

            self.store = DynamoStore(self.tables["runs"], self.tables["jobs"])
        else:
            from miniwdl_serverless.adapters.memory import MemoryCache, MemoryStore
            from miniwdl_serverless.handlers import local_ports

            self.store, self.cache = MemoryStore(), MemoryCache()
            local_ports.use_stores((self.store, self.cache))
        self.run_files = EfsRunFiles(self.efs_root)  # the local directory standing in for EFS
        self.queue_arn = resources.queue_arn
        self.handlers.update(resources.handlers)
        self.events.refs.update(resources.refs)
        for name, patterns in resources.rules.items():
            self.events.subscribe(name, patterns)
        self.state_machine_arn = resources.state_machine_arn
        self.sfn = resources.sfn
        self.work = self._work_stream(resources.streams)

    def moto_tables(self) -> dict[str, str]:
        """The template's tables in moto too (once; in full mode they are there already):
        for what reads them over moto's DynamoDB while the handlers keep their store."""
        if self.mode != "full" and not self._tables_in_moto:
            from miniwdl_serverless.local.resources import create_tables

            self._restore.append(moto_patches.patch_transaction_snapshots())
            self._restore.append(moto_patches.patch_dynamodb_lock())
            create_tables(self.project, in_moto=True)
            self._tables_in_moto = True
        return self.tables

    def _tables_to_moto(self) -> None:
        """From now on the tables are moto's (full mode): what was in memory stays there."""
        from miniwdl_serverless.adapters.dynamodb import DynamoStore
        from miniwdl_serverless.adapters.work_table import DynamoWork
        from miniwdl_serverless.handlers import local_ports

        self.moto_tables()
        self.mode = "full"
        self.store = DynamoStore(self.tables["runs"], self.tables["jobs"])
        local_ports.use_stores(None)
        self.work.table = DynamoWork.from_environment()

    def _work_stream(self, routes: dict[str, list[dict[str, Any]]]) -> LocalWorkStream:
        """The work table's stream, delivered to the submitter and the work function (in full
        mode the items are written to moto's table too)."""
        from miniwdl_serverless.handlers import local_ports

        table = None
        if self.mode == "full":
            from miniwdl_serverless.adapters.work_table import DynamoWork

            table = DynamoWork.from_environment()
        stream = LocalWorkStream(self.events, routes, table)
        local_ports.use_work(stream)
        return stream

    def _tables(self) -> Tables:
        """Where the state directory's tables are read and written."""
        moto_tables = MotoTables(ACCOUNT, REGION)
        if self.mode == "full":
            return moto_tables
        specs = {t.logical_id: t for t in self.project.tables()}
        roles = {}
        for role, variable in TABLE_ROLES.items():
            spec = specs[self.project.table_for_env(variable)]
            roles[role] = TableSpec(table_name(spec.logical_id), spec.key_schema, spec.attributes)
        return MemoryTables(roles, self.store, self.cache, moto_tables)

    # -- the functions --
    def _invoke_in_process(self, function_name: str, payload: Any) -> tuple[bytes, str | None]:
        """The in-process Step Functions' Lambda invocation: (its payload, its function error)."""
        if function_name not in self.handlers:
            raise StatesError(
                "Lambda.ResourceNotFoundException", f"Function not found: {function_name}"
            )
        headers: dict[str, str] = {}
        body = self._invoke(function_name, json.dumps(payload), headers)
        return body, headers.get("x-amz-function-error")

    def _invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        """A Lambda invocation (the state machine's tasks): the response payload."""
        handler = self.handlers[function_name]
        context = FakeContext(function_name, aws_request_id=str(uuid.uuid4()))
        try:
            result = handler(json.loads(body or "{}"), context)
        except Exception as exn:  # as Lambda reports an unhandled error: errorType → States error
            self.handler_errors.append(exn)
            response_headers["x-amz-function-error"] = "Unhandled"
            error = {"errorType": type(exn).__name__, "errorMessage": str(exn)}
            return json.dumps(error).encode()
        return json.dumps(result).encode()

    def _call(self, name: str, event: dict[str, Any]) -> Any:
        """An event delivered to a function (the bus logs the error)."""
        try:
            return self.handlers[name](event, FakeContext(name, aws_request_id=str(uuid.uuid4())))
        except Exception as exn:
            self.handler_errors.append(exn)
            raise

    # -- EventBridge --
    def put_event(self, event: dict[str, Any]) -> None:
        """Deliver to every function whose rule matches, asynchronously, like EventBridge."""
        self.events.put_event(event)

    def drain(self, timeout: float = 30.0) -> None:
        """Let in-flight events finish (late RUNNING/terminated events) before AWS goes away."""
        self.events.drain(timeout, self.batch_executor.idle)

    # -- the reconciler, on the schedule the template gives it (shorter here) --
    def reconcile(self) -> dict[str, Any]:
        """One round of the reconcile function, as its schedule invokes it."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "region": REGION,
            "resources": [],
            "detail": {},
        }
        report = dict(self._call("ReconcileFunction", event))
        self.reconciled.append(report)
        return report

    def _reconcile_when_due(self) -> None:
        """A round once the bus has been quiet for ``reconcile_seconds`` (and not since the
        last round): a lost event shows as silence, and a busy run (a wide scatter) is not
        slowed by rounds that find everything in motion."""
        if self.reconcile_seconds is None:
            return
        since = min(time.monotonic() - self._reconciled_at, self.events.quiet_for())
        if since < self.reconcile_seconds:
            return
        self._reconciled_at = time.monotonic()
        try:
            self.reconcile()
        except Exception:  # the next round tries again, as on AWS
            logging.getLogger(__name__).warning("reconcile round failed", exc_info=True)

    # -- server mode: the same AWS over HTTP, for CLIs in other processes --
    def start_server(self) -> str:
        """Serve this embedded AWS on 127.0.0.1 (a free port) and create a CloudFormation stack
        whose outputs name its resources, as a deployed stack's do. Returns the endpoint URL."""
        if self.server is not None:
            return self.endpoint_url
        if self.mode == "memory":  # CLIs in other processes read the tables over HTTP
            self._tables_to_moto()
        if self.batch_service is not None:  # and call Batch: new jobs go to moto's from now on
            self._batch_in_moto()
            self.queue_arn = create_batch_queue()
        if self.step_functions is not None:  # and Step Functions: new executions go to moto's
            self._step_functions_in_moto()
            create_functions(self.project, self.efs_root)
            self.state_machine_arn = create_state_machine(self.project, self.sfn)
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.stack_name = LOCAL_STACK
        create_stack(self.stack_name, self.stack_outputs(), self.sfn, self.state_machine_arn)
        self.events.watch_executions(self.sfn, self.state_machine_arn)
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
            "ReconcileFunctionName": "ReconcileFunction",
            "AccessPointId": LOCAL_ACCESS_POINT,
        }

    # -- running --
    def start(self, execution_input: dict[str, Any], name: str | None = None) -> str:
        name = name or f"run-{uuid.uuid4().hex[:12]}"
        arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
        )
        self.last_execution_arn = str(arn["executionArn"])
        self._reconciled_at = time.monotonic()  # a round is due after a quiet spell of the run
        return self.last_execution_arn

    def stop(self, execution_arn: str, cause: str) -> None:
        """Stop a run at once (Ctrl-C): kill its task processes, stop the execution and tell
        the cancel function, as EventBridge would, which fails the run."""
        # the execution first: a killed task's FAILED event must not fail the run before it
        self.sfn.stop_execution(executionArn=execution_arn, error="Terminated", cause=cause)
        self.batch_executor.stop_all(timeout=2.0)
        self.events.announce_end(self.sfn.describe_execution(executionArn=execution_arn))
        self.drain_seconds = 2.0  # what is left in flight is not waited for long
        self.drain(self.drain_seconds)

    def wait(
        self, execution_arn: str, progress: Callable[[], None] | None = None, poll: float = 0.1
    ) -> dict[str, Any]:
        """The execution's description once it has ended. Its status is read from moto's
        backend in process every STATUS_POLL_SECONDS (a DescribeExecution through botocore
        costs ~5 ms of CPU; this, microseconds), so a run ends within milliseconds of its
        execution; ``progress`` and the reconciler's turn come every ``poll`` seconds."""
        ticked = 0.0
        while True:
            if self._execution_status(execution_arn) != "RUNNING":
                description = self.sfn.describe_execution(executionArn=execution_arn)
                if description["status"] != "RUNNING":
                    self.events.announce_end(description)
                    return dict(description)
            now = time.monotonic()
            if now - ticked >= poll:
                ticked = now
                if progress is not None:
                    progress()
                self._reconcile_when_due()
            time.sleep(min(STATUS_POLL_SECONDS, poll))

    def _execution_status(self, execution_arn: str) -> str | None:
        """The execution's status in the Step Functions backend (None: not found there)."""
        try:
            served = in_process.serving(STEP_FUNCTIONS)
            if isinstance(served, HandedOver) and execution_arn in served.service.executions:
                served = served.service  # (a run started before server mode ends there)
            if isinstance(served, LocalStepFunctions):
                return served.execution(execution_arn).status
            from moto.stepfunctions.responses import get_backend

            execution = get_backend(ACCOUNT, REGION).describe_execution(execution_arn)
        except Exception:  # (the caller asks DescribeExecution, which says what is wrong)
            return None
        return getattr(execution, "status", None)
