"""The one driver loop. Every entry point (start, a Batch event) hands it a few actions; each
step carries one out and returns the actions it leads to, until none are left — as miniwdl's
``_workflow_main_loop`` drives ``StateMachine.step()``. No step calls another.

This is the one place where an exception fails the run: a step that raises ends the loop,
and the run fails with the error (before planning finished: recorded as a failed submission).
A TransientError (the ports' retries ran out) fails the invocation instead, never the run.
The one exception the loop raises itself is ``AnswerNotSent``, after it: the run ended but
Step Functions could not be told, so the invocation fails and its event comes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.controller import planning, progress, submission
from miniwdl_serverless.controller.actions import (
    Action,
    AttemptFailed,
    Collect,
    Complete,
    EndScope,
    Evaluate,
    ExpandShards,
    NoteStarted,
    Offer,
    Plan,
    ReleaseWaiters,
    Resume,
    StartSubworkflow,
    Submit,
)
from miniwdl_serverless.controller.context import RunContext
from miniwdl_serverless.controller.end import AnswerNotSent, fail_run, send_answer
from miniwdl_serverless.controller.ports import Ports, TransientError
from miniwdl_serverless.core import work
from miniwdl_serverless.core.decisions import Answer
from miniwdl_serverless.core.errors import RunError, as_run_error
from miniwdl_serverless.core.options import storable
from miniwdl_serverless.core.records import RUN_FAILED, Run
from miniwdl_serverless.core.store_rules import ended_fields
from miniwdl_serverless.core.work import remaining_seconds

log = logging.getLogger("miniwdl_serverless.controller")

# The steps that count against an invocation's budget: each prepares or evaluates one job.
COSTLY = (Evaluate, Submit, StartSubworkflow, ExpandShards)

# The steps between which prepared submissions wait to be handed on together (an expansion's
# run of them): one BatchWriteItem of up to 25 rather than one each. A crash among them leaves
# those attempts leased with no submission: the reconciler resubmits them once the lease ends.
BATCHED = (Offer, Evaluate, Submit)

STEPS: dict[type, Callable[[Any, Any], list[Action]]] = {
    Plan: planning.plan,
    Offer: progress.offer,
    Evaluate: progress.evaluate,
    ExpandShards: progress.expand_shards,
    ReleaseWaiters: progress.release,
    Complete: progress.complete,
    Resume: progress.resume,
    EndScope: progress.end_scope,
    StartSubworkflow: progress.start_subworkflow,
    Submit: submission.submit,
    NoteStarted: submission.note_started,
    Collect: submission.collect,
    AttemptFailed: submission.attempt_failed,
}


class Driver:
    """Runs a worklist of actions for one run within one invocation."""

    def __init__(self, ports: Ports, ctx: RunContext | None = None):
        self.ports = ports
        self.ctx = ctx  # set by planning when it starts from nothing
        self.outcome: str | None = None  # what an event led to, for logs and tests
        self.result: dict[str, Any] = {}  # what start returns
        self.unanswered = False  # a failed submission Step Functions could not be told of

    def context(self) -> RunContext:
        assert self.ctx is not None, "a step that needs the run ran before planning"
        return self.ctx

    def run(self, actions: list[Action]) -> None:
        try:
            self._run(actions)
        except TransientError:  # the submissions prepared before it are still handed on
            self._flush()
            raise
        self._flush()
        if self.unanswered or (self.ctx is not None and self.ctx.unanswered):
            raise AnswerNotSent(self.ctx.run_id if self.ctx is not None else "")

    def _run(self, actions: list[Action]) -> None:
        todo = list(actions)
        steps, left = 0, []
        while todo:
            if self.ctx is not None and self.ctx.run.status == RUN_FAILED:
                return  # failed meanwhile (here or by a concurrent invocation's fail fast)
            action = todo.pop()
            if isinstance(action, Offer | Evaluate) and self._spent(steps):
                left.append(_as_offer(action))  # the next invocation's: see hand_on
                continue
            steps += isinstance(action, COSTLY)
            if not isinstance(action, BATCHED):
                self._flush()  # a crash in a step of another kind loses no submission
            try:
                todo += STEPS[type(action)](self, action)
            except TransientError:
                # not the run's fault: this invocation fails, AWS delivers the event again and
                # every step done so far is found done (all of them are idempotent)
                log.warning("transient failure; the event will be delivered again", exc_info=True)
                raise
            except Exception as exn:
                self._failed(action, exn)
                return
        self._hand_on(left)

    def _flush(self) -> None:
        if self.ctx is not None:
            self.ctx.flush()

    def _spent(self, steps: int) -> bool:
        return self.ports.budget.spent(steps, remaining_seconds.get()())

    def _hand_on(self, offers: list[tuple[str, str]]) -> None:
        """What this invocation's budget left: offered again by the work function, in parts
        (each job's claim makes offering it twice harmless)."""
        if offers:
            chunk = self.ports.budget.steps
            self.ports.work.put(work.offers_items(self.context().run_id, offers, chunk))

    def _failed(self, action: Action, exn: Exception) -> None:
        error = self._error(action, exn)
        self.outcome = "failed: " + type(exn).__name__
        if self.ctx is None and isinstance(action, Plan):
            log.error("run failed before any job", extra={"error": error.info})
            self.unanswered = not fail_unplanned_run(self.ports, action, error)
            self.result = {"run_id": action.run_id, "failed": error.name}
        else:
            step = type(action).__name__
            if _wdl_error(exn):  # the workflow's own fault: its message says it all
                log.error("the run failed", extra={"action": step, "error": error.info})
            else:  # ours or AWS's: the traceback is for whoever reads the logs
                log.exception("advancing the run failed", extra={"action": step})
            fail_run(self.context(), error)

    def _error(self, action: Action, exn: Exception) -> RunError:
        """A job's step failing fails the run at that job (miniwdl's nested error JSON)."""
        job = getattr(action, "job", None)
        if job is not None and self.ctx is not None:
            return submission.call_failure(self.ctx, job, exn)
        return as_run_error(exn)


def _wdl_error(exn: BaseException) -> bool:
    """An error of the WDL itself (miniwdl's: evaluation, validation, a task's runtime error),
    not of the controller."""
    import WDL

    return isinstance(exn, (WDL.Error.RuntimeError, WDL.Error.ValidationError, RunError))


def _as_offer(action: Offer | Evaluate) -> tuple[str, str]:
    """A job to offer again with the claimant that made it ready (an Evaluate's claimed it)."""
    if isinstance(action, Offer):
        return (action.job.job_id, action.claimant)
    return (action.job.job_id, action.job.claimed_by or "")


def fail_unplanned_run(ports: Ports, plan: Plan, error: RunError) -> bool:
    """Bad input: the run record says why (for status and Finish); nothing was submitted.
    False if Step Functions could not be told."""
    run = ports.store.get_run(plan.run_id) or Run(plan.run_id)
    run.execution_arn, run.task_token, run.options = (
        plan.execution_arn,
        plan.task_token,
        storable(plan.execution_input),  # not JSON nested past what a store item can take
    )
    answer = Answer.failure(error)
    run.status, run.error = RUN_FAILED, error.info
    ended = ended_fields(time.time())  # as set_run_status does
    run.finished_at, run.expires_at = ended["finished_at"], int(ended["expires_at"])
    run.answer_due = answer.due()
    ports.store.put_run(run)
    return send_answer(ports, plan.run_id, plan.task_token, answer)
