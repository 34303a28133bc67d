"""The Lambda handlers (functions/*/app.py) fed the events in tests/events/ as AWS delivers
them: powertools parsing, logging and the controller, on in-memory ports. No AWS, no moto.

Given a world (the in-memory store, files, Batch, Step Functions, S3 and submissions, put in
place of the names each handler module imported from handlers/wiring.py), when an event
arrives, then what the handler answers and what the world was told.

The run the fixtures speak of is planned for real: start_payload.json's execution, of a
viral_pipeline whose calls are the jobs the batch_job_*.json events name. Its Batch jobs get
the ids those events carry, so every fixture goes through its handler unchanged.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from miniwdl_serverless.adapters.handed_on import HandedOnBatch, HandedOnOrchestrator
from miniwdl_serverless.adapters.memory import (
    MemoryBatch,
    MemoryMetrics,
    MemoryOrchestrator,
    MemoryStore,
    MemoryUploads,
    MemoryWork,
    SubmittedJob,
)
from miniwdl_serverless.adapters.memory import MemoryExecutions as LiveExecutions
from miniwdl_serverless.adapters.memory_files import MemoryRunFiles
from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.controller.ports import Ports, Throttled
from miniwdl_serverless.controller.reconcile import ReconcilePorts
from miniwdl_serverless.controller.submit import SubmissionPorts, execution_arn, execution_name
from miniwdl_serverless.controller.submitter import SubmitterPorts
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB
from miniwdl_serverless.core.records import (
    DONE,
    FAILED,
    RUN_FAILED,
    RUN_RUNNING,
    RUNNING,
    Run,
)
from miniwdl_serverless.core.resources import TaskSubmission
from miniwdl_serverless.core.work import Pacer
from miniwdl_serverless.local.embedded import FakeContext  # loads no moto
from miniwdl_serverless.local.work_stream import function_of, stream_event

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
BATCH_EVENTS = sorted(p.name for p in EVENTS.glob("batch_job_*.json"))
RUN = "6f1c2b7e-3d4a-4c59-9e8f-2a7b0c1d5e93"  # the execution every fixture belongs to
RUN_DIR = "/mnt/efs/miniwdl_run/20240514_093000_viral_pipeline"
QUEUES = "arn:aws:batch:us-east-1:123456789012:job-queue/miniwdl-tasks-"
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:RunWorkflow"

# The workflow start_payload.json names, in the (fake) S3 bucket it names. Its calls are the
# jobs of the Batch events: call-fastqc-0/1, call-align-0/1, call-variants, and the
# sub-workflow call call-assemble/call-spades. Inputs are the payload's s3:// URIs, as
# Strings: File inputs must be on EFS (URI inputs are not localized).
VIRAL_PIPELINE = """
version 1.0
import "assemble.wdl" as asm
workflow viral_pipeline {
  input { Array[String] samples  String reference }
  scatter (i in range(length(samples))) { call fastqc { input: reads = samples[i] } }
  scatter (i in range(length(samples))) {
    call align { input: reads = samples[i], reference = reference }
  }
  call variants { input: reference = reference }
  call asm.assemble { input: reads = samples }
  output {
    Array[String] reports = fastqc.report
    Array[String] bams = align.bam
    String vcf = variants.vcf
    String contigs = assemble.contigs
  }
}
task fastqc {
  input { String reads }
  command <<< fastqc ~{reads} >>>
  output { String report = basename(reads, ".fastq.gz") + "_fastqc.html" }
  runtime { docker: "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0", cpu: 2, memory: "4 GiB" }
}
task align {
  input { String reads  String reference }
  command <<< bwa mem ~{reference} ~{reads} >>>
  output { String bam = basename(reads, ".fastq.gz") + ".bam" }
  runtime {
    docker: "quay.io/biocontainers/bwa:0.7.17--he4a0461_11"
    cpu: 8
    memory: "16 GiB"
    maxRetries: 0
  }
}
task variants {
  input { String reference }
  command <<< lofreq call -f ~{reference} >>>
  output { String vcf = "calls.vcf" }
  runtime { docker: "quay.io/biocontainers/lofreq:2.1.5--no-such-tag", cpu: 1, memory: "1 GiB" }
}
"""
ASSEMBLE = """
version 1.0
workflow assemble {
  input { Array[String] reads }
  call spades { input: reads = reads }
  output { String contigs = spades.contigs }
}
task spades {
  input { Array[String] reads }
  command <<< spades.py -s ~{sep=" -s " reads} -o out >>>
  output { String contigs = "out/contigs.fasta" }
  runtime {
    docker: "quay.io/biocontainers/spades:3.15.5--h95f258a_1"
    cpu: 16
    memory: "32 GiB"
    preemptible: 2
  }
}
"""


def event(name: str) -> dict[str, Any]:
    """A fresh copy of a fixture."""
    return dict(json.loads((EVENTS / name).read_text()))


WORKFLOW = event("start_payload.json")["input"]["workflow"]
WDL_OBJECTS = {WORKFLOW: VIRAL_PIPELINE, WORKFLOW.rsplit("/", 1)[0] + "/assemble.wdl": ASSEMBLE}


# ---- the handlers, the Lambda context -------------------------------------------------------


@functools.cache
def function(name: str) -> ModuleType:
    """functions/<name>/app.py, loaded from its file as Lambda (and local/resources.py) do."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"handler_under_test.{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(name: str, payload: dict[str, Any]) -> Any:
    return function(name).handler(payload, FakeContext(f"{name.capitalize()}Function"))


def _then_work(handler: Any, world: World) -> Any:
    def invoked(event: Any, context: Any) -> Any:
        answer = handler(event, context)
        hand_on_work(world)
        return answer

    return invoked


def hand_on_work(world: World) -> list[Any]:
    """The work table's stream: each new item to the submitter or the work function, as a
    DynamoDB stream batch (what each returned: their partial batch responses)."""
    answers = []
    while world.work.queue:
        item = world.work.queue.pop(0)
        answers.append(invoke(function_of(item), stream_event([item])))
    return answers


# ---- the world ------------------------------------------------------------------------------


def fixture_batch_ids() -> dict[str, str]:
    """Batch job name → the Batch job id the fixture with that name carries."""
    details = [event(name)["detail"] for name in BATCH_EVENTS]
    return {detail["jobName"]: detail["jobId"] for detail in details}


@dataclass
class FixtureBatch(MemoryBatch):
    """MemoryBatch whose jobs get the Batch job ids the fixtures name (others: batch-NNNNN)."""

    ids: dict[str, str] = field(default_factory=fixture_batch_ids)

    def submit(self, submission: TaskSubmission) -> str:
        known = self.ids.get(submission.name)
        if known is None or self.find(submission.name, submission.queue):
            return super().submit(submission)
        self.jobs[known] = SubmittedJob(known, submission)
        return known


class FakeS3:
    """The S3 client the workflow sources read s3:// workflows with: get_object on a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, str] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # boto3's argument names
        uri = f"s3://{Bucket}/{Key}"
        if uri not in self.objects:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}
            raise ClientError(error, "GetObject")
        return {"Body": io.BytesIO(self.objects[uri].encode())}


@dataclass
class MemorySubmissions:
    """The SubmissionStore protocol: the bucket's objects (by key, at one version) and the
    error documents written."""

    objects: dict[tuple[str, str], tuple[str | None, bytes]] = field(default_factory=dict)
    errors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def put(self, bucket: str, key: str, body: bytes, version_id: str | None = None) -> None:
        self.objects[(bucket, key)] = (version_id, body)

    def read(self, bucket: str, key: str, version_id: str | None, limit: int) -> bytes | None:
        self.reads.append(key)
        version, body = self.objects.get((bucket, key), (None, None))
        if body is None or (version_id not in (None, "null") and version_id != version):
            return None
        return body[:limit]

    def write_error(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        self.errors[(bucket, key)] = document


@dataclass
class MemoryExecutions:
    """The Executions protocol: a state machine's executions by name (names are unique)."""

    state_machine_arn: str = STATE_MACHINE
    started: dict[str, dict[str, Any]] = field(default_factory=dict)

    def start(self, name: str, execution_input: str) -> tuple[str, bool]:
        arn = execution_arn(self.state_machine_arn, name)
        if name in self.started:
            return arn, False
        self.started[name] = json.loads(execution_input)
        return arn, True


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    files: MemoryRunFiles = field(default_factory=MemoryRunFiles)
    batch: FixtureBatch = field(default_factory=FixtureBatch)
    orchestrator: MemoryOrchestrator = field(default_factory=MemoryOrchestrator)
    uploads: MemoryUploads = field(default_factory=MemoryUploads)
    metrics: MemoryMetrics = field(default_factory=MemoryMetrics)
    s3: FakeS3 = field(default_factory=FakeS3)
    submissions: MemorySubmissions = field(default_factory=MemorySubmissions)
    executions: MemoryExecutions = field(default_factory=MemoryExecutions)
    submission_metrics: MemoryMetrics = field(default_factory=MemoryMetrics)
    work: MemoryWork = field(default_factory=MemoryWork)
    raw: dict[str, Any] = field(default_factory=dict)  # the handlers, not followed by the stream

    @property
    def counted(self) -> list[tuple[str, int]]:
        """The S3 drop's metrics, in the order first counted."""
        return list(self.submission_metrics.counts.items())

    @functools.cached_property
    def ports(self) -> Ports:
        # inside the VPC: Batch and Step Functions through the submitter (``outside``: direct)
        return Ports(
            store=self.store,
            files=self.files,
            batch=HandedOnBatch(self.work),
            orchestrator=HandedOnOrchestrator(self.work),
            uploads=self.uploads,
            metrics=self.metrics,
            sources=UriSources(lambda: self.s3),
            work=self.work,
            default_queue=QUEUES + "spot",
            default_fallback_queue=QUEUES + "ondemand",
        )

    @functools.cached_property
    def outside(self) -> Ports:
        return replace(self.ports, batch=self.batch, orchestrator=self.orchestrator)

    def run(self) -> Run:
        run = self.store.get_run(RUN)
        assert run is not None
        return run

    def job_of(self, batch_event: dict[str, Any]) -> Any:
        job = self.store.get_job(RUN, batch_event["detail"]["tags"][TAG_JOB])
        assert job is not None
        return job

    def answer(self) -> tuple[str, Any] | None:
        return self.orchestrator.answers.get(event("start_payload.json")["task_token"])

    def terminated(self) -> set[str]:
        return {j.batch_job_id for j in self.batch.jobs.values() if j.terminated}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """Every handler's module-level wiring replaced by the in-memory world."""
    world = World()
    monkeypatch.setenv("MSLS_EFS_ROOT", "/mnt/efs")  # the default run root, as on Lambda
    for name in ("start", "advance", "finish", "work"):
        monkeypatch.setattr(function(name), "ports", lambda: world.ports)
    monkeypatch.setattr(function("cancel"), "outside_ports", lambda: world.outside)
    p = world.ports
    submitter = SubmitterPorts(
        p.store, world.batch, p.metrics, p.work, p.cache, orchestrator=world.orchestrator
    )
    monkeypatch.setattr(function("submitter"), "submitter_ports", lambda: submitter)
    monkeypatch.setattr(function("submitter"), "submit_pacer", lambda: Pacer(rate=1e9))
    for name in ("start", "advance", "cancel", "reconcile"):  # each followed by the stream
        world.raw[name] = function(name).handler
        monkeypatch.setattr(function(name), "handler", _then_work(function(name).handler, world))
    monkeypatch.setattr(function("logs"), "run_store", lambda: world.store)
    submit = function("submit")
    drop = SubmissionPorts(world.submissions, world.executions, world.submission_metrics)
    monkeypatch.setattr(submit, "submission_ports", lambda: drop)
    return world


def given_the_run_started(world: World) -> dict[str, Any]:
    """start_payload.json through the start handler, its workflow in S3."""
    world.s3.objects.update(WDL_OBJECTS)
    result = invoke("start", event("start_payload.json"))
    assert result == {"run_id": RUN, "dir": RUN_DIR}, result
    return dict(result)


def advance(payload: dict[str, Any]) -> str:
    return str(invoke("advance", payload)["outcome"])


# ---- start ----------------------------------------------------------------------------------


def test_start_plans_the_run_and_submits_the_jobs_the_batch_events_speak_of(world):
    # given the workflow in S3
    world.s3.objects.update(WDL_OBJECTS)
    # when the Start state invokes the function with start_payload.json
    result = invoke("start", event("start_payload.json"))
    # then the run is planned and every call that is ready is on Batch, waiting for events
    assert result == {"run_id": RUN, "dir": RUN_DIR}
    run = world.run()
    assert (run.status, run.workflow_name, run.run_dir) == (RUN_RUNNING, "viral_pipeline", RUN_DIR)
    assert run.options["s3upload"] == "s3://my-results-bucket/runs/"
    assert json.loads(world.files.read_text(RUN_DIR + "/inputs.json")) == {
        "viral_pipeline.samples": [
            "s3://my-data-bucket/reads/S1_R1.fastq.gz",
            "s3://my-data-bucket/reads/S2_R1.fastq.gz",
        ],
        "viral_pipeline.reference": "s3://my-data-bucket/ref/NC_045512.2.fasta",
    }
    submitted = sorted(j.submission.tags[TAG_JOB] for j in world.batch.jobs.values())
    assert submitted == [
        "call-align-0",
        "call-align-1",
        "call-assemble/call-spades",
        "call-fastqc-0",
        "call-fastqc-1",
        "call-variants",
    ]
    # ... as the Batch events describe them: name, queue, image, tags, resources, command
    for name in BATCH_EVENTS:
        detail = event(name)["detail"]
        if detail["tags"][TAG_ATTEMPT] != "0":
            continue  # the spot interruption is of a later attempt
        submission = world.batch.jobs[detail["jobId"]].submission
        assert submission.name == detail["jobName"]
        assert submission.queue == detail["jobQueue"]
        assert submission.image == detail["container"]["image"]
        assert submission.tags == detail["tags"]
        assert submission.script == detail["container"]["command"][2]
        assert submission.timeout_seconds == detail["timeout"]["attemptDurationSeconds"]
        asked = detail["container"]["resourceRequirements"]
        requirements = {r["type"]: int(r["value"]) for r in asked}
        resources = submission.resources
        assert requirements == {"VCPU": resources.vcpus, "MEMORY": resources.memory_mib}, name
        assert world.job_of(event(name)).status == RUNNING
    assert world.store.get_job(RUN, "call-assemble").status == RUNNING  # its graph runs
    assert world.metrics.counts["TasksSubmitted"] == 6
    assert world.answer() is None  # Step Functions keeps waiting on the token


def test_the_submitter_submits_what_the_start_queued_and_answers_a_partial_batch(world):
    # given the run planned, its submissions in the work table (not yet delivered)
    world.s3.objects.update(WDL_OBJECTS)
    items = start_without_the_stream(world)
    assert world.batch.jobs == {} and {i.kind for i in items} == {"submit"}
    # when the stream delivers them to the submitter in one batch
    answer = invoke("submitter", stream_event(items))
    # then each is submitted once, none reported failed; delivered again, nothing more
    assert answer == {"batchItemFailures": []}
    assert len(world.batch.jobs) == len(items) == 6
    assert invoke("submitter", stream_event(items)) == {"batchItemFailures": []}
    assert len(world.batch.jobs) == 6


def test_an_unreadable_work_item_is_skipped_and_the_rest_of_its_batch_is_handled(world, caplog):
    # given the run's submissions, and among them records that are not readable work items
    world.s3.objects.update(WDL_OBJECTS)
    items = start_without_the_stream(world)
    batch = stream_event(items)
    records = batch["Records"]
    no_submission = json.loads(json.dumps(records[0]))  # a submit item whose body lost a field
    body = json.loads(no_submission["dynamodb"]["NewImage"]["body"]["S"])
    del body["submission"]["image"]
    no_submission["dynamodb"]["NewImage"]["body"]["S"] = json.dumps(body)
    no_submission["dynamodb"]["SequenceNumber"] = "1"
    not_json = json.loads(json.dumps(records[1]))
    not_json["dynamodb"]["NewImage"]["body"]["S"] = "{not json"
    not_json["dynamodb"]["SequenceNumber"] = "2"
    batch["Records"] = [no_submission, not_json, *records]
    # when the stream delivers them to the submitter
    with caplog.at_level(logging.ERROR):
        answer = invoke("submitter", batch)
    # then the unreadable ones are logged and left out, not reported for redelivery (they could
    # never succeed, and the stream would hold every later record behind them), and the rest
    # are submitted
    assert answer == {"batchItemFailures": []}
    assert len(world.batch.jobs) == len(items) == 6
    skipped = [r.__dict__ for r in caplog.records if "skipped" in r.getMessage()]
    assert [s["sequence"] for s in skipped] == ["1", "2"], caplog.text
    assert "'image'" in skipped[0]["why"] and "not JSON" in skipped[1]["why"]


def test_an_unreadable_graph_work_item_is_skipped(world, caplog):
    from miniwdl_serverless.core.work import WorkItem

    bad = WorkItem("expand", RUN, "expand#x#0", {"section": "scatter-0", "start": "zero"})
    with caplog.at_level(logging.ERROR):
        assert invoke("work", stream_event([bad])) == {"batchItemFailures": []}
    assert "unreadable work item skipped" in caplog.text


def start_without_the_stream(world: World) -> list[Any]:
    """The start function alone: what it put in the work table, taken out of it."""
    world.raw["start"](event("start_payload.json"), FakeContext("StartFunction"))
    items = list(world.work.queue)
    world.work.queue.clear()
    return items


def test_a_throttled_batch_of_submissions_is_reported_for_redelivery(world, monkeypatch):
    world.s3.objects.update(WDL_OBJECTS)
    items = start_without_the_stream(world)
    real = world.batch.submit
    calls: list[str] = []

    def throttled_third(submission: TaskSubmission) -> str:
        calls.append(submission.name)
        if len(calls) == 3:
            raise Throttled("SubmitJob: TooManyRequestsException (after 5 tries)")
        return real(submission)

    monkeypatch.setattr(world.batch, "submit", throttled_third)
    batch = stream_event(items)
    answer = invoke("submitter", batch)
    sequences = [r["dynamodb"]["SequenceNumber"] for r in batch["Records"]]
    assert answer == {"batchItemFailures": [{"itemIdentifier": n} for n in sequences[2:]]}
    assert len(world.batch.jobs) == 2
    # the stream resumes from the first item reported: all six submitted, each once
    again = {"Records": batch["Records"][2:]}
    assert invoke("submitter", again) == {"batchItemFailures": []}
    names = [j.submission.name for j in world.batch.jobs.values()]
    assert len(names) == len(set(names)) == 6


def test_a_retried_start_changes_nothing(world):
    # given the run started
    given_the_run_started(world)
    # when Lambda retries the invocation
    result = invoke("start", event("start_payload.json"))
    # then nothing more is planned or submitted
    assert result == {"run_id": RUN, "resumed": True}
    assert len(world.batch.jobs) == 6


def test_start_fails_the_run_clearly_when_the_workflow_is_not_in_s3(world):
    # given an empty bucket
    # when the Start state invokes the function
    result = invoke("start", event("start_payload.json"))
    # then the run fails before any job, and Step Functions hears why
    assert result == {"run_id": RUN, "failed": "WorkflowNotFound"}
    run = world.run()
    assert run.status == RUN_FAILED and run.error["error"] == "WorkflowNotFound"
    assert f"cannot read workflow {WORKFLOW}" in run.error["message"]
    assert "NoSuchKey" in run.error["message"]
    assert world.batch.jobs == {}
    kind, (error, cause) = world.answer()
    assert (kind, error) == ("failure", "WorkflowNotFound") and WORKFLOW in cause


# ---- advance: one test per Batch event fixture ----------------------------------------------


def test_running_event_notes_the_start_of_the_call(world):
    given_the_run_started(world)
    running = event("batch_job_running.json")
    # when Batch says call-fastqc-1 is running
    assert advance(running) == "noted"
    # then its start and log stream are on the job
    job = world.job_of(running)
    assert job.status == RUNNING and job.started_at
    assert job.log_stream == running["detail"]["container"]["logStreamName"]
    assert advance(running) == "noted"  # delivered again: the same
    assert world.job_of(running).started_at == job.started_at


def test_succeeded_event_collects_the_calls_outputs(world):
    given_the_run_started(world)
    succeeded = event("batch_job_succeeded.json")
    # when Batch says call-fastqc-0 succeeded with exit code 0
    assert advance(succeeded) == "collected"
    # then its outputs are collected, nothing else is touched, the run goes on
    job = world.job_of(succeeded)
    assert job.status == DONE and world.files.load_value(job.outputs) == {
        "fastqc.report": "S1_R1_fastqc.html"
    }
    assert world.metrics.counts["TasksSucceeded"] == 1
    assert world.run().status == RUN_RUNNING and world.terminated() == set()
    assert world.answer() is None
    assert advance(succeeded) == "resumed"  # EventBridge delivers at least once


def test_failed_exit_event_fails_the_run_and_terminates_the_other_jobs(world):
    given_the_run_started(world)
    failed = event("batch_job_failed_exit.json")
    # when Batch says call-align-1 exited 1 (maxRetries: 0)
    assert advance(failed) == "failed"
    # then the run fails with the call's error, the other five jobs are stopped, and Step
    # Functions hears it
    assert world.job_of(failed).status == FAILED
    run = world.run()
    assert run.status == RUN_FAILED and run.error["error"] == "RunFailed"
    assert run.error["message"] == "call-align-1 command failed with exit status 1"
    cause = run.error["cause"]
    assert (cause["error"], cause["exit_status"]) == ("CommandFailed", 1)
    assert cause["stderr_file"] == RUN_DIR + "/call-align-1/stderr.txt"
    assert world.terminated() == set(world.batch.jobs) - {failed["detail"]["jobId"]}
    kind, (error, _) = world.answer()
    assert (kind, error) == ("failure", "CommandFailed")
    assert json.loads(world.files.read_text(RUN_DIR + "/error.json")) == run.error


def test_cannot_pull_event_fails_the_run_with_batchs_reason(world):
    given_the_run_started(world)
    cannot_pull = event("batch_job_cannot_pull.json")
    # when Batch says call-variants never started (its image cannot be pulled)
    assert advance(cannot_pull) == "failed"
    # then the run fails and the reason names the image problem
    assert world.job_of(cannot_pull).status == FAILED
    error = world.run().error
    assert error["error"] == "RunFailed"
    assert "Task failed to start - CannotPullContainerError" in error["message"]
    assert "lofreq:2.1.5--no-such-tag" in error["message"]
    assert world.answer()[0] == "failure"


def test_spot_interrupted_event_retries_the_call_on_demand(world):
    given_the_run_started(world)
    interrupted = event("batch_job_spot_interrupted.json")
    # given spades' first try was reclaimed too (the same event, for that try)
    first = world.store.get_job(RUN, "call-assemble/call-spades").batch_job_id
    earlier = event("batch_job_spot_interrupted.json")
    earlier["detail"].update(jobId=first, jobName=world.batch.jobs[first].submission.name)
    earlier["detail"]["tags"][TAG_ATTEMPT] = "0"
    assert advance(earlier) == "retried"
    assert world.job_of(interrupted).batch_job_id == interrupted["detail"]["jobId"]  # try 2
    # when Batch says try 2 lost its host as well
    assert advance(interrupted) == "retried"
    # then preemptible: 2 is used up: try 3 goes to the on-demand queue, a fresh attempt
    job = world.job_of(interrupted)
    assert (job.status, job.attempt, job.interruptions) == (RUNNING, 2, 2)
    retry = world.batch.jobs[job.batch_job_id].submission
    assert retry.queue == QUEUES + "ondemand"
    assert retry.tags[TAG_ATTEMPT] == "2" and "-call-assemble_call-spades-try3-" in retry.name
    assert world.run().status == RUN_RUNNING and world.answer() is None
    call = RUN_DIR + "/call-assemble/call-spades"  # miniwdl's names: try 3 in work3/
    assert all(world.files.is_dir(f"{call}/{work}") for work in ("work", "work2", "work3"))
    assert world.files.read_text(f"{call}/stdout3.txt") == ""
    assert retry.script.startswith(f"cd {call}/work3\n") and "../stderr3.txt" in retry.script


@pytest.mark.parametrize("name", BATCH_EVENTS)
def test_batch_events_of_a_run_that_is_not_here_are_ignored(world, name):
    # given no run at all; when the fixture arrives; then nothing happens
    assert advance(event(name)) == "ignored: run not running"
    assert world.store.get_run(RUN) is None and world.batch.jobs == {}


def test_advance_logs_with_the_run_and_job_keys(world, monkeypatch):
    given_the_run_started(world)
    logged = io.StringIO()
    logger = function("advance").logger
    monkeypatch.setattr(logger.registered_handler, "stream", logged)
    # at INFO, as in a Lambda (the embedded AWS sets WARNING: it may have been the first to
    # import handlers/wiring.py in this process)
    level = logger.log_level
    logger.setLevel(logging.INFO)
    # when an event is handled
    try:
        assert advance(event("batch_job_succeeded.json")) == "collected"
    finally:
        logger.setLevel(level)
    # then its log line carries the run, the job, the Batch job and the Lambda context
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    (handled,) = [line for line in lines if line["message"] == "batch event handled"]
    assert handled["run_id"] == RUN and handled["job_id"] == "call-fastqc-0"
    assert handled["batch_job_id"] == "7c1e4b2a-6d3f-4a58-b9e0-1f2d3c4b5a69"
    assert (handled["status"], handled["outcome"]) == ("SUCCEEDED", "collected")
    assert handled["function_name"] == "AdvanceFunction"


# ---- reconcile ------------------------------------------------------------------------------


def test_reconcile_replays_a_lost_event_and_logs_with_the_run_and_job_keys(world, monkeypatch):
    given_the_run_started(world)
    succeeded = event("batch_job_succeeded.json")["detail"]
    # given Batch says call-fastqc-0 succeeded ten minutes ago, and its event never came
    world.batch.jobs[succeeded["jobId"]].moved("SUCCEEDED", 0, None, time.time() - 600)
    token = event("start_payload.json")["task_token"]
    runs = LiveExecutions(world.orchestrator, {RUN: token})
    reconciling = function("reconcile")
    monkeypatch.setattr(reconciling, "reconcile_ports", lambda: ReconcilePorts(world.outside, runs))
    logged = io.StringIO()
    monkeypatch.setattr(reconciling.logger.registered_handler, "stream", logged)
    level = reconciling.logger.log_level
    reconciling.logger.setLevel(logging.INFO)
    # when the schedule fires
    try:
        result = invoke("reconcile", event("reconcile_scheduled.json"))
    finally:
        reconciling.logger.setLevel(level)
    # then the transition is replayed, and said so with the run and job keys
    replayed = f"replaying SUCCEEDED of Batch job {succeeded['jobId']}"
    assert result["actions"] == {RUN: [f"call-fastqc-0: {replayed}"]}
    assert world.job_of({"detail": succeeded}).status == DONE
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    (line,) = [line for line in lines if line["message"] == replayed]
    assert (line["run_id"], line["job_id"]) == (RUN, "call-fastqc-0")
    assert line["function_name"] == "ReconcileFunction"
    # and on demand, for one run, nothing more is left to do
    assert invoke("reconcile", {"run_id": RUN}) == {
        "runs": 1,
        "actions": {},
        "problems": {},
        "dead_letters_replayed": [],
        "dead_letters_kept": [],
    }


# ---- cancel ---------------------------------------------------------------------------------


def test_cancel_of_an_unknown_run_terminates_nothing(world):
    # given no run named run-0123456789ab
    # when its execution is aborted
    result = invoke("cancel", event("sfn_execution_aborted.json"))
    # then there is nothing to stop
    assert result == {"run_id": "run-0123456789ab", "terminated": 0}
    assert world.store.get_run("run-0123456789ab") is None


def test_cancel_of_a_running_run_fails_it_and_terminates_its_jobs(world):
    # given the run started (six Batch jobs running)
    given_the_run_started(world)
    aborted = event("sfn_execution_aborted.json")
    arn = event("start_payload.json")["execution_arn"]
    aborted["detail"].update(executionArn=arn, name=RUN)
    # when its execution is aborted
    result = invoke("cancel", aborted)
    # then the run fails as stopped and every job is terminated
    assert result == {"run_id": RUN, "terminated": 6}
    run = world.run()
    assert run.status == RUN_FAILED and run.error["error"] == "RunStopped"
    assert "ABORTED" in run.error["message"]
    assert world.terminated() == set(world.batch.jobs)
    reasons = {j.terminated for j in world.batch.jobs.values()}
    assert reasons == {"miniwdl-serverless: execution ABORTED"}
    assert invoke("cancel", aborted)["run_id"] == RUN  # delivered again: harmless


# ---- finish ---------------------------------------------------------------------------------


def test_finish_after_a_failed_call_writes_and_uploads_the_error(world):
    # given the run failed on call-align-1's exit status 1 (what finish_payload_failed.json is
    # the end of)
    given_the_run_started(world)
    assert advance(event("batch_job_failed_exit.json")) == "failed"
    failed = world.run()
    world.files.write_text(RUN_DIR + "/call-align-1/stderr.txt", "[E::bwa_idx_load] fail\n")
    # when the Finish state invokes the function with the caught error
    result = invoke("finish", event("finish_payload_failed.json"))
    # then it answers the Fail state with the run's error, and uploads what explains it
    assert (result["status"], result["error"]) == ("failed", "RunFailed")
    cause = json.loads(result["cause"])
    assert cause["message"] == "call-align-1 command failed with exit status 1"
    folder = "s3://my-results-bucket/runs/"  # ends in '/': uploaded into that folder
    assert cause["cause"]["stderr_s3file"] == folder + "CommandFailed_stderr.txt"
    assert world.uploads.files == {
        folder + "CommandFailed_stderr.txt": RUN_DIR + "/call-align-1/stderr.txt",
        folder + "CommandFailed_stdout.txt": RUN_DIR + "/call-align-1/stdout.txt",
        folder + "workflow.log": RUN_DIR + "/workflow.log",
    }
    assert world.uploads.objects[folder + "error.json"]["error"] == "RunFailed"
    assert json.loads(world.files.read_text(RUN_DIR + "/error.json"))["error"] == "RunFailed"
    assert world.files.is_dir(RUN_DIR)  # delete_after: success
    assert world.run().status == RUN_FAILED and world.run().error == failed.error


def test_finish_of_a_run_never_recorded_reports_the_caught_error(world):
    # given no run record (Start failed before it wrote one)
    payload = event("finish_payload_failed.json")
    # when the Finish state invokes the function
    result = invoke("finish", payload)
    # then the caught error is what the Fail state gets
    assert (result["status"], result["error"]) == ("failed", "CommandFailed")
    cause = json.loads(result["cause"])
    assert cause == {"error": "CommandFailed", "message": payload["state"]["error"]["Cause"]}
    assert world.uploads.files == {} and world.uploads.objects == {}


# ---- submit ---------------------------------------------------------------------------------

SUBMISSION = json.dumps(event("start_payload.json")["input"]).encode()  # an execution input


def put_object_of(world: World, payload: dict[str, Any], body: bytes = SUBMISSION) -> None:
    """The object the "Object Created" event tells of, at the version it names."""
    detail = payload["detail"]
    bucket, item = detail["bucket"]["name"], detail["object"]
    world.submissions.put(bucket, item["key"], body, item["version-id"])


def test_submit_starts_one_execution_named_after_the_object_version(world):
    created = event("s3_object_created_submit.json")
    # given the submission object in the bucket
    put_object_of(world, created)
    # when S3 tells of it
    result = invoke("submit", created)
    # then one execution starts, with the object as its input, named after its version
    bucket, item = "miniwdl-serverless-submissions", created["detail"]["object"]
    name = execution_name(bucket, item["key"], item["version-id"], item["etag"])
    assert name.startswith("viral_pipeline-")
    assert result == {
        "outcome": "started",
        "submission": f"s3://{bucket}/submit/viral_pipeline.json",
        "execution_name": name,
        "execution_arn": execution_arn(STATE_MACHINE, name),
    }
    assert world.executions.started == {name: json.loads(SUBMISSION)}
    assert world.counted == [("SubmissionsStarted", 1)]
    # and the same notification delivered again starts nothing more
    assert invoke("submit", created)["outcome"] == "duplicate"
    assert len(world.executions.started) == 1
    assert world.counted[-1] == ("SubmissionsDuplicate", 1)


def test_submit_takes_the_key_as_stored_spaces_plus_and_all(world):
    created = event("s3_object_created_submit_space_key.json")
    put_object_of(world, created)
    result = invoke("submit", created)
    assert result["outcome"] == "started"
    assert result["submission"].endswith("/submit/viral surveillance/batch 1+2 é.json")
    assert world.submissions.reads == ["submit/viral surveillance/batch 1+2 é.json"]
    (name,) = world.executions.started
    assert name.startswith("viral-surveillance-batch-1-2-") and len(name) <= 80


def test_submit_ignores_objects_outside_submit(world):
    created = event("s3_object_created_outside_submit.json")
    put_object_of(world, created)
    result = invoke("submit", created)
    assert result["outcome"] == "ignored"
    assert world.submissions.reads == [] and world.executions.started == {}
    assert world.counted == []


def test_submit_rejects_an_invalid_submission_with_an_error_object(world):
    created = event("s3_object_created_submit.json")
    # given the object is not JSON
    put_object_of(world, created, b"workflow: s3://my-wdl-bucket/workflows/viral_pipeline.wdl")
    # when S3 tells of it
    result = invoke("submit", created)
    # then nothing starts and errors/viral_pipeline.json.error.json says why
    assert result["outcome"] == "rejected"
    assert result["error_key"] == "errors/viral_pipeline.json.error.json"
    assert world.executions.started == {}
    document = world.submissions.errors[
        ("miniwdl-serverless-submissions", "errors/viral_pipeline.json.error.json")
    ]
    assert document["error"] == "InvalidSubmission" and "not valid JSON" in document["message"]
    assert document["version"] == created["detail"]["object"]["version-id"]
    assert document["started"] is False
    assert world.counted == [("SubmissionsRejected", 1)]


def test_submit_of_an_object_already_gone_starts_nothing(world):
    result = invoke("submit", event("s3_object_created_submit.json"))
    assert result["outcome"] == "gone"
    assert world.executions.started == {} and world.submissions.errors == {}


# ---- logs -----------------------------------------------------------------------------------


@pytest.fixture
def run_on_disk(world, tmp_path, monkeypatch):
    """A run record whose directory is a real one (the logs function reads files with os),
    under the EFS root (here a temporary directory)."""
    monkeypatch.setenv("MSLS_EFS_ROOT", str(tmp_path))
    run_dir = tmp_path / "20240514_093000_viral_pipeline"
    (run_dir / "call-align-1").mkdir(parents=True)
    (run_dir / "workflow.log").write_text("".join(f"line {i}\n" for i in range(100)))
    (run_dir / "call-align-1" / "stderr.txt").write_text("[E::bwa_idx_load] fail\n")
    (tmp_path / "secret.txt").write_text("not yours\n")
    world.store.put_run(Run(RUN, status=RUN_RUNNING, run_dir=str(run_dir)))
    return run_dir


def test_logs_reads_the_tail_of_a_file_in_the_run_directory(world, run_on_disk):
    size = (run_on_disk / "workflow.log").stat().st_size
    tail = invoke("logs", {"run_id": RUN, "tail_bytes": 16})
    assert tail == {
        "path": "workflow.log",
        "size": size,
        "offset": size - 16,
        "next_offset": size,
        "data": "line 98\nline 99\n",
    }
    stderr = invoke("logs", {"run_id": RUN, "path": "call-align-1/stderr.txt"})
    assert stderr["data"] == "[E::bwa_idx_load] fail\n"


@pytest.mark.parametrize(
    "request_, error",
    [
        ({"run_id": RUN, "path": "../secret.txt"}, "Forbidden"),
        ({"run_id": RUN, "path": "call-align-1/missing.txt"}, "NotFound"),
        ({"run_id": "no-such-run"}, "NotFound"),
        ({"run_id": RUN, "tail_bytes": -1}, "BadRequest"),
        ({}, "BadRequest"),
    ],
)
def test_logs_refuses_what_it_does_not_serve(world, run_on_disk, request_, error):
    result = invoke("logs", request_)
    assert result["error"] == error, result
    assert "data" not in result


# ---- malformed events -----------------------------------------------------------------------


def without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return payload


def replaced(payload: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


MALFORMED: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "start without a task token": (
        "start",
        lambda: without(event("start_payload.json"), "task_token"),
    ),
    "advance with an unknown Batch status": (
        "advance",
        lambda: replaced(event("batch_job_succeeded.json"), "DONE", "detail", "status"),
    ),
    "advance without its EventBridge envelope": (
        "advance",
        lambda: event("batch_job_succeeded.json")["detail"],
    ),
    "cancel with an unknown execution status": (
        "cancel",
        lambda: replaced(event("sfn_execution_aborted.json"), "PAUSED", "detail", "status"),
    ),
    "finish without the execution name": (
        "finish",
        lambda: without(event("finish_payload_failed.json"), "execution_name"),
    ),
    "submit from another source": (
        "submit",
        lambda: replaced(event("s3_object_created_submit.json"), "aws.batch", "source"),
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_event_fails_validation_before_anything_happens(world, case):
    name, make = MALFORMED[case]
    world.s3.objects.update(WDL_OBJECTS)
    with pytest.raises(ValidationError):
        invoke(name, make())
    assert world.store.get_run(RUN) is None and world.store.writes == 0
    assert world.batch.jobs == {} and world.orchestrator.answers == {}
    assert world.submissions.reads == [] and world.executions.started == {}
