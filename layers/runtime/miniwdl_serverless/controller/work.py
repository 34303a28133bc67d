"""The work function's work: the parts of runs' graph work that invocations handed on when
they reached their budget (offers of ready jobs, ranges of a wide scatter's shards), and what
the functions outside the VPC hand in because it needs the file system (a resubmission the
submitter found no Batch job for, a Batch state change the reconciler replays, a quiet run to
settle). Each part goes through the one driver, within its own budget; redoing a part is
harmless."""

from __future__ import annotations

import logging

from miniwdl_serverless.controller.actions import (
    Action,
    AttemptFailed,
    ExpandShards,
    Offer,
    ReleaseWaiters,
    Submit,
)
from miniwdl_serverless.controller.advance import loaded_context, on_batch_event
from miniwdl_serverless.controller.drive import Driver
from miniwdl_serverless.controller.localize import refused_download
from miniwdl_serverless.controller.ports import Ports, TransientError
from miniwdl_serverless.controller.reconcile import settle
from miniwdl_serverless.controller.submitter import SubmitterPorts, handle_items
from miniwdl_serverless.core.records import RUN_RUNNING, RUNNING
from miniwdl_serverless.core.work import (
    OUTSIDE_KINDS,
    ExpandRange,
    GraphWork,
    Offers,
    Pacer,
    Refused,
    Release,
    Replay,
    Resubmission,
    Settle,
    WorkItem,
    graph_work,
    remaining_seconds,
)

log = logging.getLogger("miniwdl_serverless.controller")


def on_graph_work(item: WorkItem, ports: Ports) -> str:
    """Carry one handed-on part out; returns what was done (for logs and tests). Raises what
    should make the stream deliver it again (a TransientError, AnswerNotSent)."""
    piece = graph_work(item)
    if isinstance(piece, Replay):  # the advance path judges the run itself (ended: terminate)
        return on_batch_event(piece.detail, ports)
    run = ports.store.get_run(item.run_id)
    if run is None or run.status != RUN_RUNNING:
        return "run ended"
    if isinstance(piece, Settle):
        done = settle(run, ports, piece.quiet_after, piece.now)
        return "; ".join(str(d) for d in done) or "moving"
    if isinstance(piece, Refused) and piece.queued.entry is not None:
        refused_download(ports, piece.queued, piece.error)
        return "download refused"
    ctx = loaded_context(run, ports)
    if isinstance(ctx, str):
        return ctx
    driver = Driver(ports, ctx)
    driver.run(_actions(piece, item.run_id, ports))
    return driver.outcome or item.kind


def _actions(piece: GraphWork, run_id: str, ports: Ports) -> list[Action]:
    if isinstance(piece, Resubmission):
        job = ports.store.get_job(run_id, piece.job_id)
        if job is None:
            return []
        reconciling = piece.reconciling
        return [Submit(job, None, piece.attempt, True, reconciling, held=piece.held)]
    if isinstance(piece, ExpandRange):
        return [ExpandShards(piece.section, piece.start, piece.stop)]
    if isinstance(piece, Release):
        return [ReleaseWaiters(piece.group)]
    if isinstance(piece, Refused):  # the attempt failed, unless it moved on meanwhile
        queued = piece.queued
        assert queued.job_id is not None
        job = ports.store.get_job(run_id, queued.job_id)
        if job is None or job.status != RUNNING or job.attempt != queued.attempt:
            return []
        if job.batch_job_id:
            return []
        error = RuntimeError(f"AWS Batch refused the job: {piece.error}")
        return [AttemptFailed(job, error, interrupted=False)]
    assert isinstance(piece, Offers)
    # whole records (one BatchGetItem all the same): a job claimed already is evaluated as read
    jobs = ports.store.get_jobs(run_id, [job_id for job_id, _ in piece.offers])
    return [
        Offer(jobs[job_id], claimant, whole=True)
        for job_id, claimant in piece.offers
        if job_id in jobs
    ]


def deliver_in_process(
    items: list[WorkItem], ports: Ports, submitter: SubmitterPorts, pacer: Pacer
) -> None:
    """The items to their functions, as the work table's stream does on AWS (the local mode's
    and the tests' delivery): the submitter's as one batch. Raises TransientError for items
    to deliver again."""
    outside = [item for item in items if item.kind in OUTSIDE_KINDS]
    if outside and handle_items(outside, submitter, pacer, remaining_seconds.get()):
        raise TransientError(f"{len(outside)} submitter items: not all done yet")
    for item in items:
        if item.kind not in OUTSIDE_KINDS:
            log.debug("graph work %s: %s", item.key, on_graph_work(item, ports))
