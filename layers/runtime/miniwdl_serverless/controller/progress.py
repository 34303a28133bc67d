"""The graph steps: claim and evaluate ready jobs, complete them, create the jobs sections
schedule, end scopes. Each takes one action and returns the actions it leads to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import WDL
from WDL import Tree

from miniwdl_serverless.controller.actions import (
    Action,
    Complete,
    EndScope,
    Evaluate,
    ExpandShards,
    Offer,
    ReleaseWaiters,
    Resume,
    StartSubworkflow,
    Submit,
)
from miniwdl_serverless.controller.context import RunContext, load_scope, scope_of
from miniwdl_serverless.controller.end import fail_run, succeed_run
from miniwdl_serverless.controller.out_dir import link_outputs
from miniwdl_serverless.controller.ports import StoreError
from miniwdl_serverless.core import planner, work
from miniwdl_serverless.core.decisions import scope_end
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.ids import scoped_id
from miniwdl_serverless.core.out_links import OutputCollision
from miniwdl_serverless.core.records import (
    CLAIMED,
    COMPLETING,
    DONE,
    RUNNING,
    WAITER_GROUP,
    WAITING,
    Job,
    is_shard,
    tally_of,
)
from miniwdl_serverless.core.store_rules import completion_counts, run_counts

if TYPE_CHECKING:
    from miniwdl_serverless.controller.drive import Driver


def offer(driver: Driver, action: Offer) -> list[Action]:
    ctx, job = driver.context(), action.job
    if job.completing:
        return [Resume(job)]
    if job.pending <= 0 and action.whole and _claimed_by(job, action.claimant):
        return [Evaluate(job)]  # claimed already (created so, or before a hand-on): no write
    if job.pending <= 0:
        claimed = ctx.ports.store.claim(ctx.run_id, job.job_id, action.claimant)
        if claimed is not None:
            return [Evaluate(claimed)]
    if job.status == RUNNING and job.claimed_by == action.claimant and not job.batch_job_id:
        # marked running by this claimant, no Batch job recorded: its submitter may have died
        fresh = ctx.ports.store.get_job(ctx.run_id, job.job_id) or job
        if fresh.status == RUNNING and not fresh.batch_job_id:
            return _resume_running(ctx, fresh)
    return []


def _claimed_by(job: Job, claimant: str) -> bool:
    """What a claim would find and leave as it is (the claim's own condition, as read)."""
    return job.status == CLAIMED and job.claimed_by == claimant


def _resume_running(ctx: RunContext, job: Job) -> list[Action]:
    scope = scope_of(ctx, job)
    node = None if scope.is_task else scope.node(job.node_id)
    if isinstance(node, Tree.Call) and isinstance(node.callee, Tree.Workflow):
        data = ctx.load_value(job.call_inputs)
        inputs = WDL.values_from_json(data, node.callee.available_inputs)
        return [StartSubworkflow(job, node.callee, inputs)]
    return [Submit(job, None, job.attempt, resubmit=True)]


def evaluate(driver: Driver, action: Evaluate) -> list[Action]:
    """miniwdl's evaluation of one ready job, given its dependencies' outputs."""
    ctx, job = driver.context(), action.job
    evaluation = _evaluation(ctx, job)
    if evaluation.call is not None:
        callee, inputs = evaluation.call.callee, evaluation.call.inputs
        if isinstance(callee, Tree.Workflow):
            return [StartSubworkflow(job, callee, inputs)]
        return [Submit(job, inputs, attempt=0)]
    specs, width = _first_shards(ctx, job, evaluation.new_jobs)
    if width > len(specs):  # the rest of a wide scatter, in bounded parts, before it completes
        chunk = ctx.ports.budget.steps
        ctx.ports.work.put(work.expand_items(ctx.run_id, job.job_id, width, chunk))
    body = expand(ctx, job.scope, list(job.call_path), specs, job.job_id)
    assert evaluation.outputs is not None
    outputs = planner.values_to_json(evaluation.outputs)
    # A section completes after its body was started (LIFO: popped last): until then its
    # claim is the recovery marker, and a redelivery evaluates it again, which offers the
    # body it created (see expand). Nothing waits on a section but the scope's outputs.
    return [Complete(job, outputs)] + body


def expand_shards(driver: Driver, action: ExpandShards) -> list[Action]:
    """A part of a scatter's expansion handed on: the section evaluated again (miniwdl's
    evaluation is deterministic given the same dependencies), its shards in the range created."""
    ctx = driver.context()
    section = ctx.ports.store.get_job(ctx.run_id, action.section)
    if section is None:
        raise StoreError(f"{action.section}: the scatter to expand is not in the store")
    specs = _evaluation(ctx, section).new_jobs
    positions = _shard_positions(specs, len(section.scatter_stack or []))
    # with the gathers again (created already: read back), so each shard finds its tally
    chosen = [
        spec
        for spec, position in zip(specs, positions, strict=True)
        if position is None or action.start <= position < action.stop
    ]
    return expand(ctx, section.scope, list(section.call_path), chosen, section.job_id)


def _evaluation(ctx: RunContext, job: Job) -> planner.Evaluation:
    scope = scope_of(ctx, job)
    deps = dependencies(ctx, job)
    dep_outputs = {}
    for dep in deps.values():
        types = planner.output_types(scope, dep.node_id)
        dep_outputs[dep.local_id] = planner.values_from_json(
            types, ctx.load_value(dep.outputs) or {}
        )
    if job.shards:  # miniwdl's gather expects its shards as its dependencies
        local_deps = sorted(dep.local_id for dep in deps.values())
    else:
        local_deps = [d[len(job.scope) + 1 :] if job.scope else d for d in job.deps]
    scope_dir = ctx.call_dir(job.scope) if job.scope else ctx.run_dir
    return planner.evaluate(
        ctx.cfg,
        scope,
        scope_dir,
        ctx.paths_allowed(),
        job.local_id,
        job.node_id,
        local_deps,
        job.scatter_stack or [],
        dep_outputs,
    )


def _first_shards(
    ctx: RunContext, job: Job, specs: list[planner.JobSpec]
) -> tuple[list[planner.JobSpec], int]:
    """What a section's evaluation creates now: its gathers and its first shards (as many as
    an invocation's budget), and the scatter's width (a conditional's: 0)."""
    positions = _shard_positions(specs, len(job.scatter_stack or []))
    width = 1 + max((p for p in positions if p is not None), default=-1)
    chunk = ctx.ports.budget.steps
    if width <= chunk:
        return specs, width
    first = [s for s, p in zip(specs, positions, strict=True) if p is None or p < chunk]
    return first, width


def _shard_positions(specs: list[planner.JobSpec], depth: int) -> list[int | None]:
    """Each body job's shard, as its position in the scatter at ``depth`` (miniwdl creates the
    shards in the array's order; their ids need not be numbers), or None outside one (a
    gather, a conditional's body)."""
    positions: dict[str, int] = {}
    found: list[int | None] = []
    for spec in specs:
        if len(spec.scatter_stack) <= depth:
            found.append(None)
            continue
        index = str(spec.scatter_stack[depth][0])
        found.append(positions.setdefault(index, len(positions)))
    return found


def dependencies(ctx: RunContext, job: Job) -> dict[str, Job]:
    """The jobs whose outputs evaluating ``job`` reads: its ``deps``, or for a scatter's gather
    its shards, read by their id prefix from the run's partition (never from a list on the
    gather's item, which would grow with the width: design rule 2)."""
    if not job.shards:
        return _done_dependencies(ctx, job.deps)
    count = int(job.shards["count"])
    if count == 0:
        return {}
    found = {
        shard.job_id: shard
        for shard in ctx.ports.store.query_jobs(ctx.run_id, prefix=job.shards["prefix"])
        if is_shard(job, shard)
    }
    if len(found) != count:
        raise StoreError(f"{job.job_id} gathers {count} shards, the store has {len(found)}")
    return found


def _done_dependencies(ctx: RunContext, deps: list[str]) -> dict[str, Job]:
    """``deps`` as the store has them, a completed one read once per invocation: its outputs
    never change again, and a scatter's shards evaluated together share their dependencies."""
    missing = [d for d in deps if d not in ctx.done]
    found = ctx.ports.store.get_jobs(ctx.run_id, missing) if missing else {}
    ctx.done.update({k: j for k, j in found.items() if j.status == DONE})
    return {d: ctx.done.get(d) or found[d] for d in deps if d in ctx.done or d in found}


def complete(driver: Driver, action: Complete) -> list[Action]:
    ctx, job = driver.context(), action.job
    stored = ctx.store_value(action.outputs, job.job_id + ".outputs")
    targets = ctx.ports.store.complete(job, stored, expected_attempt=action.attempt)
    counts = {"jobs_done": 1, **action.counters}
    if targets is not None:
        owed = run_counts(counts) if job.tally else counts  # a shard's bucket keeps the rest
        if owed:
            ctx.ports.store.count(ctx.run_id, **owed)
        if action.metric:
            ctx.ports.metrics.count(action.metric)
        if action.note and action.metric:  # a task call's outcome: its task.log too
            ctx.log_call(job.job_id, action.note)
        elif action.note:
            ctx.log(action.note)
    then: list[Action] = ready_dependents(ctx, job, targets, counts)
    if job.local_id == planner.OUTPUTS:  # also when completed before: its end may be unfinished
        then.append(EndScope(job, action.outputs))
    return then


def resume(driver: Driver, action: Resume) -> list[Action]:
    """A crashed invocation may have stopped between completion transactions, or after the
    completion but before its shard was tallied or the dependents were evaluated: finish all
    (idempotent)."""
    ctx = driver.context()
    job = ctx.ports.store.get_job(ctx.run_id, action.job.job_id) or action.job
    targets = None
    if job.status.startswith(COMPLETING):  # stopped between completion transactions
        targets = ctx.ports.store.complete(job, job.outputs)
    then: list[Action] = ready_dependents(ctx, job, targets, completion_counts(job))
    if job.local_id == planner.OUTPUTS:
        then.append(EndScope(job, ctx.load_value(job.outputs) or {}))
    return then


def ready_dependents(
    ctx: RunContext, job: Job, targets: list[str] | None, counts: Mapping[str, int]
) -> list[Action]:
    """Dependents and waiters that this job's completion left with nothing pending, and, for
    a scatter's shard, its gather once every shard is tallied (with ``counts``, its share of
    the run's counters).

    ``targets``: those the completion decremented (the job is done); else the job is read
    afresh (waiters may have come; its completion may have been another's, or cut short).
    """
    store = ctx.ports.store
    done = targets is not None
    if targets is None:
        job = store.get_job(ctx.run_id, job.job_id) or job
        targets, done = job.targets() + job.group_tokens(), job.status == DONE
    groups = [t[len(WAITER_GROUP) :] for t in targets if t.startswith(WAITER_GROUP)]
    if groups and done:  # released in parts by the work function (one item each: idempotent)
        ctx.ports.work.put([work.release_item(ctx.run_id, group) for group in groups])
    targets = [t for t in targets if not t.startswith(WAITER_GROUP)]
    found = store.get_jobs(ctx.run_id, targets, readiness_only=True) if targets else {}
    ready = [j for j in found.values() if _offered(j, job)]
    if done and job.tally:
        ready += [j for j in _tallied(ctx, job, counts) if _offered(j, job)]
    return [Offer(j, job.job_id) for j in ready]


def _offered(target: Job, job: Job) -> bool:
    """Whether ``job``'s completion offers ``target``: nothing pending, and not claimed by
    another (the claim's condition decides between completers)."""
    return target.pending <= 0 and (target.status == WAITING or target.claimed_by == job.job_id)


def _tallied(ctx: RunContext, shard: Job, counts: Mapping[str, int]) -> list[Job]:
    """Count the done ``shard`` into its gather, with no transaction (no hot spot: design rule
    7): its index into its bucket's set, then, if that filled the bucket, the bucket into the
    gather's ``pending``, once. Whoever fills a bucket counts it, so the gather's last bucket
    is counted by someone even when its last shards complete together; a redelivery after a
    crash between the steps repeats them, changing nothing twice. The gather, if counted."""
    store = ctx.ports.store
    if not store.tally_shard(shard, counts):
        return []
    gather = store.tally_bucket(shard)
    return [gather] if gather is not None else []


def end_scope(driver: Driver, action: EndScope) -> list[Action]:
    ctx, job = driver.context(), action.job
    scope = scope_of(ctx, job)
    if not job.scope:
        end = scope_end("", action.outputs, scope.target.name, scope.is_task)
        try:
            outputs = link_outputs(ctx, end.outputs)
        except OutputCollision as exn:  # miniwdl fails the run the same way
            fail_run(ctx, RunError.of("FileExistsError", str(exn)))
            return []
        succeed_run(ctx, outputs)
        return []
    parent = ctx.ports.store.get_job(ctx.run_id, job.scope)
    assert parent is not None
    call = scope_of(ctx, parent).node(parent.node_id)
    assert isinstance(call, Tree.Call)
    end = scope_end(job.scope, action.outputs, call.name, is_task=False)
    return [Complete(parent, end.outputs, note=f"sub-workflow {parent.job_id} finished")]


def start_subworkflow(driver: Driver, action: StartSubworkflow) -> list[Action]:
    """A sub-workflow call runs as a child graph whose ids are prefixed with the call's id."""
    ctx, job = driver.context(), action.job
    data = WDL.values_to_json(action.inputs)
    stored = ctx.store_value(data, job.job_id + ".inputs")
    ctx.ports.store.mark_running(ctx.run_id, job.job_id, 0, call_inputs=stored)
    ctx.ports.files.make_dirs(ctx.call_dir(job.job_id))
    scope = planner.Scope(action.callee, action.inputs, prefix=job.job_id)
    ctx.scopes[job.job_id] = scope
    ctx.log(f"sub-workflow {job.job_id} started ({action.callee.name})")
    call_path = list(job.call_path) + [job.node_id]
    return expand(ctx, job.job_id, call_path, planner.initial_jobs(scope), job.job_id)


def restart(ctx: RunContext) -> list[Action]:
    """The run's initial jobs offered again by "start" (a retried Start whose first attempt
    may have died before evaluating or submitting them): ``expand`` finds them stored and
    hands on whatever the dead attempt left."""
    return expand(ctx, "", [], planner.initial_jobs(load_scope(ctx, "", [])), "start")


def create_jobs(
    ctx: RunContext, scope: str, call_path: list[str], specs: list[planner.JobSpec], claimant: str
) -> list[Job]:
    """Store new jobs, register them as waiters on outside dependencies; returns the ready
    ones, claimed (the claim's condition checks readiness in the store: a job others made
    ready meanwhile is theirs). Planning's: ``expand`` without the offers."""
    claimed = []
    for action in expand(ctx, scope, call_path, specs, claimant):
        if isinstance(action, Evaluate):
            claimed.append(action.job)
        elif isinstance(action, Offer) and action.job.pending <= 0:
            job = ctx.ports.store.claim(ctx.run_id, action.job.job_id, claimant)
            if job is not None:
                claimed.append(job)
    return claimed


def expand(
    ctx: RunContext, scope: str, call_path: list[str], specs: list[planner.JobSpec], claimant: str
) -> list[Action]:
    """``create_jobs``, idempotently: ``Evaluate`` for the ready jobs it claimed, and, when
    the jobs existed already (a redelivery evaluating the section, or starting the
    sub-workflow, again), ``Offer`` for those among them that only ``claimant`` can have
    made ready, so that the chain of claims from there reaches whatever the dead invocation
    left (claimed, completed but not followed, running without a Batch job)."""
    if not specs:
        return []
    jobs, created = _store_jobs(ctx, scope, call_path, specs, claimant)
    then: list[Action] = []
    for spec in specs:
        job = jobs[scoped_id(scope, spec.id)]
        if job.job_id not in created:
            if spec.pending == 0:  # nothing inside made it ready: the claimant did
                then.append(Offer(job, claimant))
        elif job.status == CLAIMED and job.claimed_by == claimant:
            then.append(Evaluate(job))  # created claimed: no claim of its own to write
        elif job.pending <= 0:
            claimed = ctx.ports.store.claim(ctx.run_id, job.job_id, claimant)
            if claimed is not None:
                then.append(Evaluate(claimed))
    return then


def _store_jobs(
    ctx: RunContext,
    scope: str,
    call_path: list[str],
    specs: list[planner.JobSpec],
    claimant: str,
) -> tuple[dict[str, Job], set[str]]:
    """The jobs as the store has them after creating (the ids created here) and registering
    them; those that existed before are read back (only what readiness needs). A job ready
    from the start is created claimed by ``claimant``: the creation's own condition (it did
    not exist) is the claim's, so no claim write follows."""
    store, expires_at = ctx.ports.store, ctx.job_expiry()
    jobs = {
        scoped_id(scope, spec.id): _job(ctx.run_id, scope, call_path, spec, claimant, expires_at)
        for spec in specs
    }
    _tally_shards(list(jobs.values()))
    created = store.put_new_jobs(list(jobs.values()), expires_at=expires_at)
    if created:
        store.count(ctx.run_id, jobs_total=len(created))
    for released in _register_outside(ctx, scope, specs, expires_at):
        jobs[released.job_id] = released
    existing = [job_id for job_id in jobs if job_id not in created]
    if existing:  # a resumed expansion: the store knows what happened since
        jobs.update(store.get_jobs(ctx.run_id, existing, readiness_only=True))
    return jobs, created


def _tally_shards(jobs: list[Job]) -> None:
    """Each shard created with its gather is tallied into it rather than decrementing it in
    its completion's transaction (``Job.tally``)."""
    for gather in jobs:
        if gather.shards:
            for job in jobs:
                job.tally = tally_of(gather, job) or job.tally


def _register_outside(
    ctx: RunContext, scope: str, specs: list[planner.JobSpec], expires_at: int
) -> list[Job]:
    """Register the jobs as waiters on their outside dependencies: one waiter per job, or,
    for several jobs waiting for one dependency (a section's shards), one group of them (its
    work-table item; the dependency's item then holds one entry however wide the section).
    Give back the count of a dependency that completed first, once per job (keyed on the
    dependency: a redelivery may do this again). Returns the jobs as the give-backs left them."""
    store = ctx.ports.store
    released: dict[str, Job] = {}
    for dependency, job_ids in _waiting_for(scope, specs).items():
        waiter = job_ids[0]
        if len(job_ids) > 1:
            group = work.waiters_item(ctx.run_id, dependency, job_ids)
            ctx.ports.work.put([group])
            waiter = WAITER_GROUP + group.key
        if store.register_waiter(ctx.run_id, dependency, waiter, expires_at=expires_at):
            continue
        for job_id in job_ids:  # it completed first
            job = store.stop_awaiting(ctx.run_id, job_id, dependency)
            if job is not None:
                released[job_id] = job
    return list(released.values())


def _waiting_for(scope: str, specs: list[planner.JobSpec]) -> dict[str, list[str]]:
    """Each outside dependency, and the jobs (of ``specs``) that wait for it."""
    waiting: dict[str, list[str]] = {}
    for spec in specs:
        for dependency in spec.external:
            waiting.setdefault(scoped_id(scope, dependency), []).append(scoped_id(scope, spec.id))
    return waiting


def release(driver: Driver, action: ReleaseWaiters) -> list[Action]:
    """A group's dependency completed: each of its jobs gets that count back (once: keyed on
    the dependency) and is offered if nothing else is pending."""
    ctx = driver.context()
    group = ctx.ports.work.get(action.group)
    if group is None or group.kind != work.WAITERS:
        raise StoreError(f"{action.group}: no such group of waiting jobs")
    dependency = str(group.body["dependency"])
    offers: list[Action] = []
    for job_id in group.body["jobs"]:
        job = ctx.ports.store.stop_awaiting(ctx.run_id, str(job_id), dependency)
        job = job or ctx.ports.store.get_job(ctx.run_id, str(job_id))  # released before
        if job is not None and _offered(job, Job(ctx.run_id, dependency)):
            offers.append(Offer(job, dependency))
    return offers


def _job(  # noqa: PLR0913 - where the spec sits, and who creates it until when
    run_id: str,
    scope: str,
    call_path: list[str],
    spec: planner.JobSpec,
    claimant: str,
    expires_at: int,
) -> Job:
    ready = spec.pending + len(spec.external) <= 0
    return Job(
        run_id,
        scoped_id(scope, spec.id),
        node_id=spec.node_id,
        scope=scope,
        call_path=call_path,
        deps=[scoped_id(scope, d) for d in spec.deps],
        dependents=[scoped_id(scope, d) for d in spec.dependents],
        shards=_scoped_shards(scope, spec.shards),
        pending=spec.pending + len(spec.external),
        awaiting=[scoped_id(scope, d) for d in spec.external] or None,
        scatter_stack=spec.scatter_stack,
        status=CLAIMED if ready else WAITING,
        claimed_by=claimant if ready else None,
        expires_at=expires_at,
    )


def _scoped_shards(scope: str, shards: dict[str, Any] | None) -> dict[str, Any] | None:
    """A gather's shards described with graph job ids (the node id stays local, as
    ``Job.node_id`` does)."""
    if shards is None:
        return None
    of, prefix = scoped_id(scope, shards["of"]), scoped_id(scope, shards["prefix"])
    return dict(shards, of=of, prefix=prefix)
