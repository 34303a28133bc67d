"""The real controller on in-memory ports: a test starts a run, plays AWS Batch (each
submitted job's events, or its script run with bash on a temporary directory) and reads what
the store, the files, the Batch port and Step Functions were told. No AWS, no moto."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.adapters.handed_on import HandedOnBatch, HandedOnOrchestrator
from miniwdl_serverless.adapters.memory import (
    MemoryBatch,
    MemoryCache,
    MemoryDeadLetters,
    MemoryExecutions,
    MemoryMetrics,
    MemoryOrchestrator,
    MemoryStore,
    MemoryUploads,
    MemoryWork,
    SubmittedJob,
)
from miniwdl_serverless.adapters.memory_files import MemoryRunFiles
from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.controller.advance import on_batch_event
from miniwdl_serverless.controller.end import stop_run
from miniwdl_serverless.controller.ports import Ports
from miniwdl_serverless.controller.reconcile import ReconcilePorts, ReconcileReport, reconcile
from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.controller.submitter import SubmitterPorts
from miniwdl_serverless.controller.work import deliver_in_process
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.localizing import DownloadError, Remote, RemoteFile
from miniwdl_serverless.core.records import Job, Run
from miniwdl_serverless.core.work import Pacer

QUEUE, FALLBACK = "queue-spot", "queue-ondemand"
SPOT_RECLAIMED = "Host EC2 (instance i-0abc123def4567890) terminated."
_runs = itertools.count(1)

# What a job does when the harness plays it: (status, exit code, status reason)
Outcome = tuple[str, int | None, str | None]
Behaviour = Callable[[SubmittedJob], Outcome]


def succeeds(job: SubmittedJob) -> Outcome:
    return ("SUCCEEDED", 0, "Essential container in task exited")


class FakeRemotes:
    """The Remotes port on a dict of URI → bytes (a prefix ending in '/' lists the URIs under
    it); each change of an object is a new version. Counts probes and fetches per URI."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.probes: dict[str, int] = {}
        self.fetches: dict[str, int] = {}

    def put(self, uri: str, data: bytes) -> None:
        self.objects[uri] = data
        self.versions[uri] = self.versions.get(uri, 0) + 1

    def probe(self, uri: str, directory: bool, requester_pays: bool) -> Remote:
        self.probes[uri] = self.probes.get(uri, 0) + 1
        if directory:
            prefix = uri.rstrip("/") + "/"
            files = [
                RemoteFile(u[len(prefix) :], len(d), str(self.versions[u]))
                for u, d in sorted(self.objects.items())
                if u.startswith(prefix)
            ]
            if not files:
                raise DownloadError(uri, "no objects under this prefix")
            version = ",".join(f"{f.relative}:{f.etag}" for f in files)
            return Remote(uri, version, sum(f.size for f in files), True, tuple(files))
        if uri not in self.objects:
            raise DownloadError(uri, "no such object (404)")
        return Remote(uri, str(self.versions[uri]), len(self.objects[uri]))

    def fetch(self, uri: str, remote: Remote, requester_pays: bool, out: Any) -> int:
        self.fetches[uri] = self.fetches.get(uri, 0) + 1
        out.write(self.objects[uri])
        return len(self.objects[uri])


class Harness:
    def __init__(self, tmp_path: Path | None = None, efs_root: str | Path | None = None):
        """In-memory files, or real ones under ``tmp_path`` (to run task scripts with bash).
        The file system's root (the EFS mount the controller is confined to) is ``efs_root``,
        by default ``tmp_path`` for real files and ``/`` in memory (local mode: unconfined)."""
        self.store = MemoryStore()
        if tmp_path is not None:
            self.efs_root = str(efs_root or tmp_path)
            self.files: Any = EfsRunFiles(self.efs_root)
        else:
            self.efs_root = str(efs_root or "/")
            self.files = MemoryRunFiles(self.efs_root)
        self.root = str(tmp_path / "runs") if tmp_path is not None else "/efs/runs"
        self.batch = MemoryBatch()
        self.orchestrator = MemoryOrchestrator()
        self.metrics = MemoryMetrics()
        self.remotes = FakeRemotes()
        self.cache = MemoryCache()
        self.work = MemoryWork()
        # the functions inside the VPC hand their Batch and Step Functions calls to the
        # submitter; the reconciler and cancel (outside) make them directly: ``outside``
        self.ports = Ports(
            store=self.store,
            files=self.files,
            batch=HandedOnBatch(self.work),
            orchestrator=HandedOnOrchestrator(self.work),
            uploads=MemoryUploads(),
            metrics=self.metrics,
            sources=UriSources(root=self.efs_root),  # inline sources and local files: no AWS
            work=self.work,
            default_queue=QUEUE,
            default_fallback_queue=FALLBACK,
            remotes=self.remotes,
            cache=self.cache,
        )
        self.outside = replace(self.ports, batch=self.batch, orchestrator=self.orchestrator)
        # the work table's stream: the submitter (unpaced, on the ports as a test set them)
        # and the work function, in process
        self.pacer = Pacer(rate=1e9)
        self.work.deliver = lambda items: deliver_in_process(
            items, self.ports, self.submitter(), self.pacer
        )
        self.ended: set[str] = set()  # Batch jobs whose final event was sent
        self.executions = MemoryExecutions(self.orchestrator)  # Step Functions' running ones
        self.dead_letters = MemoryDeadLetters()
        self.run_id = ""

    def submitter(self) -> SubmitterPorts:
        p = self.ports
        return SubmitterPorts(
            p.store, self.batch, p.metrics, p.work, p.cache, orchestrator=self.orchestrator
        )

    # -- the execution --
    def start(
        self,
        source: str,
        inputs: dict[str, Any] | None = None,
        call_cache: bool = False,
        **options: Any,
    ) -> dict:
        self.run_id = f"run-{next(_runs):04d}"
        # a path to a .wdl file (with imports beside it), or the WDL text itself
        where = "workflow" if source.endswith(".wdl") else "workflow_source"
        execution_input = {where: source, "dir": self.root, **options}
        # the call cache is on by default, as for users, but off in most tests, which follow
        # each submission (the test process's environment says so: tests/conftest.py)
        config = dict(execution_input.get("config") or {})
        for key in ("MINIWDL__CALL_CACHE__GET", "MINIWDL__CALL_CACHE__PUT"):
            config.setdefault(key, "true" if call_cache else "false")
        execution_input["config"] = config
        if inputs:
            execution_input["inputs"] = inputs
        arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{self.run_id}"
        self.executions.started[self.run_id] = self.token
        started = start_run(execution_input, self.token, arn, "2026-12-01T10:00:00Z", self.ports)
        self.work.drain()
        return started

    @property
    def token(self) -> str:
        return "token-" + self.run_id

    def answer(self) -> tuple[str, Any] | None:
        """What Step Functions was told: ("success", output) or ("failure", (error, cause))."""
        return self.orchestrator.answers.get(self.token)

    def run(self) -> Run:
        run = self.store.get_run(self.run_id)
        assert run is not None
        return run

    def job(self, job_id: str) -> Job:
        job = self.store.get_job(self.run_id, job_id)
        assert job is not None, job_id
        return job

    def stop(self, status: str = "ABORTED") -> int:
        self.executions.stopped.add(self.run_id)
        stopped = stop_run(self.run_id, status, self.outside)
        self.work.drain()
        return stopped

    def reconcile(self, later: float = 3600.0, **kwargs: Any) -> ReconcileReport:
        """A reconciler round ``later`` seconds from now (past its waiting times)."""
        rp = ReconcilePorts(self.outside, self.executions, self.dead_letters)
        report = reconcile(rp, now=time.time() + later, **kwargs)
        self.work.drain()
        return report

    # -- playing AWS Batch --
    def open_jobs(self) -> list[SubmittedJob]:
        """The jobs that run (an array job's children, not the array itself)."""
        return [
            j
            for j in self.batch.jobs.values()
            if j.batch_job_id not in self.ended and j.terminated is None and j.size is None
        ]

    def batch_job_of(self, job_id: str) -> SubmittedJob:
        batch_job_id = self.job(job_id).batch_job_id
        assert batch_job_id is not None, f"{job_id} has no Batch job"
        return self.batch.jobs[batch_job_id]

    def event(
        self,
        job: SubmittedJob,
        status: str,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> str:
        """Deliver one "Batch Job State Change" for this job to the advance path."""
        self.lose(job, status, exit_code, reason)
        outcome = on_batch_event(self.detail(job, status, exit_code, reason), self.ports)
        self.work.drain()
        return outcome

    def lose(
        self,
        job: SubmittedJob,
        status: str,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Batch moves the job on (DescribeJobs says so); its event is lost unless sent."""
        if status in ("SUCCEEDED", "FAILED"):
            self.ended.add(job.batch_job_id)
        job.moved(status, exit_code, reason, time.time())

    def detail(
        self, job: SubmittedJob, status: str, exit_code: int | None, reason: str | None
    ) -> BatchJobDetail:
        return job.event_detail(status, exit_code, reason)

    def play(self, behaviour: Behaviour = succeeds, limit: int = 1000) -> None:
        """Run every submitted job (RUNNING, then its outcome) until none is left."""
        for _ in range(limit):
            self.work.drain()  # what a direct call of the controller handed on
            jobs = self.open_jobs()
            if not jobs:
                return
            job = jobs[0]
            self.event(job, "RUNNING")
            self.event(job, *behaviour(job))
        raise AssertionError("jobs kept coming")

    def execute(self, job: SubmittedJob) -> Outcome:
        """A behaviour: run the job's script with bash (real files only)."""
        env = (
            None
            if job.index is None
            else {**os.environ, "AWS_BATCH_JOB_ARRAY_INDEX": str(job.index)}
        )
        result = subprocess.run(["/bin/bash", "-ec", job.submission.script], check=False, env=env)
        status = "SUCCEEDED" if result.returncode == 0 else "FAILED"
        return (status, result.returncode, "Essential container in task exited")

    def outputs(self) -> dict[str, Any]:
        self.work.drain()  # the answer is the submitter's to send
        answer = self.answer()
        assert answer is not None and answer[0] == "success", answer
        run = self.run()
        return dict(self.files.load_value(run.outputs))
