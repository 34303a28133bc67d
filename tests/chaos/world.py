"""The chaos world: the real controller (start, advance, cancel, finish) on in-memory ports
with real files (``EfsRunFiles`` over a temporary directory), seen through the fault plan.

It plays the rest of AWS: Batch (each submitted job's script runs with bash, unless the
scenario's behaviour says otherwise; a terminated job fails without running), EventBridge
and Lambda (every event delivered 1-3 times, shuffled, held back; an invocation that fails
is delivered again a minute later, a bounded number of times) and Step Functions (Start,
retried with the same input as its Retry block does; Finish once the token is answered;
a stop, which sends the cancel function "Execution Status Change")."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from miniwdl_serverless.adapters import aws_errors
from miniwdl_serverless.adapters.efs import EfsRunFiles
from miniwdl_serverless.adapters.handed_on import HandedOnBatch, HandedOnOrchestrator
from miniwdl_serverless.adapters.memory import (
    MemoryBatch,
    MemoryCache,
    MemoryDeadLetters,
    MemoryMetrics,
    MemoryOrchestrator,
    MemoryStore,
    MemoryUploads,
    MemoryWork,
    SubmittedJob,
)
from miniwdl_serverless.adapters.retrying import Retrying
from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.controller.advance import on_batch_event
from miniwdl_serverless.controller.end import stop_run
from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.controller.ports import Ports
from miniwdl_serverless.controller.reconcile import (
    ReconcileReport,
    reconcile_run,
    replay_dead_letters,
)
from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.controller.submitter import SubmitterPorts
from miniwdl_serverless.controller.work import deliver_in_process
from miniwdl_serverless.core.backoff import Backoff
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB
from miniwdl_serverless.core.localizing import DOWNLOAD_TAG
from miniwdl_serverless.core.records import RUN_ENDED, Run
from miniwdl_serverless.core.uploads import Transfer
from miniwdl_serverless.core.work import Pacer, WorkItem
from tests.chaos.faults import Clock, Faults, Faulty, LambdaDied
from tests.unit.harness import FakeRemotes

QUEUE, FALLBACK = "queue-spot", "queue-ondemand"
RUN_ID = "chaos-run"
ARN = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{RUN_ID}"
TOKEN = "token-" + RUN_ID
STARTED_AT = "2026-12-01T10:00:00Z"
LAMBDA_RETRY_SECONDS = 61  # Lambda retries a failed asynchronous invocation after a minute
MAX_TRIES = 4  # deliveries of one event before it is given up (Lambda's retries, EventBridge's)
# a work-table item's: its stream hands a failed batch back up to MaximumRetryAttempts (1,000 in
# template.yaml) times; bounded here, still far past what a burst of injected faults needs
MAX_STREAM_TRIES = 50
SFN_RETRY = (2, 4, 8, 16)  # the Start and Finish states' Retry: 2 s, backoff rate 2, 4 more

# What a Batch job does: (status, exit code, status reason); None: run its script with bash
Outcome = tuple[str, int | None, str]
Behaviour = Callable[[str, int, str], Outcome | None]  # (job id, attempt, queue)
EXITED = "Essential container in task exited"


def runs_script(job_id: str, attempt: int, queue: str) -> Outcome | None:
    return None


class Uploads(MemoryUploads):
    """S3: keeps each uploaded file's digest (the run directory may be deleted after)."""

    def upload_file(self, path: str, uri: str) -> Transfer:
        transfer = super().upload_file(path, uri)
        self.files[uri] = self.digests[uri]
        return transfer


@dataclass
class Delivery:
    """One event on its way to a Lambda: a Batch job state change, or the execution's end."""

    detail: BatchJobDetail | None = None  # None: "Execution Status Change" (ABORTED)
    tries: int = 0
    work: WorkItem | None = None  # an item of the work table's stream (not an event)


@dataclass(kw_only=True)  # by name: the knobs are all numbers
class Traffic:
    """How events travel: copies of each (1..max_copies), out of order, held back."""

    max_copies: int = 1
    shuffle: bool = False
    delay: float = 0.0  # chance that a picked event is put back for later
    lose: float = 0.0  # chance that a job's SUCCEEDED or FAILED event never arrives (the
    # first one always is lost when this is set)
    dead_letter: bool = False  # the first final event's deliveries all fail: it is in the DLQ
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed + 7919)

    def copies(self) -> int:
        return self.rng.randint(1, self.max_copies)


RECONCILE_INTERVAL = 300.0  # the template's default schedule: every 5 minutes


class World:
    def __init__(  # noqa: PLR0913 - the world's parts, each chosen by the scenario
        self,
        root: str,
        faults: Faults,
        traffic: Traffic,
        clock: Clock,
        behaviour: Behaviour = runs_script,
    ) -> None:
        self.root, self.faults, self.traffic, self.clock = root, faults, traffic, clock
        self.behaviour = behaviour
        self.store = MemoryStore()
        self.batch = MemoryBatch()
        self.orchestrator = MemoryOrchestrator()
        self.uploads = Uploads()
        self.files = EfsRunFiles(root)
        backoff = Backoff(attempts=6, base_seconds=0.1, cap_seconds=5.0)

        def port(target: Any, name: str, retried: bool = False) -> Any:
            faulty = Faulty(target, name, faults, clock)
            return (
                Retrying(faulty, aws_errors.classify, backoff, clock.advance) if retried else faulty
            )

        self.remotes = FakeRemotes()  # URI inputs' objects (a scenario puts them)
        self.work = MemoryWork()  # the work table: its stream's items join the deliveries
        work = port(self.work, "work")
        # inside the VPC: Batch and Step Functions calls are the submitter's work items;
        # ``outside`` (the submitter, cancel, the reconciler) calls them directly
        self.ports = Ports(
            store=port(self.store, "store", retried=True),
            files=port(self.files, "files"),
            batch=HandedOnBatch(work),
            orchestrator=HandedOnOrchestrator(work),
            uploads=port(self.uploads, "uploads"),
            metrics=MemoryMetrics(),
            sources=UriSources(root=root),
            remotes=port(self.remotes, "remotes"),
            cache=port(MemoryCache(), "cache"),
            work=work,
            default_queue=QUEUE,
            default_fallback_queue=FALLBACK,
        )
        batch = port(self.batch, "batch", retried=True)
        orchestrator = port(self.orchestrator, "orchestrator")
        self.outside = replace(self.ports, batch=batch, orchestrator=orchestrator)
        self.submitter = SubmitterPorts(
            self.ports.store,
            batch,
            self.ports.metrics,
            self.ports.work,
            self.ports.cache,
            orchestrator=orchestrator,
        )
        self.pacer = Pacer(rate=1e9)
        self.queue: list[Delivery] = []
        self.scheduled: set[str] = set()  # Batch jobs the world has run (or failed, terminated)
        self.executed: list[SubmittedJob] = []  # jobs whose script ran (or would have)
        # jobs that began after their run ended: the termination is a work item for the
        # submitter, so a job may start before it is delivered, but none may be left running
        self.began_after_end: list[SubmittedJob] = []
        self.deliveries = 0
        self.dropped = 0
        self.lost = 0  # final events that never arrived (Traffic.lose)
        self.dead_letters = MemoryDeadLetters()
        self.letters = port(self.dead_letters, "dead_letters")
        self.dead_lettered = 0  # final events put in the dead-letter queue (Traffic.dead_letter)
        self.reconciler_rounds = 0
        self.reconciled = 0  # what the reconciler did
        self.failed_invocations = 0
        self.result: dict[str, Any] | None = None  # what Finish returned
        self.aborted = False

    # -- Step Functions --
    def start(self, execution_input: dict[str, Any]) -> None:
        """The Start state: retried as its Retry block retries; what still fails is caught
        and Finish runs with the error."""
        error = self._with_sfn_retries(
            lambda: start_run(execution_input, TOKEN, ARN, STARTED_AT, self.ports)
        )
        if error is not None:
            self.finish({"error": error})

    def finish(self, state: dict[str, Any]) -> None:
        box: list[dict[str, Any]] = []
        error = self._with_sfn_retries(lambda: box.append(finish_run(state, RUN_ID, self.ports)))
        self.result = box[0] if box else {"status": "FinishCrashed", "error": error}

    def _with_sfn_retries(self, call: Callable[[], Any]) -> dict[str, str] | None:
        for delay in (*SFN_RETRY, None):
            try:
                call()
                return None
            except (Exception, LambdaDied) as exn:
                self.failed_invocations += 1
                if delay is None:
                    return {"Error": type(exn).__name__, "Cause": str(exn)}
                self.clock.advance(delay)
        return None

    def answered(self) -> None:
        """Once the token has its answer, the Start state completes and Finish runs."""
        if self.result is not None or self.aborted:
            return
        answer = self.orchestrator.answers.get(TOKEN)
        if answer is None:
            return
        if answer[0] == "success":
            self.finish({"result": answer[1]})
        else:
            error, cause = answer[1]
            self.finish({"error": {"Error": error, "Cause": cause}})

    @property
    def left_open(self) -> list[str]:
        """Jobs that began after their run ended and were never terminated."""
        return [j.submission.name for j in self.began_after_end if j.terminated is None]

    def stop_execution(self) -> None:
        """``StopExecution``: the token takes no answer any more; EventBridge tells the
        cancel function."""
        self.aborted = True
        self.orchestrator.answers.setdefault(TOKEN, ("aborted", None))
        self._enqueue(Delivery(None))

    # -- AWS Batch --
    def new_jobs(self) -> list[SubmittedJob]:
        return [j for j in list(self.batch.jobs.values()) if j.batch_job_id not in self.scheduled]

    def run_job(self, job: SubmittedJob) -> None:
        """The job runs to its end (or was terminated first); its events go on their way."""
        self.scheduled.add(job.batch_job_id)
        tags = job.submission.tags
        if job.terminated is not None:
            self._emit(job, "FAILED", None, job.terminated)
            return
        if self.run_ended():
            self.began_after_end.append(job)
        self.executed.append(job)
        self._emit(job, "RUNNING", None, "")
        if DOWNLOAD_TAG in tags:  # what `aws s3 cp URI TARGET` does
            self._emit(job, *self._download(job))
            return
        outcome = self.behaviour(tags[TAG_JOB], int(tags[TAG_ATTEMPT]), job.submission.queue)
        if outcome is None:
            done = subprocess.run(
                ["/bin/bash", "-ec", job.submission.script],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            outcome = ("SUCCEEDED" if done.returncode == 0 else "FAILED", done.returncode, EXITED)
        self._emit(job, *outcome)

    def _download(self, job: SubmittedJob) -> tuple[str, int | None, str]:
        command = job.submission.command or []
        uri, target = command[-2], command[-1]
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            out.write(self.remotes.objects[uri])
        return ("SUCCEEDED", 0, EXITED)

    def _emit(self, job: SubmittedJob, status: str, exit_code: int | None, reason: str) -> None:
        job.moved(status, exit_code, reason or None, self.clock())  # what DescribeJobs says
        container: dict[str, Any] = {"logStreamName": f"default/{job.batch_job_id}"}
        if exit_code is not None:
            container["exitCode"] = exit_code
        detail = BatchJobDetail(
            jobName=job.submission.name,
            jobId=job.batch_job_id,
            jobQueue=job.submission.queue,
            status=status,  # type: ignore[arg-type]
            statusReason=reason or None,
            container=container,
            tags=job.submission.tags,
        )
        self._enqueue(Delivery(detail))

    def _enqueue(self, delivery: Delivery) -> None:
        final = delivery.detail is not None and delivery.detail.status in ("SUCCEEDED", "FAILED")
        lose = self.traffic.lose and (
            not self.lost or self.traffic.rng.random() < self.traffic.lose
        )
        if final and lose:  # the first final event always, then each by chance
            self.lost += 1
            return
        if final and self.traffic.dead_letter and not self.dead_lettered and delivery.detail:
            self.dead_lettered += 1  # as EventBridge dead-letters an event it could not deliver
            detail = delivery.detail.model_dump(mode="json", exclude_none=True)
            event = {"source": "aws.batch", "detail-type": "Batch Job State Change"}
            self.dead_letters.put(json.dumps({**event, "detail": detail}))
            return
        for _ in range(self.traffic.copies()):
            self.queue.append(Delivery(delivery.detail))

    # -- EventBridge and Lambda --
    def deliver(self, delivery: Delivery) -> None:
        self.deliveries += 1
        try:
            if delivery.work is not None:
                deliver_in_process([delivery.work], self.ports, self.submitter, self.pacer)
            elif delivery.detail is None:
                stop_run(RUN_ID, "ABORTED", self.outside)
            else:
                on_batch_event(delivery.detail, self.ports)
        except (Exception, LambdaDied):
            self.failed_invocations += 1
            if delivery.tries + 1 >= (MAX_STREAM_TRIES if delivery.work else MAX_TRIES):
                self.dropped += 1
                return
            self.clock.advance(LAMBDA_RETRY_SECONDS)
            self.queue.append(Delivery(delivery.detail, delivery.tries + 1, delivery.work))

    def next_delivery(self) -> Delivery | None:
        while self.work.queue:  # the stream's new items, each delivered (at least) once
            self.queue.append(Delivery(work=self.work.queue.pop(0)))
        while self.queue:
            index = self.traffic.rng.randrange(len(self.queue)) if self.traffic.shuffle else 0
            delivery = self.queue.pop(index)
            if len(self.queue) > 0 and self.traffic.rng.random() < self.traffic.delay:
                self.queue.append(delivery)  # held back: comes after the others
                continue
            return delivery
        return None

    def step(self) -> bool:
        """One thing happens: an event is delivered or a Batch job runs. False: quiet."""
        jobs = self.new_jobs()
        run_a_job = jobs and (
            not self.queue or (self.traffic.shuffle and self.traffic.rng.random() < 0.5)
        )
        if run_a_job:
            pick = self.traffic.rng.randrange(len(jobs)) if self.traffic.shuffle else 0
            self.run_job(jobs[pick])
            return True
        delivery = self.next_delivery()
        if delivery is None:
            return False
        self.deliver(delivery)
        self.answered()
        return True

    def reconcile(self) -> bool:
        """The scheduled reconciler's next round, RECONCILE_INTERVAL later (a round that
        crashes is simply the next round's to redo). True if it did anything."""
        self.clock.advance(RECONCILE_INTERVAL)
        self.reconciler_rounds += 1
        report = ReconcileReport()
        try:
            done = reconcile_run(RUN_ID, self.outside)
            replay_dead_letters(self.outside, self.letters, report)
        except (Exception, LambdaDied):
            self.failed_invocations += 1
            return True
        self.reconciled += len(done) + len(report.replayed)
        self.answered()
        return bool(done or report.replayed)  # a replayed letter may have submitted jobs

    def deliver_concurrently(self, workers: int) -> None:
        """Every queued event at once, from ``workers`` threads (as Lambda scales out)."""
        batch, self.queue = self.queue, []
        self.traffic.rng.shuffle(batch)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self.deliver, batch))
        self.answered()

    # -- what the run left --
    def run(self) -> Run | None:
        return self.store.get_run(RUN_ID)

    def run_ended(self) -> bool:
        run = self.run()
        return run is not None and run.status in RUN_ENDED
