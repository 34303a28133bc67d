"""The CLI's AWS side (imperative shell): find a deployed stack, stage a workflow and local
inputs, start, stop and describe executions, read run state and logs. Small functions over
boto3 clients; every one works against AWS or any endpoint given by ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from miniwdl_serverless.adapters.dynamodb import DynamoStore
from miniwdl_serverless.cli.submit import UsageError
from miniwdl_serverless.core.ids import run_id_of
from miniwdl_serverless.core.input_staging import MULTIPART_THRESHOLD, ObjectChecksum, part_size
from miniwdl_serverless.core.records import Job, Run

BATCH_LOG_GROUP = "/aws/batch/job"
STACK_TAG = "aws:cloudformation:stack-name"


@dataclass
class Stack:
    """What the CLI needs of a deployed stack (its CloudFormation outputs)."""

    state_machine_arn: str
    name: str | None = None
    bucket: str | None = None
    runs_table: str | None = None
    jobs_table: str | None = None
    task_queue_arn: str | None = None
    task_queue_fallback_arn: str | None = None
    logs_function: str | None = None
    reconcile_function: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    _function_env: dict[str, str] | None = None

    @classmethod
    def from_outputs(cls, name: str | None, outputs: dict[str, str]) -> Stack:
        if not outputs.get("StateMachineArn"):
            raise UsageError(
                f"stack {name} has no StateMachineArn output (is it a miniwdl-serverless stack?)"
            )
        return cls(
            state_machine_arn=outputs["StateMachineArn"],
            name=name,
            bucket=outputs.get("BucketName") or None,
            runs_table=outputs.get("RunsTableName") or None,
            jobs_table=outputs.get("JobsTableName") or None,
            task_queue_arn=outputs.get("TaskQueueArn") or None,
            task_queue_fallback_arn=outputs.get("TaskQueueFallbackArn") or None,
            logs_function=outputs.get("LogsFunctionName") or None,
            reconcile_function=outputs.get("ReconcileFunctionName") or None,
            outputs=outputs,
        )

    def upload_buckets(self) -> set[str] | None:
        """Buckets the stack's finish function may write (its UploadBuckets output); None if
        unknown."""
        if "UploadBuckets" not in self.outputs:
            return None
        return {name.strip() for name in self.outputs["UploadBuckets"].split(",") if name.strip()}

    def require(self, attribute: str, what: str) -> str:
        value = getattr(self, attribute)
        if not value:
            source = (
                f"stack {self.name}" if self.name else f"state machine {self.state_machine_arn}"
            )
            raise UsageError(
                f"cannot find the {what} of {source}: give --stack NAME (its outputs name it)"
            )
        return str(value)

    def function_env(self, clients: Clients) -> dict[str, str]:
        """The stack functions' environment (EFS mount path, access point), read from the logs
        function."""
        if self._function_env is None:
            self._function_env = {}
            if self.logs_function:
                try:
                    config = clients.client("lambda").get_function_configuration(
                        FunctionName=self.logs_function
                    )
                    self._function_env = dict(
                        (config.get("Environment") or {}).get("Variables") or {}
                    )
                except Exception:  # best effort: only used for checks
                    self._function_env = {}
        return self._function_env


class Clients:
    """boto3 clients, created on first use (region and endpoint from the usual environment)."""

    def __init__(self, region: str | None = None):
        self.region = region
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from miniwdl_serverless.adapters import clients

            self._clients[service] = clients.client(service, region_name=self.region)
        return self._clients[service]


def find_stack(clients: Clients, stack_name: str | None, state_machine_arn: str | None) -> Stack:
    """--stack NAME (its outputs), or --state-machine ARN (then the stack named by the state
    machine's ``aws:cloudformation:stack-name`` tag, which CloudFormation sets)."""
    if stack_name:
        return Stack.from_outputs(stack_name, stack_outputs(clients, stack_name))
    assert state_machine_arn
    sfn = clients.client("stepfunctions")
    try:
        sfn.describe_state_machine(stateMachineArn=state_machine_arn)
    except sfn.exceptions.StateMachineDoesNotExist as exn:
        raise UsageError(f"no state machine {state_machine_arn}") from exn
    except sfn.exceptions.InvalidArn as exn:
        raise UsageError(f"not a state machine ARN: {state_machine_arn}") from exn
    tags = {
        t["key"]: t["value"]
        for t in sfn.list_tags_for_resource(resourceArn=state_machine_arn).get("tags", [])
    }
    if tags.get(STACK_TAG):
        stack = Stack.from_outputs(tags[STACK_TAG], stack_outputs(clients, tags[STACK_TAG]))
        if stack.state_machine_arn != state_machine_arn:
            raise UsageError(
                f"state machine {state_machine_arn} is not the StateMachineArn output of stack "
                f"{stack.name}"
            )
        return stack
    return Stack(state_machine_arn=state_machine_arn)


def stack_outputs(clients: Clients, stack_name: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        stacks = clients.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exn:
        if exn.response.get("Error", {}).get("Code") == "ValidationError":
            raise UsageError(
                f"no CloudFormation stack named {stack_name!r} in this account/region"
            ) from exn
        raise
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}


# ---- submit --------------------------------------------------------------------------------


def stage_archive(clients: Clients, bucket: str, key: str, archive: bytes) -> str:
    """Upload the workflow's zip to its content-addressed key, unless it is already there
    (``already_staged``); returns its s3:// URI. The start function checks the digest once more
    when it loads the archive."""
    checksum = ObjectChecksum.of_bytes(archive)
    if not already_staged(clients, bucket, key, checksum):
        clients.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=archive,
            ContentType="application/zip",
            ChecksumAlgorithm="SHA256",
        )
    return f"s3://{bucket}/{key}"


def already_staged(clients: Clients, bucket: str, key: str, checksum: ObjectChecksum) -> bool:
    """Whether the object at a content-addressed key is that content: only if S3's own SHA-256
    of it is the content's, the ChecksumSHA256 S3 computed and checked when it was uploaded with
    that checksum (as ``submit`` uploads). Its name proves nothing (whoever may write the bucket
    may write that key), and with SSE-KMS the ETag is no digest of the content. Anything else
    (another content, no SHA-256 checksum, another part layout, an object this caller may not
    read) is not: it is uploaded again."""
    from botocore.exceptions import ClientError

    try:
        head = clients.client("s3").head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError:  # not there (404), or not readable: upload (the put says if forbidden)
        return False
    return checksum.matches(head)


def upload_file(  # noqa: PLR0913 - the object, its source and checksum, and the progress meter
    clients: Clients,
    bucket: str,
    key: str,
    path: str,
    checksum: ObjectChecksum,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Upload a file with S3's SHA-256 checksums through boto3's transfer manager (in parts from
    ``MULTIPART_THRESHOLD``, of the size ``checksum`` was computed for), then check that S3 keeps
    the checksum expected: a file that changed since it was read stops the submission (and the
    object left at the key, not what its name says, is uploaded again by the next one)."""
    from boto3.s3.transfer import TransferConfig

    part = part_size(checksum.size)
    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=part or MULTIPART_THRESHOLD
    )
    clients.client("s3").upload_file(
        path,
        bucket,
        key,
        ExtraArgs={"ChecksumAlgorithm": "SHA256"},
        Config=config,
        Callback=progress,
    )
    if not already_staged(clients, bucket, key, checksum):
        raise UsageError(
            f"{path} changed while it was staged (S3's SHA-256 of s3://{bucket}/{key} is not "
            "the one read before); submit again once it is complete"
        )


def start_execution(
    clients: Clients, stack: Stack, name: str, execution_input: dict[str, Any]
) -> str:
    response = clients.client("stepfunctions").start_execution(
        stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(execution_input)
    )
    return str(response["executionArn"])


# ---- runs ----------------------------------------------------------------------------------


def execution_arn(stack: Stack, run: str) -> str:
    """A run id (the execution name) or an execution ARN, as an execution ARN."""
    from miniwdl_serverless.controller.submit import execution_arn as arn_of

    return run if run.startswith("arn:") else arn_of(stack.state_machine_arn, run)


def describe_execution(clients: Clients, stack: Stack, run: str) -> dict[str, Any]:
    sfn = clients.client("stepfunctions")
    try:
        return dict(sfn.describe_execution(executionArn=execution_arn(stack, run)))
    except (sfn.exceptions.ExecutionDoesNotExist, sfn.exceptions.InvalidArn) as exn:
        raise UsageError(f"no run {run} of state machine {stack.state_machine_arn}") from exn


def list_executions(
    clients: Clients, stack: Stack, limit: int, status: str | None = None
) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"stateMachineArn": stack.state_machine_arn}
    if status:
        kwargs["statusFilter"] = status
    found: list[dict[str, Any]] = []
    for page in clients.client("stepfunctions").get_paginator("list_executions").paginate(**kwargs):
        found.extend(page["executions"])  # newest first
        if len(found) >= limit:
            break
    return found[:limit]


def stop_execution(clients: Clients, stack: Stack, run: str, cause: str) -> None:
    clients.client("stepfunctions").stop_execution(
        executionArn=execution_arn(stack, run), error="RunCancelled", cause=cause[:32768]
    )


def run_store(stack: Stack) -> DynamoStore:
    """The stack's runs and jobs tables (read only here)."""
    runs = stack.require("runs_table", "runs table")
    return DynamoStore(runs, stack.require("jobs_table", "jobs table"))


def get_run(stack: Stack, run_id: str) -> Run | None:
    """The run's item in the runs table (None before the start function wrote it)."""
    return run_store(stack).get_run(run_id)


def get_job(stack: Stack, run_id: str, job_id: str) -> Job | None:
    """One job's item (one read, however large the run)."""
    return run_store(stack).get_job(run_id, job_id)


def run_jobs(stack: Stack, run_id: str) -> list[Job]:
    return list(run_store(stack).query_jobs(run_id))


def terminate_jobs(clients: Clients, jobs: list[Any], reason: str) -> tuple[int, list[str]]:
    """Terminate the Batch jobs of these graph jobs that may still run; (count, problems)."""
    batch = clients.client("batch")
    count, problems = 0, []
    for job in jobs:
        if job.status == "running" and job.batch_job_id:
            try:
                batch.terminate_job(jobId=job.batch_job_id, reason=reason)
                count += 1
            except Exception as exn:
                problems.append(f"{job.batch_job_id}: {exn}")
    return count, problems


def cancel_run(clients: Clients, stack: Stack, run: str, cause: str) -> int:
    """Stop the execution and terminate the run's Batch jobs (the stack's cancel function does
    the same on the execution's ABORTED event, catching any submitted meanwhile)."""
    stop_execution(clients, stack, run, cause)
    run_id = run_id_of(run)
    if not stack.jobs_table:
        return 0
    terminated, problems = terminate_jobs(
        clients, run_jobs(stack, run_id), "miniwdl-serverless: run cancelled"
    )
    for problem in problems:
        print(
            f"miniwdl-serverless: warning: cannot terminate {problem} (the stack's cancel "
            "function will)",
            file=sys.stderr,
        )
    return terminated


# ---- reconcile -----------------------------------------------------------------------------


def invoke_reconcile(clients: Clients, stack: Stack, run_id: str | None) -> dict[str, Any]:
    """One round of the stack's reconcile function (the code its schedule runs, with the
    stack's role and its EFS mount): every live run and the dead-letter queue, or one run."""
    function = stack.require(
        "reconcile_function", "reconcile function (ReconcileFunctionName output)"
    )
    payload = {"run_id": run_id} if run_id else {}
    response = clients.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(payload).encode()
    )
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise UsageError(
            f"the reconcile function failed: {body.get('errorType')}: {body.get('errorMessage')}"
        )
    return dict(body)


# ---- logs ----------------------------------------------------------------------------------


def read_run_file(  # noqa: PLR0913 - the logs function's request, field by field
    clients: Clients,
    stack: Stack,
    run_id: str,
    path: str,
    tail_bytes: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """Through the stack's read-only logs function: {path, size, offset, next_offset, data} or
    {error, message}."""
    function = stack.require("logs_function", "logs function (LogsFunctionName output)")
    payload: dict[str, Any] = {"run_id": run_id, "path": path}
    if tail_bytes is not None:
        payload["tail_bytes"] = tail_bytes
    if offset is not None:
        payload["offset"] = offset
    response = clients.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(payload).encode()
    )
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        return {
            "error": str(body.get("errorType") or "FunctionError"),
            "message": str(body.get("errorMessage") or body),
        }
    return dict(body)


def cloudwatch_events(
    clients: Clients, stream: str, start_time: int | None = None, seen: set[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Events of one /aws/batch/job stream (after ``start_time`` ms, skipping ids in ``seen``)."""
    logs = clients.client("logs")
    kwargs: dict[str, Any] = {"logGroupName": BATCH_LOG_GROUP, "logStreamNames": [stream]}
    if start_time:
        kwargs["startTime"] = start_time
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            for event in page.get("events", []):
                if seen is not None:
                    if event["eventId"] in seen:
                        continue
                    seen.add(event["eventId"])
                yield event
    except logs.exceptions.ResourceNotFoundException:
        return
