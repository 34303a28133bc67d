"""The deployed shape: template.yaml transformed offline by SAM (as `sam deploy` would), then
its resources and their wiring asserted: rules → functions, functions → EFS access point, DLQs,
log groups, and IAM statements without wildcards except where AWS offers no resource-level
permission."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from sam_transform import transform  # noqa: E402

# Actions allowed on Resource "*", each because the AWS API has no resource-level permission.
NO_RESOURCE_LEVEL = {
    "batch:DescribeJobQueues",
    "batch:DescribeComputeEnvironments",
    "batch:DescribeJobDefinitions",
    "batch:ListJobs",
    "batch:DescribeJobs",
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
}
ASYNC_FUNCTIONS = ("AdvanceFunction", "CancelFunction", "SubmitFunction")
EFS_FUNCTIONS = (
    "StartFunction",
    "AdvanceFunction",
    "WorkFunction",
    "FinishFunction",
    "LogsFunction",
)


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(cfn: dict[str, Any]) -> dict[str, Any]:
    return cfn["Resources"]  # type: ignore[no-any-return]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def rule_targets(resources: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        k: v["Properties"]["Targets"] for k, v in of_type(resources, "AWS::Events::Rule").items()
    }


def source_of(rule: dict[str, Any]) -> Any:
    """The event source a rule matches (None for a schedule)."""
    return rule["Properties"].get("EventPattern", {}).get("source")


def test_every_engine_resource_is_declared(resources):
    kinds = {v["Type"] for v in resources.values()}
    for kind in (
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::Events::Rule",
        "AWS::SQS::Queue",
        "AWS::Logs::LogGroup",
        "AWS::EC2::VPC",
        "AWS::EC2::VPCEndpoint",
        "AWS::EFS::FileSystem",
        "AWS::EFS::AccessPoint",
        "AWS::EFS::MountTarget",
        "AWS::Batch::ComputeEnvironment",
        "AWS::Batch::JobQueue",
        "AWS::IAM::Role",
    ):
        assert kind in kinds, kind
    for name in EFS_FUNCTIONS:
        assert resources[name]["Type"] == "AWS::Lambda::Function"


def test_tables_on_demand_with_recovery_and_ttl(resources):
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert set(tables) == {"RunsTable", "JobsTable", "CacheTable", "WorkTable"}
    for table in tables.values():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["TimeToLiveSpecification"]["Enabled"] is True


def test_bucket_private_encrypted_with_eventbridge(resources):
    props = resources["Bucket"]["Properties"]
    assert (
        props["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    )
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ]
    policy = resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and "aws:SecureTransport" in str(s["Condition"]) for s in policy
    )


def test_batch_rule_invokes_advance_for_our_queues_only(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    batch_rules = [r for r in rules.values() if source_of(r) == ["aws.batch"]]
    assert len(batch_rules) == 1
    rule = batch_rules[0]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert set(pattern["detail"]["status"]) == {"RUNNING", "SUCCEEDED", "FAILED"}
    queues = str(pattern["detail"]["jobQueue"])
    assert "SpotQueue" in queues and "OnDemandQueue" in queues and "TaskQueueArn" in queues
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["AdvanceFunction", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400


def test_execution_status_rule_invokes_cancel(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    (rule,) = [r["Properties"] for r in rules.values() if source_of(r) == ["aws.states"]]
    assert set(rule["EventPattern"]["detail"]["status"]) == {"ABORTED", "TIMED_OUT", "FAILED"}
    assert rule["EventPattern"]["detail"]["stateMachineArn"] == [{"Ref": "RunWorkflowStateMachine"}]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["CancelFunction", "Arn"]}
    assert "DeadLetterConfig" in rule["Targets"][0]


def test_s3_drop_rule_invokes_submit_for_submit_prefix(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    (rule,) = [r["Properties"] for r in rules.values() if source_of(r) == ["aws.s3"]]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "Bucket"}]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "submit/"}]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}
    assert "DeadLetterConfig" in rule["Targets"][0]
    env = resources["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert env["STATE_MACHINE_ARN"] == {"Ref": "RunWorkflowStateMachine"}


def test_every_rule_target_may_invoke_its_function(resources):
    permissions = of_type(resources, "AWS::Lambda::Permission")
    for name, targets in rule_targets(resources).items():
        function = targets[0]["Arn"]["Fn::GetAtt"][0]
        assert any(
            p["Properties"]["Principal"] == "events.amazonaws.com"
            and p["Properties"]["SourceArn"] == {"Fn::GetAtt": [name, "Arn"]}
            and p["Properties"]["FunctionName"] == {"Ref": function}
            for p in permissions.values()
        ), name


def test_async_functions_have_a_dead_letter_queue(resources):
    for name in ASYNC_FUNCTIONS:
        props = resources[name]["Properties"]
        assert props["DeadLetterConfig"]["TargetArn"] == {
            "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
        }, name
    configs = of_type(resources, "AWS::Lambda::EventInvokeConfig")
    assert {c["Properties"]["FunctionName"]["Ref"] for c in configs.values()} >= set(
        ASYNC_FUNCTIONS
    )


def test_efs_functions_mount_the_access_point_at_mnt_efs(resources):
    for name in EFS_FUNCTIONS:
        resource = resources[name]
        (mount,) = resource["Properties"]["FileSystemConfigs"]
        assert mount["LocalMountPath"] == "/mnt/efs"
        arn = mount["Arn"]["Fn::If"]
        assert arn[0] == "CreateAccessPoint" and arn[1] == {"Fn::GetAtt": ["AccessPoint", "Arn"]}
        assert "FileSystemReady" in resource["DependsOn"]  # mount targets exist first
        assert resource["Properties"]["VpcConfig"]["SubnetIds"]


def test_access_point_enforces_a_non_root_user_and_owned_root(resources):
    props = resources["AccessPoint"]["Properties"]
    assert props["PosixUser"]["Uid"] != "0" and props["PosixUser"]["Gid"] != "0"
    assert props["RootDirectory"]["Path"] != "/"
    assert props["RootDirectory"]["CreationInfo"]["OwnerUid"] == props["PosixUser"]["Uid"]
    assert resources["FileSystem"]["Properties"]["Encrypted"] is True


def test_batch_spot_with_on_demand_fallback(resources):
    spot = resources["SpotComputeEnvironment"]["Properties"]["ComputeResources"]
    assert spot["Type"] == "SPOT" and spot["AllocationStrategy"] == "SPOT_CAPACITY_OPTIMIZED"
    assert spot["MinvCpus"] == 0
    assert (
        resources["OnDemandComputeEnvironment"]["Properties"]["ComputeResources"]["Type"] == "EC2"
    )
    for name in (
        "SpotComputeEnvironment",
        "OnDemandComputeEnvironment",
        "SpotQueue",
        "OnDemandQueue",
        "InstanceRole",
    ):
        assert resources[name]["Condition"] == "CreateBatch", name
    for name in ("Vpc", "PublicSubnetA", "PublicSubnetB", "PrivateSubnetA", "PrivateSubnetB"):
        assert resources[name]["Condition"] == "CreateNetwork", name
    assert resources["FileSystem"]["Condition"] == "CreateFileSystem"
    assert resources["AccessPoint"]["Condition"] == "CreateAccessPoint"


def test_log_groups_have_retention_and_functions_use_them(resources):
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert all(
        g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values()
    )
    for name in EFS_FUNCTIONS:
        log_group = resources[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_group in groups
    logging = resources["RunWorkflowStateMachine"]["Properties"]["LoggingConfiguration"]
    assert logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": ["StateMachineLogGroup", "Arn"]
    }


def _statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement: the roles' inline policies and the managed policies."""
    documents = [
        (name, policy["PolicyDocument"])
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        for policy in role["Properties"].get("Policies", [])
    ]
    documents += [
        (name, managed["Properties"]["PolicyDocument"])
        for name, managed in of_type(resources, "AWS::IAM::ManagedPolicy").items()
    ]
    found = []
    for name, document in documents:
        for statement in document["Statement"]:
            if isinstance(statement, dict) and "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            found.append((name, statement))
    return found


def test_iam_has_no_wildcard_actions_and_star_resources_only_where_unavoidable(resources):
    for role, statement in _statements(resources):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), (role, actions)
        resource = statement.get("Resource")
        if resource == "*" or resource == ["*"]:
            assert set(actions) <= NO_RESOURCE_LEVEL, (role, actions)


def test_state_machine_definition_is_substituted(resources):
    props = resources["RunWorkflowStateMachine"]["Properties"]
    substitutions = props["DefinitionSubstitutions"]
    assert substitutions["StartFunctionArn"] == {"Fn::GetAtt": ["StartFunction", "Arn"]}
    assert substitutions["FinishFunctionArn"] == {"Fn::GetAtt": ["FinishFunction", "Arn"]}


def test_outputs_name_what_the_cli_needs(cfn):
    assert {
        "StateMachineArn",
        "BucketName",
        "RunsTableName",
        "JobsTableName",
        "TaskQueueArn",
        "TaskQueueFallbackArn",
        "LogsFunctionName",
        "ReconcileFunctionName",
    } <= set(cfn["Outputs"])


def test_defect_06_functions_know_the_stack_bucket(resources):
    """The start function refuses uploads under the bucket's control prefixes: it must know
    the bucket (handlers/wiring.py reads STACK_BUCKET)."""
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["STACK_BUCKET"] == {"Ref": "Bucket"}, name


# Functions whose code calls BatchJobs.terminate: fail fast (end.py:fail_run, from any driver
# loop, the start function's included), stragglers (advance.py), stop (end.py:stop_run),
# Finish stopping a run whose Start crashed.
# outside the VPC: the submitter terminates for the functions inside it
TERMINATING_FUNCTIONS = ("SubmitterFunction", "CancelFunction", "ReconcileFunction")


def _function_statements(resources: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [statement for name, statement in _statements(resources) if name == role]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_defect_07_terminate_job_is_scoped_to_the_stacks_jobs(resources):
    """TerminateJob's only resource type is the job, which supports aws:ResourceTag (AWS Batch
    User Guide, "Supported resource-level permissions for AWS Batch API actions"): every
    grant is conditioned on the stack tag the Batch adapter puts on each job it submits."""
    from miniwdl_serverless.core.ids import TAG_STACK

    grants = [
        (name, statement)
        for name, statement in _statements(resources)
        if "batch:TerminateJob" in _actions(statement)
    ]
    assert grants
    for role, statement in grants:
        assert _actions(statement) == ["batch:TerminateJob"], role  # the condition is its own
        assert statement["Effect"] == "Allow"
        resource = statement["Resource"]
        assert isinstance(resource, dict) and "Fn::Sub" in resource, (role, resource)
        assert resource["Fn::Sub"].endswith(":job/*"), role
        assert statement["Condition"] == {
            "StringEquals": {f"aws:ResourceTag/{TAG_STACK}": {"Ref": "AWS::StackName"}}
        }, role
    for function in TERMINATING_FUNCTIONS:
        assert any(
            "batch:TerminateJob" in _actions(s) for s in _function_statements(resources, function)
        ), function


def test_defect_07_the_batch_adapter_knows_the_stack_name(resources):
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["STACK_NAME"] == {"Ref": "AWS::StackName"}, name


def test_defect_07_both_tables_expire_the_attribute_the_stores_write(resources):
    from miniwdl_serverless.adapters.dynamodb_items import JobItem, RunItem

    for table, model in (("RunsTable", RunItem), ("JobsTable", JobItem)):
        ttl = resources[table]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": model.expires_at.attr_name, "Enabled": True}, table


# ---- the reconciler -------------------------------------------------------------------------


def test_reconcile_runs_on_a_schedule_of_the_interval_parameter(cfn, resources):
    parameter = cfn["Parameters"]["ReconcileIntervalMinutes"]
    assert parameter["Default"] == 5 and parameter["MinValue"] == 1
    (rule,) = [r for r in of_type(resources, "AWS::Events::Rule").values() if source_of(r) is None]
    expression = rule["Properties"]["ScheduleExpression"]["Fn::If"]
    assert expression[0] == "ReconcileEveryMinute" and expression[1] == "rate(1 minute)"
    assert expression[2] == {"Fn::Sub": "rate(${ReconcileIntervalMinutes} minutes)"}
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}
    assert "DeadLetterConfig" not in target  # the next round follows; it reads the DLQ itself


def test_reconcile_knows_the_state_machine_and_the_dead_letter_queue(resources):
    variables = resources["ReconcileFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["STATE_MACHINE_ARN"] == {"Ref": "RunWorkflowStateMachine"}
    assert variables["DEAD_LETTER_QUEUE_URL"] == {"Ref": "DeadLetterQueue"}


def test_reconcile_may_list_executions_read_the_dlq_and_describe_jobs_only(resources):
    statements = _function_statements(resources, "ReconcileFunction")
    by_action = {a: s for s in statements for a in _actions(s)}
    assert by_action["states:ListExecutions"]["Resource"] == {"Ref": "RunWorkflowStateMachine"}
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert by_action[action]["Resource"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert by_action["batch:DescribeJobs"]["Resource"] == "*"  # no resource-level permission
    assert "sqs:SendMessage" not in by_action and "states:StartExecution" not in by_action
    for name in ("AdvanceFunction", "StartFunction", "CancelFunction"):
        others = {a for s in _function_statements(resources, name) for a in _actions(s)}
        assert not others & {"sqs:ReceiveMessage", "sqs:DeleteMessage", "states:ListExecutions"}


def test_an_alarm_watches_the_dead_letter_queue(resources):
    (alarm,) = of_type(resources, "AWS::CloudWatch::Alarm").values()
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0


# ---- staged inputs (issue 10) ---------------------------------------------------------------

# Functions whose driver loop evaluates a run's inputs, and so downloads the s3:// inputs that
# `submit` staged under the stack bucket's inputs/ onto EFS.
INPUT_READERS = ("StartFunction", "AdvanceFunction", "WorkFunction")
STAGED_INPUTS = {"Fn::Sub": "${Bucket.Arn}/inputs/*"}


def test_the_functions_that_localize_inputs_may_read_the_staged_inputs_only(resources):
    for function in INPUT_READERS:
        statements = _function_statements(resources, function)
        reads = [s for s in statements if s.get("Resource") == STAGED_INPUTS]
        assert [(s["Effect"], _actions(s)) for s in reads] == [("Allow", ["s3:GetObject"])]
        (listing,) = [
            s
            for s in statements
            if "s3:ListBucket" in _actions(s) and s.get("Sid") == "ListStagedInputs"
        ]
        assert _actions(listing) == ["s3:ListBucket"], function
        assert listing["Resource"] == {"Fn::GetAtt": ["Bucket", "Arn"]}, function
        # a staged Directory is listed by its prefix, and only prefixes under inputs/ may be
        assert listing["Condition"] == {"StringLike": {"s3:prefix": ["inputs/*"]}}, function
    for role, statement in _statements(resources):
        if statement.get("Resource") == STAGED_INPUTS:  # read, never written, by the stack
            assert _actions(statement) == ["s3:GetObject"], role


# ---- Finish's uploads (issue 10) ------------------------------------------------------------


def test_finish_upload_settings_fit_the_function(resources):
    """The template's transfer settings are valid, and their parts fit in the finish
    function's memory (what Lambda tells the function as AWS_LAMBDA_FUNCTION_MEMORY_SIZE)."""
    from miniwdl_serverless.core.uploads import MiB, UploadSettings

    props = resources["FinishFunction"]["Properties"]
    env = {k: str(v) for k, v in props["Environment"]["Variables"].items() if isinstance(v, str)}
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(props["MemorySize"])
    settings = UploadSettings.from_environment(env, check_memory=True)
    assert set(UploadSettings.ENVIRONMENT.values()) <= set(env)
    assert (settings.part_size, settings.concurrency) == (64 * MiB, 10)
    assert settings.reserve_seconds < props["Timeout"] / 2


def test_finish_may_read_back_abort_and_remove_only_what_it_uploads(resources):
    """HeadObject (s3:GetObject: is an identical object there?), AbortMultipartUpload and
    DeleteObject (a file that changed while it was sent), on the objects PutObject may
    write and nowhere else; no s3:ListBucket (a missing key is then 403, not 404: S3Uploads
    takes either as not there)."""
    statements = _function_statements(resources, "FinishFunction")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    assert s3
    for statement in s3:
        assert set(_actions(statement)) == {
            "s3:PutObject",
            "s3:GetObject",
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
        }
        assert str(statement["Resource"]).count("/*") >= 1


# What the remote commands call, by command (cli/stack.py, remote.py, watch.py, self_test.py,
# staging.py): the submitter policy must allow each.
SUBMITTER_CALLS = {
    "cloudformation:DescribeStacks": "find the stack (--stack)",
    "states:DescribeStateMachine": "--state-machine, self-test",
    "states:ListTagsForResource": "--state-machine: its stack tag",
    "states:StartExecution": "submit",
    "states:DescribeExecution": "submit --wait, status",
    "states:ListExecutions": "list",
    "states:StopExecution": "cancel",
    "s3:PutObject": "stage the workflow and local inputs",
    "s3:GetObject": "already staged? large outputs",
    "dynamodb:GetItem": "status",
    "dynamodb:Query": "status: the run's jobs",
    "lambda:InvokeFunction": "logs, reconcile",
    "lambda:GetFunctionConfiguration": "the stack's EFS mount",
    "logs:FilterLogEvents": "logs --cloudwatch",
    "batch:TerminateJob": "cancel",
    "batch:DescribeJobQueues": "self-test",
    "batch:DescribeComputeEnvironments": "self-test",
}


def test_the_submitter_policy_allows_what_the_remote_commands_call(cfn, resources):
    policy = resources["SubmitterPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    granted = {a for statement in policy for a in _actions(statement)}
    assert set(SUBMITTER_CALLS) <= granted, set(SUBMITTER_CALLS) - granted
    assert all(s["Effect"] == "Allow" for s in policy)
    puts = [s for s in policy if _actions(s) == ["s3:PutObject"]]
    # writes only where submit stages (never the run's outputs or errors/)
    assert [r["Fn::Sub"].rsplit("/", 2)[-2] for s in puts for r in s["Resource"]] == [
        "wdl",
        "inputs",
        "submit",
    ]
    assert cfn["Outputs"]["SubmitterPolicyArn"]["Value"] == {"Ref": "SubmitterPolicy"}


# ---- no NAT gateway (issue 11): only EFS work inside the VPC ---------------------------------

# What the functions inside the VPC may still be granted outside DynamoDB, S3, EFS and X-Ray:
# the Lambda service's own deliveries to the dead-letter queue (an asynchronous invocation's
# DLQ, a stream's on-failure destination), which do not go through the function's network.
SERVICE_DELIVERIES = {"sqs:SendMessage"}
UNREACHABLE_INSIDE = ("batch:", "states:", "sqs:", "logs:GetLogEvents", "events:", "lambda:")


def _in_vpc(resources: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for name, f in of_type(resources, "AWS::Lambda::Function").items()
        if f["Properties"].get("VpcConfig")
    )


def test_the_created_vpc_has_no_nat_gateway_and_no_default_route_for_the_lambdas(resources):
    kinds = {v["Type"] for v in resources.values()}
    assert "AWS::EC2::NatGateway" not in kinds
    assert not [n for n, v in resources.items() if v["Type"] == "AWS::EC2::EIP"]
    private_routes = [
        v
        for v in of_type(resources, "AWS::EC2::Route").values()
        if v["Properties"]["RouteTableId"] == {"Ref": "PrivateRouteTable"}
    ]
    assert private_routes == []  # S3 and DynamoDB through the gateway endpoints only
    endpoints = of_type(resources, "AWS::EC2::VPCEndpoint").values()
    services = {str(e["Properties"]["ServiceName"]) for e in endpoints}
    assert any(".s3" in s for s in services) and any(".dynamodb" in s for s in services)
    for endpoint in endpoints:
        assert endpoint["Properties"]["VpcEndpointType"] == "Gateway"
        assert {"Ref": "PrivateRouteTable"} in endpoint["Properties"]["RouteTableIds"]


def test_batch_runs_in_public_subnets_with_public_ips(resources):
    for name in ("PublicSubnetA", "PublicSubnetB"):
        assert resources[name]["Properties"]["MapPublicIpOnLaunch"] is True
    (public_route,) = [
        v
        for v in of_type(resources, "AWS::EC2::Route").values()
        if v["Properties"]["RouteTableId"] == {"Ref": "PublicRouteTable"}
    ]
    assert public_route["Properties"]["GatewayId"] == {"Ref": "InternetGateway"}
    for name in ("SpotComputeEnvironment", "OnDemandComputeEnvironment"):
        subnets = resources[name]["Properties"]["ComputeResources"]["Subnets"]["Fn::If"]
        assert subnets[0] == "CreateNetwork"
        assert subnets[1] == [{"Ref": "PublicSubnetA"}, {"Ref": "PublicSubnetB"}], name
        assert subnets[2] == {
            "Fn::If": ["HasBatchSubnetIds", {"Ref": "BatchSubnetIds"}, {"Ref": "SubnetIds"}]
        }
    for name in _in_vpc(resources):
        subnets = resources[name]["Properties"]["VpcConfig"]["SubnetIds"]["Fn::If"][1]
        assert subnets == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}], name


def test_no_function_inside_the_vpc_may_call_what_it_cannot_reach(resources):
    """Batch, Step Functions, SQS (but the service's DLQ deliveries), CloudWatch Logs' reads:
    none is reachable without a NAT gateway, so none is granted to a function in the VPC."""
    inside = _in_vpc(resources)
    assert inside == sorted(
        ["StartFunction", "AdvanceFunction", "WorkFunction", "FinishFunction", "LogsFunction"]
    )
    for function in inside:
        actions = {a for s in _function_statements(resources, function) for a in _actions(s)}
        unreachable = {a for a in actions - SERVICE_DELIVERIES if a.startswith(UNREACHABLE_INSIDE)}
        assert unreachable == set(), function
    for function in ("SubmitterFunction", "CancelFunction", "ReconcileFunction", "SubmitFunction"):
        assert not resources[function]["Properties"].get("VpcConfig"), function
        assert not resources[function]["Properties"].get("FileSystemConfigs"), function


def test_the_submitter_may_make_the_calls_the_functions_inside_hand_on(resources):
    actions = {a for s in _function_statements(resources, "SubmitterFunction") for a in _actions(s)}
    for action in (
        "batch:SubmitJob",
        "batch:TerminateJob",
        "batch:ListJobs",
        "batch:DescribeJobs",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
    ):
        assert action in actions, action


def test_the_stream_filters_hand_each_kind_to_its_function(resources):
    """The submitter gets the calls made outside the VPC, the work function what needs EFS:
    the kinds core/work.py defines, and each to one function only."""
    import json

    from miniwdl_serverless.core.work import GRAPH_KINDS, OUTSIDE_KINDS

    def kinds(function: str) -> set[str]:
        (mapping,) = [
            v["Properties"]
            for v in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
            if v["Properties"]["FunctionName"] == {"Ref": function}
        ]
        (flt,) = mapping["FilterCriteria"]["Filters"]
        return set(json.loads(flt["Pattern"])["dynamodb"]["NewImage"]["kind"]["S"])

    assert kinds("SubmitterFunction") == set(OUTSIDE_KINDS)
    assert kinds("WorkFunction") == set(GRAPH_KINDS)


def test_functions_inside_the_created_vpc_are_told_they_have_no_internet(cfn):
    variables = cfn["Globals"]["Function"]["Environment"]["Variables"] if "Globals" in cfn else None
    if variables is None:  # SAM moved the globals into each function
        variables = cfn["Resources"]["StartFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["FUNCTIONS_INTERNET"] == {
        "Fn::If": ["CreateNetwork", "false", {"Ref": "FunctionsInternet"}]
    }


def test_gpu_tasks_have_their_own_compute_environment_and_queue(cfn, resources):
    environment = resources["GpuComputeEnvironment"]["Properties"]["ComputeResources"]
    assert environment["Ec2Configuration"] == [{"ImageType": "ECS_AL2_NVIDIA"}]
    assert environment["InstanceTypes"] == {"Ref": "GpuInstanceTypes"}
    assert environment["Type"] == "EC2"  # on demand: no fallback needed
    queue = resources["GpuQueue"]["Properties"]["ComputeEnvironmentOrder"]
    assert queue == [{"Order": 1, "ComputeEnvironment": {"Ref": "GpuComputeEnvironment"}}]
    gpu_queue = {"Fn::If": ["CreateGpu", {"Ref": "GpuQueue"}, {"Ref": "AWS::NoValue"}]}
    (rule,) = [
        r for r in of_type(resources, "AWS::Events::Rule").values() if source_of(r) == ["aws.batch"]
    ]
    assert gpu_queue in rule["Properties"]["EventPattern"]["detail"]["jobQueue"]  # events reach us
    submit = next(
        s
        for _, s in _statements(resources)
        if isinstance(s, dict) and s.get("Sid") == "SubmitTaskJobs"
    )
    assert gpu_queue in submit["Resource"]
    env = resources["SubmitterFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TASK_QUEUE_GPU"] == {"Fn::If": ["CreateGpu", {"Ref": "GpuQueue"}, ""]}


def test_containers_storage_goes_on_nvme_instance_storage(cfn, resources):
    families = cfn["Parameters"]["InstanceTypes"]["Default"].split(",")
    assert {"m6id", "c6id", "r6id"} <= set(families)
    data = resources["InstanceLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    script = data["UserData"]["Fn::Base64"]
    assert "text/cloud-boothook" in script  # before Docker starts, on every boot
    assert "nvme-Amazon_EC2_NVMe_Instance_Storage_" in script
    assert "mount -o noatime" in script and "/var/lib/docker" in script
