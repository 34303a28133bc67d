"""The embedded AWS Batch of the default mode: the calls the project makes (RegisterJobDefinition,
DescribeJobDefinitions, SubmitJob, ListJobs, DescribeJobs, TerminateJob) served in process,
their jobs handed straight to the local Batch executor (batch_executor.py).

Every boto3 Batch client of the process reaches it (local/in_process.py), so neither moto's
Batch (and its EC2, which importing it imports) nor an HTTP request and its serializer is in
the way (~10 ms a call in moto). ``--embedded-aws full`` and server mode keep moto's Batch.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from miniwdl_serverless.local import in_process
from miniwdl_serverless.local.in_process import ServiceError
from miniwdl_serverless.local.resources import ACCOUNT, LOCAL_QUEUE, LOCAL_QUEUE_ARN, REGION

BATCH_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}"
QUEUE_ARN = LOCAL_QUEUE_ARN
DESCRIBE_LIMIT = 100  # DescribeJobs' ids a call
LIST_PAGE = 100  # ListJobs' default page size
SERVICE = "batch"  # botocore's event name of the service
CHILD_STATUSES = ("STARTING", "FAILED", "RUNNING", "SUCCEEDED", "RUNNABLE", "SUBMITTED", "PENDING")


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class BatchClientError(ServiceError):
    """Batch's ClientException (HTTP 400): the request was refused."""

    def __init__(self, message: str):
        super().__init__("ClientException", message)


class Definition:
    """A registered job definition revision."""

    def __init__(self, name: str, revision: int, request: dict[str, Any]):
        self.name, self.revision = name, revision
        self.arn = f"{BATCH_ARN}:job-definition/{name}:{revision}"
        self.type = request.get("type", "container")
        self.container_properties: dict[str, Any] = request.get("containerProperties") or {}
        self.tags: dict[str, str] = dict(request.get("tags") or {})
        self.request = request

    def describe(self) -> dict[str, Any]:
        described = {
            "jobDefinitionName": self.name,
            "jobDefinitionArn": self.arn,
            "revision": self.revision,
            "status": "ACTIVE",
            "type": self.type,
            "containerProperties": self.container_properties,
            "tags": self.tags,
        }
        for key in ("parameters", "propagateTags", "timeout", "retryStrategy"):
            if key in self.request:
                described[key] = self.request[key]
        return described


class Queue:
    arn = QUEUE_ARN
    name = LOCAL_QUEUE


class LocalJob:
    """A submitted job: what the local executor and the event bus read of moto's Job (its
    attribute names), and DescribeJobs' shape."""

    job_queue = Queue()

    def __init__(  # noqa: PLR0913 - SubmitJob's request, its definition and the child's index
        self,
        request: dict[str, Any],
        definition: Definition,
        job_id: str,
        tags: dict[str, str],
        index: int | None = None,
    ):
        self.job_id, self.job_name = job_id, request["jobName"]
        self.arn = f"{BATCH_ARN}:job/{job_id}"
        self.job_definition = definition
        self.container_overrides: dict[str, Any] = request.get("containerOverrides") or {}
        self.timeout = request.get("timeout")
        self.tags = tags
        self.status = "SUBMITTED"
        self.array_properties: dict[str, Any] = {}
        if index is not None:
            self.array_properties = {"index": index}
        elif request.get("arrayProperties"):
            self.array_properties = {"size": int(request["arrayProperties"]["size"])}
        self.job_created_at = datetime.now()
        self.job_started_at: datetime | None = None
        self.job_stopped_at: datetime | None = None
        self.job_stopped = False
        self.job_stopped_reason: str | None = None
        self.stop = False
        self.exit_code: int | None = None
        self._stream_name = f"{definition.name}/default/{job_id}"
        self.log_stream_name: str | None = None
        self.attempts: list[dict[str, Any]] = []
        self._child_jobs: list[LocalJob] | None = None

    # -- what the executor calls (moto's Job's names) --
    def _start_attempt(self) -> None:
        started = self.job_started_at or datetime.now()
        container: dict[str, Any] = {"logStreamName": self.log_stream_name}
        self.attempts.append({"container": container, "startedAt": _millis(started)})

    def _mark_stopped(self, success: bool = True) -> None:
        if self.job_stopped:
            return
        self.job_stopped = True
        self.job_stopped_at = datetime.now()
        self.status = "SUCCEEDED" if success else "FAILED"
        if self.attempts:
            attempt = self.attempts[-1]
            attempt["stoppedAt"] = _millis(self.job_stopped_at)
            if self.exit_code is not None:
                attempt["container"]["exitCode"] = self.exit_code
            if self.job_stopped_reason:
                attempt["statusReason"] = self.job_stopped_reason

    def terminate(self, reason: str) -> None:
        if not self.stop and not self.job_stopped:
            self.stop = True
            self.job_stopped_reason = reason

    # -- ListJobs and DescribeJobs --
    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "jobId": self.job_id,
            "jobArn": self.arn,
            "jobName": self.job_name,
            "createdAt": _millis(self.job_created_at),
            "status": self.status,
            "jobDefinition": self.job_definition.arn,
        }
        if self.job_stopped_reason is not None:
            result["statusReason"] = self.job_stopped_reason
        if self.job_started_at is not None:
            result["startedAt"] = _millis(self.job_started_at)
        if self.job_stopped_at is not None:
            result["stoppedAt"] = _millis(self.job_stopped_at)
        if self.exit_code is not None:
            result["container"] = {"exitCode": self.exit_code}
        if self.array_properties:
            result["arrayProperties"] = dict(self.array_properties)
        return result

    def describe(self) -> dict[str, Any]:
        result = self.summary()
        result.update(jobQueue=self.job_queue.arn, dependsOn=[], parameters={})
        result["tags"] = dict(self.tags)
        result["container"] = self._container()
        result["attempts"] = [dict(a) for a in self.attempts]
        if self.timeout:
            result["timeout"] = self.timeout
        if self._child_jobs is not None:
            counts = dict.fromkeys(CHILD_STATUSES, 0)
            for child in self._child_jobs:
                counts[child.status] += 1
            result["arrayProperties"] = {"statusSummary": counts, "size": len(self._child_jobs)}
        return result

    def _container(self) -> dict[str, Any]:
        properties, overrides = self.job_definition.container_properties, self.container_overrides
        environment = {e["name"]: e["value"] for e in properties.get("environment", [])}
        environment.update({e["name"]: e["value"] for e in overrides.get("environment", [])})
        environment["AWS_BATCH_JOB_ID"] = self.job_id
        details: dict[str, Any] = {
            "image": properties.get("image", ""),
            "command": overrides.get("command") or properties.get("command", []),
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
            "resourceRequirements": overrides.get("resourceRequirements")
            or properties.get("resourceRequirements", []),
            "volumes": properties.get("volumes", []),
            "mountPoints": properties.get("mountPoints", []),
        }
        if self.exit_code is not None:
            details["exitCode"] = self.exit_code
        if self.log_stream_name:
            details["logStreamName"] = self.log_stream_name
        return details


class LocalBatchService:
    """The embedded Batch: one queue (LOCAL_QUEUE), its jobs indexed by id and by name, each
    submitted job handed to ``accept`` (an array job: ``accept_array(parent, children)``)."""

    def __init__(
        self,
        accept: Callable[[Any], None],
        accept_array: Callable[[Any, list[Any]], None],
    ):
        self.accept, self.accept_array = accept, accept_array
        self.lock = threading.Lock()
        self.definitions: dict[str, list[Definition]] = {}  # name → its revisions
        self.jobs: dict[str, LocalJob] = {}  # id (and ARN) → job
        self.by_name: dict[str, list[LocalJob]] = {}  # name (lowercase) → jobs, oldest first
        self.order: list[LocalJob] = []  # every job submitted (not children), oldest first

    # -- job definitions --
    def register_job_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("jobDefinitionName")
        if not name:
            raise BatchClientError("jobDefinitionName must be provided")
        with self.lock:
            revisions = self.definitions.setdefault(name, [])
            definition = Definition(name, len(revisions) + 1, request)
            revisions.append(definition)
        return {
            "jobDefinitionName": name,
            "jobDefinitionArn": definition.arn,
            "revision": definition.revision,
        }

    def describe_job_definitions(self, request: dict[str, Any]) -> dict[str, Any]:
        names = [request["jobDefinitionName"]] if request.get("jobDefinitionName") else []
        names += request.get("jobDefinitions") or []
        with self.lock:
            if not names:
                found = [d for revisions in self.definitions.values() for d in revisions]
            else:
                found = [d for name in names for d in self._definitions_named(name)]
        return {"jobDefinitions": [d.describe() for d in found]}

    def _definitions_named(self, reference: str) -> list[Definition]:
        """By name, name:revision or ARN."""
        reference = reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference
        name, _, revision = reference.partition(":")
        revisions = self.definitions.get(name, [])
        if revision:
            return [d for d in revisions if str(d.revision) == revision]
        return list(revisions)

    # -- jobs --
    def submit_job(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = str(request.get("jobQueue", ""))
        if queue not in (LOCAL_QUEUE, QUEUE_ARN):
            raise BatchClientError(f"Job queue {queue} does not exist")
        with self.lock:
            found = self._definitions_named(str(request.get("jobDefinition", "")))
        if not found:
            raise BatchClientError(f"Job definition {request.get('jobDefinition')} does not exist")
        definition = max(found, key=lambda d: d.revision)
        tags = dict(definition.tags) if request.get("propagateTags") else {}
        tags.update(request.get("tags") or {})
        job = LocalJob(request, definition, str(uuid.uuid4()), tags)
        self._add(job)
        if "size" in job.array_properties:
            children = [
                LocalJob(request, definition, f"{job.job_id}:{i}", tags, index=i)
                for i in range(job.array_properties["size"])
            ]
            job._child_jobs = children
            with self.lock:
                self.jobs.update((child.job_id, child) for child in children)
            self.accept_array(job, children)
        else:
            self.accept(job)
        return {"jobArn": job.arn, "jobName": job.job_name, "jobId": job.job_id}

    def _add(self, job: LocalJob) -> None:
        with self.lock:
            self.jobs[job.job_id] = self.jobs[job.arn] = job
            self.by_name.setdefault(job.job_name.lower(), []).append(job)
            self.order.append(job)

    def list_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        candidates = self._candidates(request)
        start = int(request.get("nextToken") or 0)
        size = int(request.get("maxResults") or LIST_PAGE)
        page = candidates[start : start + size]
        response: dict[str, Any] = {"jobSummaryList": [job.summary() for job in page]}
        if start + size < len(candidates):
            response["nextToken"] = str(start + size)
        return response

    def _candidates(self, request: dict[str, Any]) -> list[LocalJob]:
        """ListJobs' jobs: by array parent or queue; by the JOB_NAME filter (every status), else
        of ``jobStatus`` (RUNNING when not given, as AWS does)."""
        with self.lock:
            if request.get("arrayJobId"):
                parent = self.jobs.get(request["arrayJobId"])
                jobs = list(parent._child_jobs or []) if parent else []
            elif request.get("jobQueue") in (LOCAL_QUEUE, QUEUE_ARN):
                jobs = self._named(request.get("filters"))
            else:
                raise BatchClientError(f"Job queue {request.get('jobQueue')} does not exist")
        if request.get("filters"):
            return jobs
        status = request.get("jobStatus") or "RUNNING"
        return [job for job in jobs if job.status == status]

    def _named(self, filters: list[dict[str, Any]] | None) -> list[LocalJob]:
        names = [f for f in filters or [] if f.get("name") == "JOB_NAME"]
        if not names:
            return list(self.order)
        found: list[LocalJob] = []
        for value in (v.lower() for f in names for v in f.get("values", [])):
            if value.endswith("*"):
                found += [j for j in self.order if j.job_name.lower().startswith(value[:-1])]
            else:
                found += self.by_name.get(value, [])
        return found

    def describe_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        ids = request.get("jobs") or []
        if len(ids) > DESCRIBE_LIMIT:
            raise BatchClientError(f"at most {DESCRIBE_LIMIT} jobs a call")
        with self.lock:
            found = [self.jobs[i] for i in ids if i in self.jobs]
        return {"jobs": [job.describe() for job in found]}

    def terminate_job(self, request: dict[str, Any]) -> dict[str, Any]:
        if not request.get("jobId") or not request.get("reason"):
            raise BatchClientError("'jobId' and 'reason' are required fields")
        with self.lock:
            job = self.jobs.get(request["jobId"])
        if job is not None:
            job.terminate(request["reason"])
            for child in job._child_jobs or []:
                child.terminate(request["reason"])
        return {}


def serve(service: LocalBatchService | None) -> None:
    """Batch calls of every boto3 client go to ``service`` (None: to moto again)."""
    in_process.serve(SERVICE, service)


def suspended() -> contextlib.AbstractContextManager[None]:
    """moto's Batch for every client meanwhile (tests of moto's Batch, in a process that holds
    an embedded AWS), then the served service again."""
    return in_process.suspended(SERVICE)
