"""The BatchJobs port on AWS Batch: shared job definitions, find by name, submit, terminate."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import BATCH_NAME_LIMIT, TAG_STACK, safe_name
from miniwdl_serverless.core.reconciling import describe_batches
from miniwdl_serverless.core.resources import Resources, TaskSubmission


def job_definition_name(prefix: str, image: str, resources: Resources, config: str = "") -> str:
    """One definition per image (and GPU shape): registered once, reused by every task.

    ``config`` is the rest of what the definition holds (volume, mount, role): when it changes,
    e.g. a redeployed stack with another file system, so does the name. The digest is always
    kept whole, however long the prefix and image are.
    """
    shape = f"gpu{resources.gpus}" if resources.gpus else "cpu"
    slug = safe_name(image, 60)
    key = f"{image}|{shape}" + (f"|{config}" if config else "")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    head = f"{prefix}-{slug}-{shape}"[: BATCH_NAME_LIMIT - 11]
    return f"{head}-{digest}"


@dataclass
class EfsVolume:
    """The EFS file system as the task jobs mount it (same path as in the Lambdas)."""

    mount_path: str
    file_system_id: str | None = None
    access_point_id: str | None = None

    def volume(self) -> dict[str, Any]:
        if not self.file_system_id:  # local mode / no EFS: a host path
            return {"name": "efs", "host": {"sourcePath": self.mount_path}}
        config: dict[str, Any] = {
            "fileSystemId": self.file_system_id,
            "transitEncryption": "ENABLED",
        }
        if self.access_point_id:
            config["authorizationConfig"] = {
                "accessPointId": self.access_point_id,
                "iam": "ENABLED",
            }
        return {"name": "efs", "efsVolumeConfiguration": config}


@dataclass
class BatchAdapter:
    client: Any
    efs: EfsVolume
    definition_prefix: str = "miniwdl-serverless"
    job_role_arn: str | None = None
    stack_name: str | None = None  # tagged on every job: the stack's functions may stop only those
    _definitions: dict[str, str] = field(default_factory=dict)
    _uncertain: set[str] = field(default_factory=set)  # names whose SubmitJob may have landed

    def _config(self) -> str:
        """What every definition shares besides image and shape (part of its name's digest)."""
        shared = {"volume": self.efs.volume(), "mount": self.efs.mount_path}
        return json.dumps({**shared, "role": self.job_role_arn}, sort_keys=True)

    def job_definition(self, image: str, resources: Resources) -> str:
        """ARN of the shared definition for this image, registering it the first time."""
        name = job_definition_name(self.definition_prefix, image, resources, self._config())
        if name in self._definitions:
            return self._definitions[name]
        found = self.client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE").get(
            "jobDefinitions", []
        )
        if found:
            arn = max(found, key=lambda d: d["revision"])["jobDefinitionArn"]
        else:
            properties: dict[str, Any] = {
                "image": image,
                "command": ["/bin/bash", "-c", "echo no command given; exit 1"],
                "resourceRequirements": Resources(gpus=resources.gpus).requirements(),
                "volumes": [self.efs.volume()],
                "mountPoints": [
                    {"sourceVolume": "efs", "containerPath": self.efs.mount_path, "readOnly": False}
                ],
            }
            if self.job_role_arn:
                properties["jobRoleArn"] = self.job_role_arn
            arn = self.client.register_job_definition(
                jobDefinitionName=name,
                type="container",
                containerProperties=properties,
                tags={"miniwdl-serverless:image": image[:256]},
                propagateTags=True,
            )["jobDefinitionArn"]
        self._definitions[name] = arn
        return arn

    def find(self, name: str, queue: str) -> str | None:
        """The id of an already submitted job with this name (so nothing is submitted twice)."""
        pages = self.client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}]
        )
        for page in pages:
            for summary in page.get("jobSummaryList", []):
                if summary.get("jobName") == name:
                    return str(summary["jobId"])
        return None

    def submit(self, submission: TaskSubmission) -> str:
        """One SubmitJob. Only after a call whose outcome is unknown (a timeout, a 5xx: it may
        have gone through) is the name looked up first, so that a retry adopts the job instead
        of doubling it; a refusal (4xx: throttled, invalid) submitted nothing."""
        if submission.name in self._uncertain:
            existing = self.find(submission.name, submission.queue)
            if existing:
                self._uncertain.discard(submission.name)
                return existing
        try:
            batch_job_id = self._submit_job(submission)
        except Exception as exn:
            if not _refused(exn):
                self._uncertain.add(submission.name)
            raise
        self._uncertain.discard(submission.name)
        return batch_job_id

    def _submit_job(self, submission: TaskSubmission) -> str:
        resources = submission.resources
        environment = [{"name": k, "value": v} for k, v in sorted(submission.environment.items())]
        tags = dict(submission.tags)
        if self.stack_name:  # last, so a run's own tags cannot claim another stack
            tags[TAG_STACK] = self.stack_name
        extra: dict[str, Any] = {}
        if submission.array_size is not None:  # one job, that many children (core/arrays.py)
            extra["arrayProperties"] = {"size": submission.array_size}
        response = self.client.submit_job(
            jobName=submission.name,
            jobQueue=submission.queue,
            jobDefinition=self.job_definition(submission.image, resources),
            containerOverrides={
                "command": submission.command or ["/bin/bash", "-ec", submission.script],
                "environment": environment,
                "resourceRequirements": resources.requirements(),
            },
            tags={k[:128]: v[:256] for k, v in tags.items()},
            propagateTags=True,
            timeout={"attemptDurationSeconds": max(60, submission.timeout_seconds)},
            **extra,
        )
        return str(response["jobId"])

    def terminate(self, batch_job_id: str, reason: str) -> None:
        self.client.terminate_job(jobId=batch_job_id, reason=reason[:1024])

    def describe(self, batch_job_ids: list[str]) -> list[BatchJobDetail]:
        """DescribeJobs, 100 ids a call (its limit); each job as the event detail it sends."""
        found: list[BatchJobDetail] = []
        for batch in describe_batches(batch_job_ids):
            for job in self.client.describe_jobs(jobs=batch).get("jobs", []):
                found.append(BatchJobDetail.model_validate(job))
        return found


def _refused(exn: BaseException) -> bool:
    """A client error with a 4xx status: the request was refused, nothing was created."""
    if not isinstance(exn, ClientError):
        return False
    status = exn.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return 400 <= int(status) < 500


def adapter_from_environment(client: Any) -> BatchAdapter:
    """The adapter as the Lambdas configure it (template.yaml sets these variables)."""
    return BatchAdapter(
        client=client,
        efs=EfsVolume(
            mount_path=os.environ.get("MSLS_EFS_ROOT", "/mnt/efs"),
            file_system_id=os.environ.get("EFS_FILE_SYSTEM_ID") or None,
            access_point_id=os.environ.get("EFS_ACCESS_POINT_ID") or None,
        ),
        definition_prefix=os.environ.get("JOB_DEFINITION_PREFIX", "miniwdl-serverless"),
        job_role_arn=os.environ.get("TASK_JOB_ROLE_ARN") or None,
        stack_name=os.environ.get("STACK_NAME") or None,
    )
