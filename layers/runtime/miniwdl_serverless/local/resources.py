"""The embedded account and the resources template.yaml declares, created in it as a deploy
would: the tables, the Batch queue, the bucket, the jobs' log group, the Lambda functions (their
handlers imported from the project) and the state machine; for server mode, the CloudFormation
stack whose outputs name them."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import threading
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miniwdl_serverless.local.batch_executor import BATCH_LOG_GROUP
from miniwdl_serverless.local.project import Project

ACCOUNT = "123456789012"
REGION = "us-east-1"
LOCAL_QUEUE = "miniwdl-serverless-local"
LOCAL_BUCKET = "miniwdl-serverless-local"
LOCAL_STACK = "miniwdl-serverless-local"
LOCAL_ACCESS_POINT = "fsap-0123456789abcdef0"
STATE_MACHINE_NAME = "RunWorkflow"
LOCAL_QUEUE_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{LOCAL_QUEUE}"

Handler = Callable[[dict[str, Any], Any], Any]


class LazyHandler:
    """A function's handler, its module imported on the first invocation (a cold start), so
    that the embedded AWS starts without importing every function, and a run imports only
    those it invokes."""

    def __init__(self, logical_id: str, path: Path, attribute: str):
        self.logical_id, self.path, self.attribute = logical_id, path, attribute
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    def load(self) -> Handler:
        with self._lock:
            if self._handler is None:
                name = f"msls_functions.{self.logical_id}"
                spec = importlib.util.spec_from_file_location(name, self.path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._handler = getattr(module, self.attribute)
            return self._handler

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return (self._handler or self.load())(event, context)


@dataclass
class Resources:
    """What ``create_resources`` made."""

    tables: dict[str, str]  # "runs", "jobs" → table name
    queue_arn: str
    state_machine_arn: str
    sfn: Any  # the Step Functions client that created the state machine
    handlers: dict[str, Handler]  # function logical id → its handler
    rules: dict[str, list[dict[str, Any]]]  # function logical id → its EventBridge patterns
    streams: dict[str, list[dict[str, Any]]]  # function logical id → its work-stream filters
    refs: dict[str, str]  # template logical id → local physical name (for event patterns)
    environment: dict[str, str | None]  # variables set → the value to restore (None: unset)


def table_name(logical_id: str) -> str:
    return f"local-{logical_id}"


def create_tables(project: Project, in_moto: bool) -> dict[str, str]:
    """The template's tables, by logical id → name (created in moto if ``in_moto``)."""
    from miniwdl_serverless.adapters import clients

    names = {}
    for table in project.tables():
        names[table.logical_id] = table_name(table.logical_id)
        if in_moto:
            clients.client("dynamodb").create_table(
                TableName=names[table.logical_id],
                KeySchema=table.key_schema,
                AttributeDefinitions=table.attributes,
                BillingMode="PAY_PER_REQUEST",
            )
    return names


# The bucket, the log group and the queue are put into moto's backends directly, not through
# boto3: a first request to moto imports its IAM backend (and cryptography's X.509) to note the
# caller's access key, and a first client of each service reads its botocore model, ~0.3 s of
# a run's start in all; a run that uses S3, Logs or SQS through boto3 pays for that then.
def create_bucket(project: Project) -> dict[str, str]:
    """The local bucket, with the versioning and EventBridge notifications of the template's
    buckets (all of them are the local bucket): their logical ids → its name."""
    from moto.s3.models import s3_backends

    s3 = s3_backends[ACCOUNT]["aws"]
    s3.create_bucket(LOCAL_BUCKET, REGION)
    refs: dict[str, str] = {}
    for logical_id, props in project.buckets().items():
        refs[logical_id] = LOCAL_BUCKET
        if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(LOCAL_BUCKET, "Enabled")
        notification = props.get("NotificationConfiguration") or {}
        if (notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(LOCAL_BUCKET, {"EventBridgeConfiguration": {}})
    return refs


def create_log_group() -> None:
    """The jobs' log group (what the local executor writes, as the awslogs driver does)."""
    from moto.logs.models import logs_backends

    logs_backends[ACCOUNT][REGION].create_log_group(BATCH_LOG_GROUP, tags={})


def create_queue(name: str) -> str:
    """An SQS queue: its URL, as SQS gives it."""
    from moto.sqs.models import sqs_backends

    sqs_backends[ACCOUNT][REGION].create_queue(name)
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"


def local_role() -> str:
    """The IAM role that moto's Batch and Lambda ask for (made once): its ARN."""
    from miniwdl_serverless.adapters import clients

    iam = clients.client("iam")
    try:
        return str(iam.get_role(RoleName="local")["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        pass
    return str(iam.create_role(RoleName="local", AssumeRolePolicyDocument="{}")["Role"]["Arn"])


def create_batch_queue() -> str:
    """The local queue in moto's Batch (on an unmanaged compute environment): its ARN."""
    from miniwdl_serverless.adapters import clients

    batch = clients.client("batch")
    compute = batch.create_compute_environment(
        computeEnvironmentName="local",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=local_role(),
    )
    batch.create_job_queue(
        jobQueueName=LOCAL_QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": compute["computeEnvironmentArn"]}
        ],
    )
    return str(batch.describe_job_queues(jobQueues=[LOCAL_QUEUE])["jobQueues"][0]["jobQueueArn"])


def create_resources(
    project: Project,
    efs_root: str,
    tables_in_moto: bool = True,
    batch_in_moto: bool = True,
    functions_in_moto: bool = True,
) -> Resources:
    """Everything template.yaml declares, in the embedded account (its tables only if
    ``tables_in_moto``: else the in-memory store holds them; its Batch queue only if
    ``batch_in_moto``: else the in-process Batch serves it; its functions in moto's Lambda only
    if ``functions_in_moto``: else the in-process Step Functions invokes their handlers). Sets
    in this process the variables the handlers read for them (RUNS_TABLE, JOBS_TABLE,
    STATE_MACHINE_ARN)."""
    from miniwdl_serverless.adapters import clients
    from miniwdl_serverless.handlers import local_ports

    environment: dict[str, str | None] = {}
    names = create_tables(project, tables_in_moto)
    runs = names[project.table_for_env("RUNS_TABLE")]
    jobs = names[project.table_for_env("JOBS_TABLE")]
    for variable in ("RUNS_TABLE", "JOBS_TABLE", "CACHE_TABLE", "WORK_TABLE"):
        environment[variable] = os.environ.get(variable)
        os.environ[variable] = names[project.table_for_env(variable)]
    local_ports.forget_clients()  # the handlers' ports read the tables' names from there

    queue_arn = create_batch_queue() if batch_in_moto else LOCAL_QUEUE_ARN
    tables = {"runs": runs, "jobs": jobs}
    refs = create_bucket(project)
    create_log_group()
    environment["DEAD_LETTER_QUEUE_URL"] = os.environ.get("DEAD_LETTER_QUEUE_URL")
    os.environ["DEAD_LETTER_QUEUE_URL"] = create_queue("local-DeadLetterQueue")  # (reconcile's)

    handlers: dict[str, Handler] = {}
    rules: dict[str, list[dict[str, Any]]] = {}
    streams: dict[str, list[dict[str, Any]]] = {}
    for function in project.functions():
        module_name, attribute = function.handler.rsplit(".", 1)
        path = function.code_dir / f"{module_name}.py"
        handlers[function.logical_id] = LazyHandler(function.logical_id, path, attribute)
        rules[function.logical_id] = function.event_patterns
        if function.stream_patterns:
            streams[function.logical_id] = function.stream_patterns
    if functions_in_moto:
        create_functions(project, efs_root)
    sfn = clients.client("stepfunctions")
    state_machine_arn = create_state_machine(project, sfn)
    environment["STATE_MACHINE_ARN"] = os.environ.get("STATE_MACHINE_ARN")
    os.environ["STATE_MACHINE_ARN"] = state_machine_arn  # the submit function starts executions
    return Resources(
        tables=tables,
        queue_arn=queue_arn,
        state_machine_arn=state_machine_arn,
        sfn=sfn,
        handlers=handlers,
        rules=rules,
        streams=streams,
        refs=refs,
        environment=environment,
    )


def create_functions(project: Project, efs_root: str) -> None:
    """The template's functions in moto's Lambda (what moto's Step Functions invokes; the
    invocations reach the handlers through moto_patches.patch_lambda_invoke)."""
    from miniwdl_serverless.adapters import clients

    role = local_role()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    awslambda = clients.client("lambda")
    for function in project.functions():
        variables = {"MSLS_EFS_ROOT": efs_root, "EFS_ACCESS_POINT_ID": LOCAL_ACCESS_POINT}
        awslambda.create_function(
            FunctionName=function.logical_id,
            Runtime="python3.11",
            Role=role,
            Handler=function.handler,
            Code={"ZipFile": archive.getvalue()},
            Environment={"Variables": variables},
        )


def create_state_machine(project: Project, sfn: Any) -> str:
    """The template's state machine (its substitutions resolved here): its ARN."""

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "GetAtt" in value:
            logical_id = value["GetAtt"].split(".")[0]
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        if isinstance(value, dict) and "Ref" in value:
            return project.parameter_default(value["Ref"])
        return value

    return str(
        sfn.create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=json.dumps(project.definition(resolve)),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/local",
        )["stateMachineArn"]
    )


def create_stack(
    stack_name: str, outputs: dict[str, str], sfn: Any, state_machine_arn: str
) -> None:
    """A CloudFormation stack with these outputs (the empty ones left out), tagged on the state
    machine as a deploy tags it: what the CLI's ``--stack`` finds."""
    from miniwdl_serverless.adapters import clients

    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items() if v},
    }
    # moto does not model the placeholder resource; only Outputs matter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clients.client("cloudformation").create_stack(
            StackName=stack_name, TemplateBody=json.dumps(template)
        )
    sfn.tag_resource(
        resourceArn=state_machine_arn,
        tags=[{"key": "aws:cloudformation:stack-name", "value": stack_name}],
    )
