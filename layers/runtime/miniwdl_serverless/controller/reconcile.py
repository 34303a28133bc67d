"""The reconciler's work (scheduled, and on demand with `miniwdl-serverless reconcile`): for
every live run, compare the calls we hold ``running`` with what AWS Batch says and replay the
transitions whose events were lost (through the advance path, ``on_batch_event``); send the
answer an ended run still owes; pick up what a dead invocation left in a quiet run; fail a
run that nothing will ever advance; and replay what the dead-letter queue holds.

Every step is one the normal paths take too, so it is idempotent: a transition replayed while
its real event arrives changes nothing twice. Decisions are in core/reconciling.py.

The reconciler runs outside the VPC (it asks Step Functions, Batch and SQS, and touches no
file): what needs the run's files — a replayed transition, a resubmission, settling a quiet
run — it hands to the work function as work items (``replay``, ``resubmit``, ``settle``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from miniwdl_serverless.controller.actions import Action, Offer
from miniwdl_serverless.controller.context import load_context
from miniwdl_serverless.controller.drive import Driver
from miniwdl_serverless.controller.end import answer_owed, fail_run, stop_run
from miniwdl_serverless.controller.ports import DeadLetters, LiveRuns, Ports
from miniwdl_serverless.core.decisions import owed_answer
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.reconciling import (
    DeadLetter,
    Letter,
    Move,
    Rules,
    call_verdict,
    classify_letter,
    last_activity,
    resumable,
    stuck_error,
)
from miniwdl_serverless.core.records import RUN_RUNNING, RUNNING, Job, Run
from miniwdl_serverless.core.work import (
    Resubmission,
    Settle,
    replay_item,
    resubmit_item,
    settle_item,
)

log = logging.getLogger("miniwdl_serverless.reconcile")
DEAD_LETTERS_PER_ROUND = 100


@dataclass(frozen=True)
class Reconciled:
    """One thing the reconciler did (or found it could not do) for a run."""

    run_id: str
    text: str
    job_id: str | None = None

    def __str__(self) -> str:
        return f"{self.job_id}: {self.text}" if self.job_id else self.text


@dataclass
class ReconcilePorts:
    """What the reconciler needs besides the controller's ports."""

    ports: Ports
    runs: LiveRuns
    dead_letters: DeadLetters | None = None
    rules: Rules = Rules()


@dataclass
class ReconcileReport:
    runs: int = 0  # live runs looked at
    done: list[Reconciled] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # run id → why it was not reconciled
    replayed: list[str] = field(default_factory=list)  # dead letters replayed and deleted
    kept: list[str] = field(default_factory=list)  # dead letters left in the queue, and why

    def as_dict(self) -> dict[str, Any]:
        actions: dict[str, list[str]] = {}
        for item in self.done:
            actions.setdefault(item.run_id, []).append(str(item))
        return {
            "runs": self.runs,
            "actions": actions,
            "problems": self.problems,
            "dead_letters_replayed": self.replayed,
            "dead_letters_kept": self.kept,
        }


def reconcile(
    rp: ReconcilePorts, run_ids: Iterable[str] | None = None, now: float | None = None
) -> ReconcileReport:
    """Every live run (or those given), then the dead-letter queue (only when no runs were
    given). A run that cannot be reconciled now is reported; the others go on."""
    report = ReconcileReport()
    for run_id in list(rp.runs.running() if run_ids is None else run_ids):
        report.runs += 1
        try:
            report.done += reconcile_run(run_id, rp.ports, rp.rules, now)
        except Exception as exn:  # this run's turn comes again next round
            log.warning("cannot reconcile run %s: %s", run_id, exn, exc_info=True)
            report.problems[run_id] = f"{type(exn).__name__}: {exn}"
    if run_ids is None and rp.dead_letters is not None:
        replay_dead_letters(rp.ports, rp.dead_letters, report)
    return report


def reconcile_run(
    run_id: str, ports: Ports, rules: Rules = Rules(), now: float | None = None
) -> list[Reconciled]:
    """What one run needs; returns what was done."""
    now = time.time() if now is None else now
    run = ports.store.get_run(run_id)
    if run is None:
        return []  # not started yet (or expired): nothing of ours to reconcile
    if owed_answer(run) is not None:
        return [_send_owed(run, ports)]
    if run.status != RUN_RUNNING:
        return []
    done, in_motion = _reconcile_calls(run, ports, rules, now)
    if done or in_motion:
        return done
    return _settle(run, ports, rules, now)


def _send_owed(run: Run, ports: Ports) -> Reconciled:
    """The run's end was recorded but Step Functions was not told (its ender died)."""
    if not answer_owed(run, ports):
        return Reconciled(run.run_id, "the answer it owes could not be sent (next round)")
    ports.metrics.count("OwedAnswersSent")
    return Reconciled(run.run_id, f"sent the answer it owed ({run.status})")


def _reconcile_calls(
    run: Run, ports: Ports, rules: Rules, now: float
) -> tuple[list[Reconciled], bool]:
    """Our running task calls against Batch: replay lost transitions, resubmit lost
    submissions. Returns what was done and whether any call is still in motion."""
    calls = [j for j in ports.store.query_jobs(run.run_id, [RUNNING]) if j.batch_job_name]
    described = {
        d.batch_job_id: d
        for d in ports.batch.describe([j.batch_job_id for j in calls if j.batch_job_id])
    }
    done: list[Reconciled] = []
    in_motion = False
    for job in calls:
        verdict = call_verdict(job, described.get(str(job.batch_job_id)), now, rules)
        in_motion = in_motion or verdict.in_motion
        if verdict.move is Move.REPLAY and verdict.detail is not None:
            done.append(_replay(run, job, verdict.detail, ports, now))
        elif verdict.move is Move.RESUBMIT:
            again = Resubmission(job.job_id, job.attempt, reconciling=True)
            ports.work.put([resubmit_item(run.run_id, again, f"reconcile {now}")])
            ports.metrics.count("ReconciledTransitions")
            done.append(Reconciled(run.run_id, f"{verdict.note}: resubmitted", job.job_id))
    return done, in_motion


def _replay(run: Run, job: Job, detail: BatchJobDetail, ports: Ports, now: float) -> Reconciled:
    """Through the advance path, in the work function (collecting reads the call's files)."""
    ports.work.put([replay_item(run.run_id, detail.model_dump(), f"reconcile {now}")])
    ports.metrics.count("ReconciledTransitions")
    text = f"replaying {detail.status} of Batch job {detail.batch_job_id}"
    return Reconciled(run.run_id, text, job.job_id)


def _drive(run: Run, ports: Ports, actions: list[Action]) -> None:
    Driver(ports, load_context(run, ports)).run(actions)


def _settle(run: Run, ports: Ports, rules: Rules, now: float) -> list[Reconciled]:
    """No call is in motion. Once the run has been quiet long enough, the work function
    settles it (``settle``: it needs the run's files)."""
    jobs = list(ports.store.query_jobs(run.run_id))
    error = stuck_error(run, jobs, now, rules.quiet_after)
    if error is None:
        return []
    ports.work.put([settle_item(run.run_id, Settle(rules.quiet_after, now))])
    offers = resumable(jobs)
    if offers:
        names = ", ".join(job.job_id for job, _ in offers)
        return [Reconciled(run.run_id, f"picking up what was left: {names}")]
    return [Reconciled(run.run_id, f"failing: RunStuck: {error.info['message']}")]


def settle(run: Run, ports: Ports, quiet_after: float, now: float) -> list[Reconciled]:
    """A quiet run (the work function's): pick up what dead invocations left (as their
    re-deliveries would); if that moved nothing, fail the run."""
    jobs = list(ports.store.query_jobs(run.run_id))
    if stuck_error(run, jobs, now, quiet_after) is None:
        return []  # it moved since the reconciler looked
    done: list[Reconciled] = []
    offers = resumable(jobs)
    if offers:
        before = last_activity(run, jobs)
        _drive(run, ports, [Offer(job, claimant) for job, claimant in offers])
        names = ", ".join(job.job_id for job, _ in offers)
        done.append(Reconciled(run.run_id, f"picked up what was left: {names}"))
        fresh = ports.store.get_run(run.run_id)
        if fresh is None or fresh.status != RUN_RUNNING:
            return done
        run, jobs = fresh, list(ports.store.query_jobs(run.run_id))
        if last_activity(run, jobs) > before:
            return done  # it moved: the next round judges again
    error = stuck_error(run, jobs, now, quiet_after)
    if error is not None:
        fail_run(load_context(run, ports), error)
        ports.metrics.count("StuckRunsFailed")
        done.append(Reconciled(run.run_id, f"failed: RunStuck: {error.info['message']}"))
    return done


# ---- the dead-letter queue ------------------------------------------------------------------


def replay_dead_letters(ports: Ports, letters: DeadLetters, report: ReconcileReport) -> None:
    """Replay each replayable message through the path its event takes, and delete it once
    replayed (a Batch event: once its ``replay`` item is in the work table, which the stream
    delivers to the work function until it is done). A message that cannot be replayed, or
    whose replay failed, is kept (it comes back after the queue's visibility timeout, and the
    queue's alarm stays on) and reported."""
    for letter in letters.receive(DEAD_LETTERS_PER_ROUND):
        verdict = classify_letter(letter)
        if not verdict.replayable or verdict.event is None:
            _keep(ports, report, letter, verdict.problem)
            continue
        try:
            outcome = _replay_letter(verdict.kind, verdict.event, ports, letter.message_id)
        except Exception as exn:  # not lost: it stays for the next round
            log.warning("dead letter %s: replay failed: %s", letter.message_id, exn)
            _keep(ports, report, letter, f"replay failed: {type(exn).__name__}: {exn}")
            continue
        letters.delete(letter)
        ports.metrics.count("DeadLettersReplayed")
        report.replayed.append(f"{letter.message_id}: {verdict.kind.value}: {outcome}")


def _replay_letter(kind: Letter, event: dict[str, Any], ports: Ports, message_id: str) -> str:
    detail = event["detail"]
    if kind is Letter.BATCH_EVENT:
        parsed = BatchJobDetail.model_validate(detail)  # a bad one is kept, not handed on
        ports.work.put([replay_item(parsed.run_id or "", parsed.model_dump(), message_id)])
        return f"replaying {parsed.status} of Batch job {parsed.batch_job_id}"
    terminated = stop_run(str(detail["name"]), str(detail["status"]), ports)
    return f"run {detail['name']} stopped ({terminated} Batch jobs terminated)"


def _keep(ports: Ports, report: ReconcileReport, letter: DeadLetter, problem: str) -> None:
    failure = f" (dead-lettered after: {letter.failure})" if letter.failure else ""
    report.kept.append(f"{letter.message_id}: {problem}{failure}")
    ports.metrics.count("DeadLettersKept")
    log.warning(
        "dead letter kept: %s", json.dumps({"message_id": letter.message_id, "problem": problem})
    )
