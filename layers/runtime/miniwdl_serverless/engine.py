"""The controller (imperative shell): start a run, react to Batch job events, end the run.

Every entry point is idempotent: it reads the store, does what the store says is still to
do, and records each step with a conditional write, so a repeated, late or concurrent event
changes nothing twice (DESIGN.md principle 4).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import WDL
from WDL import Env, Tree, Value

from miniwdl_serverless import spill, store, task_call
from miniwdl_serverless.batch import (
    DEFAULT_IMAGE,
    TAG_ATTEMPT,
    TAG_JOB,
    TAG_RUN,
    BatchAdapter,
    job_name,
    resources_for,
)
from miniwdl_serverless.core import planner
from miniwdl_serverless.core.errors import RunError, as_run_error, describe_exception
from miniwdl_serverless.core.options import RunOptions, parse_run_options
from miniwdl_serverless.core.wdl_source import SourceBundle, fetch_and_load, load_document

log = logging.getLogger("miniwdl_serverless.engine")
INTERRUPTION = re.compile(r"Host EC2 .*terminated", re.IGNORECASE)


@dataclass
class Services:
    """The AWS side effects the controller needs, behind small adapters."""

    batch: BatchAdapter
    sfn: Any
    default_queue: str | None = None
    default_fallback_queue: str | None = None
    metric: Any = None  # callable(name, value) for powertools Metrics

    def count(self, name: str, value: int = 1) -> None:
        if self.metric is not None and value:
            self.metric(name, value)


# ---- per-run context ------------------------------------------------------------------------

_documents: dict[str, WDL.Document] = {}
_documents_lock = threading.Lock()


@dataclass
class RunContext:
    """What one invocation knows about one run: options, config, parsed document, scopes."""

    run: store.RunModel
    options: RunOptions
    cfg: WDL.runtime.config.Loader
    doc: WDL.Document
    services: Services
    scopes: dict[str, planner.Scope] = field(default_factory=dict)
    allowlist: planner.PathAllowlist | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def run_dir(self) -> str:
        return str(self.run.run_dir)

    def target(self) -> Tree.Workflow | Tree.Task:
        if self.options.task:
            return _find_task(self.doc, self.options.task)
        assert self.doc.workflow is not None
        return self.doc.workflow

    def scope(self, prefix: str, call_path: list[str]) -> planner.Scope:
        if prefix not in self.scopes:
            if not prefix:
                target = self.target()
                inputs = _inputs_from_json(target, spill.load(self.run.inputs))
                self.scopes[prefix] = planner.Scope(target, inputs)
            else:
                workflow = planner.workflow_at(self.doc, call_path)
                parent = store.get_job(self.run_id, prefix)
                assert parent is not None and parent.call_inputs is not None
                inputs = WDL.values_from_json(spill.load(parent.call_inputs), workflow.available_inputs)
                self.scopes[prefix] = planner.Scope(workflow, inputs, prefix=prefix)
        return self.scopes[prefix]

    def paths_allowed(self) -> planner.PathAllowlist:
        if self.allowlist is None:
            top = self.scope("", [])
            paths: set[str] = set()
            Value.rewrite_env_paths(top.inputs, lambda v: paths.add(v.value) or v.value)  # type: ignore[func-returns-value]
            self.allowlist = planner.PathAllowlist(self.run_dir, paths)
        return self.allowlist

    def log(self, message: str) -> None:
        """A line in the run's workflow.log (the file users look at, as with miniwdl)."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        try:
            with open(os.path.join(self.run_dir, "workflow.log"), "a") as logfile:
                logfile.write(f"{stamp} wdl.w:{self.run.workflow_name} {message}\n")
        except OSError:
            log.warning("cannot append to workflow.log", extra={"run_dir": self.run_dir})


def load_context(run: store.RunModel, services: Services) -> RunContext:
    options = parse_run_options(run.options)
    with _documents_lock:
        doc = _documents.get(str(run.bundle_digest))
    if doc is None:
        with open(str(run.bundle_path)) as infile:
            bundle = SourceBundle.from_json(infile.read(), str(run.bundle_digest))
        doc = load_document(bundle)
        with _documents_lock:
            _documents[str(run.bundle_digest)] = doc
    return RunContext(run=run, options=options, cfg=make_config(options), doc=doc, services=services)


def make_config(options: RunOptions) -> WDL.runtime.config.Loader:
    """miniwdl configuration: defaults, the Lambda's MINIWDL__* environment, then the run's map."""
    overrides: dict[str, dict[str, str]] = {}
    for key, value in options.config_overrides().items():
        _, section, name = key.split("__", 2)
        overrides.setdefault(section.lower(), {})[name.lower()] = value
    if options.copy_input_files:
        overrides.setdefault("file_io", {})["copy_input_files"] = "true"
    cfg = WDL.runtime.config.Loader(logging.getLogger("miniwdl_serverless.config"), overrides=overrides)
    return cfg


def _find_task(doc: WDL.Document, name: str) -> Tree.Task:
    for task in doc.tasks:
        if task.name == name:
            return task
    raise RunError("InputError", {"error": "InputError", "message": f"no task named {name} in the document"})


def _inputs_from_json(target: Tree.Workflow | Tree.Task, data: dict[str, Any]) -> Env.Bindings[Value.Base]:
    return WDL.values_from_json(data, target.available_inputs, target.required_inputs, namespace=target.name)


# ---- start ----------------------------------------------------------------------------------


def start_run(execution_input: Any, task_token: str, execution_arn: str, started_at: str | None, services: Services) -> dict[str, Any]:
    """Plan a new run and submit its first calls. Bad input fails the run before any job."""
    run_id = execution_arn.rsplit(":", 1)[-1]
    existing = _existing_run(run_id)
    if existing is not None and existing.status != store.RUN_PLANNING:
        return {"run_id": run_id, "resumed": True}
    try:
        options = parse_run_options(execution_input)
        doc, bundle = fetch_and_load(options.workflow, options.workflow_source)
        target = _find_task(doc, options.task) if options.task else doc.workflow
        if target is None:
            raise RunError("InputError", {"error": "InputError", "message": "the document has no workflow; give 'task'"})
        inputs = _check_inputs(target, options)
        run_dir = existing.run_dir if existing else provision_run_dir(options, target.name, started_at)
    except Exception as exn:  # every planning problem ends the run with a readable error
        error = as_run_error(exn)
        _fail_unplanned_run(run_id, execution_arn, task_token, execution_input, error, services)
        return {"run_id": run_id, "failed": error.name}
    bundle_path = os.path.join(run_dir, "wdl", "bundle.json")
    _write_run_files(run_dir, bundle, inputs, bundle_path)
    run = existing or store.RunModel(run_id)
    run.status, run.workflow_name, run.run_dir = store.RUN_PLANNING, target.name, run_dir
    run.execution_arn, run.task_token, run.options = execution_arn, task_token, execution_input
    run.bundle_path, run.bundle_digest = bundle_path, bundle.digest
    run.inputs = spill.dump(inputs, os.path.join(run_dir, ".state"), "inputs")
    if existing is None:
        if not store.create_run(run):
            return {"run_id": run_id, "resumed": True}
    else:
        run.save()
    ctx = load_context(run, services)
    ctx.log(f"run {run_id} started: {options.workflow or '(inline source)'}")
    store.set_run_status(run, store.RUN_RUNNING, [store.RUN_PLANNING])
    ready = _create_jobs(ctx, "", [], planner.initial_jobs(ctx.scope("", [])), claimant="start")
    _drive(ctx, "start", ready)
    return {"run_id": run_id, "dir": run_dir}


def _existing_run(run_id: str) -> store.RunModel | None:
    try:
        return store.get_run(run_id)
    except store.RunModel.DoesNotExist:
        return None


def _check_inputs(target: Tree.Workflow | Tree.Task, options: RunOptions) -> dict[str, Any]:
    """Typecheck the inputs with miniwdl's rules; local paths must exist. Returns namespaced JSON."""
    data = dict(options.inputs)
    env = WDL.values_from_json(data, target.available_inputs, target.required_inputs, namespace=target.name)
    missing = []

    def check(value: Value.Base) -> str:
        path = value.value
        if "://" in path:  # not downloaded yet: say so now rather than fail in a task later
            missing.append(f"{path} (URI inputs are not localized yet; copy the file to EFS)")
            return str(path)
        if not os.path.isabs(path):
            missing.append(f"{path} (input paths must be absolute)")
        elif not os.path.exists(path):
            missing.append(path)
        return str(path)

    Value.rewrite_env_paths(env, check)
    if missing:
        raise WDL.Error.InputError("input file or directory not found: " + ", ".join(missing))
    return WDL.values_to_json(env, namespace=target.name)  # type: ignore[no-any-return]


def provision_run_dir(options: RunOptions, name: str, started_at: str | None) -> str:
    """miniwdl's layout: <root>/<YYYYMMDD_HHMMSS>_<name>, or exactly DIR when it ends in '/.'."""
    root = options.run_root
    if root.endswith("/.") or root == ".":
        path = os.path.abspath(root)
        os.makedirs(path, exist_ok=True)
        return path
    moment = _parse_time(started_at)
    base = os.path.join(root, moment.strftime("%Y%m%d_%H%M%S") + "_" + name)
    os.makedirs(root, exist_ok=True)
    for attempt in range(100):
        path = base if attempt == 0 else f"{base}_{attempt + 1}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise RunError("RunDirectory", {"error": "RunDirectory", "message": f"cannot create a run directory under {root}"})


def _parse_time(value: str | None) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(timezone.utc)


def _write_run_files(run_dir: str, bundle: SourceBundle, inputs: dict[str, Any], bundle_path: str) -> None:
    os.makedirs(os.path.dirname(bundle_path), exist_ok=True)
    with open(bundle_path, "w") as outfile:
        outfile.write(bundle.to_json())
    for key, text in bundle.sources.items():  # readable copies, as miniwdl keeps wdl/
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", key.strip("/"))[-200:]
        with open(os.path.join(run_dir, "wdl", name), "w") as outfile:
            outfile.write(text)
    with open(os.path.join(run_dir, "inputs.json"), "w") as outfile:
        json.dump(inputs, outfile, indent=2)


def _fail_unplanned_run(run_id: str, execution_arn: str, token: str, execution_input: Any, error: RunError, services: Services) -> None:
    run = _existing_run(run_id) or store.RunModel(run_id)
    run.execution_arn, run.task_token, run.options = execution_arn, token, execution_input
    run.status, run.error, run.finished_at = store.RUN_FAILED, error.info, time.time()
    run.save()
    log.error("run failed before any job", extra={"error": error.info})
    _send_failure(services, token, error)


def _job_model(run_id: str, scope: str, call_path: list[str], spec: planner.JobSpec) -> store.JobModel:
    prefix = scope + "/" if scope else ""
    return store.JobModel(
        run_id,
        prefix + spec.id,
        node_id=spec.node_id,
        scope=scope,
        call_path=call_path,
        deps=[prefix + d for d in spec.deps],
        dependents=[prefix + d for d in spec.dependents],
        pending=spec.pending,
        scatter_stack=spec.scatter_stack,
        status=store.WAITING,
    )


# ---- driving ready jobs ---------------------------------------------------------------------


def _drive(ctx: RunContext, claimant: str, candidates: list[store.JobModel]) -> None:
    """Claim and process ready jobs until only Batch jobs are left to wait for."""
    work = [(claimant, job) for job in candidates]
    while work:
        if ctx.run.status == store.RUN_FAILED:
            return
        who, job = work.pop()
        try:
            if job.status == store.DONE or job.status.startswith("completing"):
                work += [(job.job_id, j) for j in _resume_done(ctx, job)]
                continue
            if job.pending <= 0 and store.claim(job, who):
                work += [(job.job_id, j) for j in _process(ctx, job)]
            elif job.status == store.RUNNING and job.claimed_by == who and not job.batch_job_id:
                _resume_running(ctx, store.get_job(ctx.run_id, job.job_id) or job)
        except Exception as exn:
            fail_run(ctx, _job_error(ctx, job, exn))
            return


def _resume_done(ctx: RunContext, job: store.JobModel) -> list[store.JobModel]:
    """What a crashed invocation may have left after this job completed (all idempotent)."""
    job = store.get_job(ctx.run_id, job.job_id) or job
    targets = None
    if job.status.startswith("completing"):  # stopped between completion transactions
        targets = store.complete(job, job.outputs)
    if _local_id(job) == planner.OUTPUTS:  # the scope's end: complete the parent call / the run
        _scope_finished(ctx, job, spill.load(job.outputs) or {}, ctx.scope(job.scope, list(job.call_path)))
    return _ready_dependents(job, targets)


def _resume_running(ctx: RunContext, job: store.JobModel) -> None:
    """A call marked running whose submission never completed (its submitter died)."""
    scope = ctx.scope(job.scope, list(job.call_path))
    node = None if scope.is_task else scope.node(job.node_id)
    if isinstance(node, Tree.Call) and isinstance(node.callee, Tree.Workflow):
        inputs = WDL.values_from_json(spill.load(job.call_inputs), node.callee.available_inputs)
        _drive(ctx, job.job_id, _start_subworkflow(ctx, job, node.callee, inputs))
    else:
        submit_task(ctx, job, None, int(job.attempt), resubmit=True)


def _local_id(job: store.JobModel) -> str:
    return job.job_id[len(job.scope) + 1 :] if job.scope else job.job_id


def _ready_dependents(job: store.JobModel, targets: list[str] | None = None) -> list[store.JobModel]:
    """Dependents and waiters that this job's completion left with nothing pending.

    ``targets``: those the completion decremented; else read afresh (waiters may have come).
    """
    if targets is None:
        current = store.get_job(job.run_id, job.job_id) or job
        targets = list(current.dependents) + list(current.waiters or [])
    found = store.get_jobs(job.run_id, targets, attributes=store.READINESS)
    return [j for j in found.values() if j.pending <= 0 and (j.status == store.WAITING or j.claimed_by == job.job_id)]


def _process(ctx: RunContext, job: store.JobModel) -> list[store.JobModel]:
    """Evaluate one claimed job; returns the jobs this made ready."""
    scope = ctx.scope(job.scope, list(job.call_path))
    local_id = job.job_id[len(job.scope) + 1 :] if job.scope else job.job_id
    deps = store.get_jobs(ctx.run_id, job.deps)
    dep_outputs = {}
    for dep_id, dep in deps.items():
        local_dep = dep_id[len(job.scope) + 1 :] if job.scope else dep_id
        types = planner.output_types(scope, dep.node_id)
        dep_outputs[local_dep] = planner.values_from_json(types, spill.load(dep.outputs) or {})
    local_deps = [d[len(job.scope) + 1 :] if job.scope else d for d in job.deps]
    scope_dir = planner.call_dir(ctx.run_dir, job.scope) if job.scope else ctx.run_dir
    evaluation = planner.evaluate(
        ctx.cfg, scope, scope_dir, ctx.paths_allowed(), local_id, job.node_id, local_deps,
        job.scatter_stack or [], dep_outputs,
    )
    if evaluation.call is not None:
        if isinstance(evaluation.call.callee, Tree.Workflow):
            return _start_subworkflow(ctx, job, evaluation.call.callee, evaluation.call.inputs)
        submit_task(ctx, job, evaluation.call.inputs, attempt=0)
        return []
    ready = _create_jobs(ctx, job.scope, list(job.call_path), evaluation.new_jobs, claimant=job.job_id)
    assert evaluation.outputs is not None
    outputs = planner.values_to_json(evaluation.outputs)
    targets = _complete(ctx, job, outputs, scope)
    return ready + _ready_dependents(job, targets)


def _complete(
    ctx: RunContext, job: store.JobModel, outputs: dict[str, Any], scope: planner.Scope,
    attempt: int | None = None, **counters: int,
) -> list[str] | None:
    """Complete a job (see store.complete); returns what it decremented, None if done before."""
    stored = spill.dump(outputs, os.path.join(ctx.run_dir, ".state"), job.job_id + ".outputs")
    done = store.complete(job, stored, expected_attempt=attempt)
    if done is not None:
        store.count(ctx.run_id, jobs_done=1, **counters)
    local_id = job.job_id[len(job.scope) + 1 :] if job.scope else job.job_id
    if local_id == planner.OUTPUTS:
        _scope_finished(ctx, job, outputs, scope)
    return done


def _scope_finished(ctx: RunContext, job: store.JobModel, outputs: dict[str, Any], scope: planner.Scope) -> None:
    if not job.scope:
        target = scope.target
        final = outputs if scope.is_task else {f"{target.name}.{k}": v for k, v in outputs.items()}
        succeed_run(ctx, final)
        return
    parent = store.get_job(ctx.run_id, job.scope)
    assert parent is not None
    parent_scope = ctx.scope(parent.scope, list(parent.call_path))
    call = parent_scope.node(parent.node_id)
    assert isinstance(call, Tree.Call)
    parent_outputs = {f"{call.name}.{k}": v for k, v in outputs.items()}
    targets = _complete(ctx, parent, parent_outputs, parent_scope)
    if targets is not None:
        ctx.log(f"sub-workflow {parent.job_id} finished")
    _drive(ctx, parent.job_id, _ready_dependents(parent, targets))


def _start_subworkflow(ctx: RunContext, job: store.JobModel, callee: Tree.Workflow, inputs: Env.Bindings[Value.Base]) -> list[store.JobModel]:
    """A sub-workflow call runs as a child graph whose ids are prefixed with the call's id."""
    stored = spill.dump(WDL.values_to_json(inputs), os.path.join(ctx.run_dir, ".state"), job.job_id + ".inputs")
    store.update_job(job, call_inputs=stored)
    store.mark_running(job, 0)
    os.makedirs(planner.call_dir(ctx.run_dir, job.job_id), exist_ok=True)
    scope = planner.Scope(callee, inputs, prefix=job.job_id)
    ctx.scopes[job.job_id] = scope
    ctx.log(f"sub-workflow {job.job_id} started ({callee.name})")
    call_path = list(job.call_path) + [job.node_id]
    return _create_jobs(ctx, job.job_id, call_path, planner.initial_jobs(scope), claimant=job.job_id)


def _create_jobs(ctx: RunContext, scope: str, call_path: list[str], specs: list[planner.JobSpec], claimant: str) -> list[store.JobModel]:
    """Store new jobs, register them as waiters on outside dependencies, claim the ready ones."""
    if not specs:
        return []
    prefix = scope + "/" if scope else ""
    models = {prefix + spec.id: _job_model(ctx.run_id, scope, call_path, spec) for spec in specs}
    for spec in specs:  # counted optimistically: an outside dependency that is done gives it back
        models[prefix + spec.id].pending += len(spec.external)
    created = store.put_new_jobs(list(models.values()))
    if created:
        store.count(ctx.run_id, jobs_total=len(created))
    for spec in specs:
        job_id = prefix + spec.id
        for dependency in spec.external:
            if not store.register_waiter(ctx.run_id, prefix + dependency, job_id) and job_id in created:
                store.add_pending(models[job_id], -1)  # updates models[job_id].pending too
    # claim what is ready as far as we know (the claim's condition checks it in the store);
    # a job that others made ready meanwhile is claimed by them
    return [job for job in models.values() if job.pending <= 0 and store.claim(job, claimant)]


# ---- task calls -----------------------------------------------------------------------------


def _task_of(ctx: RunContext, job: store.JobModel) -> tuple[Tree.Task, str]:
    scope = ctx.scope(job.scope, list(job.call_path))
    if scope.is_task:
        assert isinstance(scope.target, Tree.Task)
        return scope.target, scope.target.name
    call = scope.node(job.node_id)
    assert isinstance(call, Tree.Call) and isinstance(call.callee, Tree.Task)
    return call.callee, call.name


def submit_task(ctx: RunContext, job: store.JobModel, inputs: Env.Bindings[Value.Base] | None, attempt: int, resubmit: bool = False) -> None:
    """Prepare the call directory for ``attempt`` and submit its Batch job, exactly once.

    The attempt is marked running first (exclusively), so a duplicate invocation never
    prepares over the winner's files, and a short job's events may come before submit returns.
    """
    task, _ = _task_of(ctx, job)
    cdir = planner.call_dir(ctx.run_dir, job.job_id)
    name = job_name(ctx.run_id, job.job_id, attempt)
    if inputs is None:
        inputs = WDL.values_from_json(spill.load(job.call_inputs), task.available_inputs)
    call_inputs = spill.dump(WDL.values_to_json(inputs), os.path.join(cdir, ".state"), "call_inputs")
    if not store.mark_running(
        job, attempt, batch_job_name=name, batch_job_id=None, call_inputs=call_inputs,
        submitted_at=time.time(), started_at=None, log_stream=None, resubmit=resubmit,
    ):
        return  # another invocation is submitting this attempt
    if attempt > 0 and not resubmit:
        task_call.archive_attempt(cdir, attempt - 1)
    prepared = task_call.prepare(ctx.cfg, task, inputs, job.job_id, cdir, attempt, logging.getLogger(f"wdl.{job.job_id}"))
    runtime = prepared.runtime
    image = str(runtime.get("docker") or DEFAULT_IMAGE)
    memory_delta = ctx.cfg.get_int("aws", "memory_delta") if ctx.cfg.has_option("aws", "memory_delta") else -33
    resources = resources_for(runtime, prepared.raw_runtime, memory_delta_mib=memory_delta)
    queue = _queue_for(ctx, job, runtime)
    tags = dict(ctx.options.tags)
    tags.update({TAG_RUN: ctx.run_id, TAG_JOB: job.job_id, TAG_ATTEMPT: str(attempt)})
    environment = {str(k): str(v) for k, v in (runtime.get("env") or {}).items()}
    job_timeout = ctx.cfg.get_int("aws", "job_timeout") if ctx.cfg.has_option("aws", "job_timeout") else 86400
    state = spill.dump(prepared.state, os.path.join(cdir, ".state"), f"task_state-{attempt}")
    store.update_job(job, task_state=state, queue=queue, runtime=_runtime_summary(runtime, prepared.raw_runtime, resources))
    batch_job_id = ctx.services.batch.submit(
        name=name, queue=queue, image=image, resources=resources, script=prepared.script,
        environment=environment, tags=tags, timeout_seconds=job_timeout,
    )
    store.record_batch_job(job, attempt, batch_job_id)
    store.count(ctx.run_id, calls_submitted=1)
    ctx.services.count("TasksSubmitted")
    ctx.log(f"submitted {job.job_id} attempt {attempt + 1} as Batch job {batch_job_id} ({image}, {queue})")
    if store.get_run(ctx.run_id).status != store.RUN_RUNNING:  # the run ended meanwhile
        ctx.services.batch.terminate(batch_job_id, "miniwdl-serverless: run already ended")


def _queue_for(ctx: RunContext, job: store.JobModel, runtime: dict[str, Any]) -> str:
    queue = ctx.options.task_queue or ctx.services.default_queue
    fallback = ctx.options.task_queue_fallback or ctx.services.default_fallback_queue
    preemptible = int(runtime.get("preemptible") or 0)
    if fallback and preemptible and int(job.interruptions or 0) >= preemptible:
        queue = fallback
    if not queue:
        raise RunError("Configuration", {"error": "Configuration", "message": "no task queue configured (task_queue)"})
    return queue


def _runtime_summary(runtime: dict[str, Any], raw: dict[str, Any], resources: Any) -> dict[str, Any]:
    return {
        "docker": runtime.get("docker"), "cpu": resources.vcpus, "memory_mib": resources.memory_mib,
        "gpus": resources.gpus, "maxRetries": int(runtime.get("maxRetries") or 0),
        "preemptible": int(runtime.get("preemptible") or 0),
    }


# ---- Batch events ---------------------------------------------------------------------------


@dataclass
class BatchJobChange:
    """The parts of an EventBridge "Batch Job State Change" detail the controller uses."""

    job_id: str
    job_name: str
    status: str
    run_id: str | None
    graph_job_id: str | None
    attempt: int | None
    exit_code: int | None
    status_reason: str
    log_stream: str | None

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> BatchJobChange:
        tags = detail.get("tags") or {}
        container = detail.get("container") or {}
        attempt = tags.get(TAG_ATTEMPT)
        return cls(
            job_id=detail.get("jobId", ""),
            job_name=detail.get("jobName", ""),
            status=detail.get("status", ""),
            run_id=tags.get(TAG_RUN),
            graph_job_id=tags.get(TAG_JOB),
            attempt=int(attempt) if attempt is not None and str(attempt).isdigit() else None,
            exit_code=container.get("exitCode"),
            status_reason=" - ".join(r for r in (detail.get("statusReason"), container.get("reason")) if r),
            log_stream=container.get("logStreamName"),
        )


def on_batch_event(change: BatchJobChange, services: Services) -> str:
    """React to one Batch job state change; returns what was done (for logs and tests)."""
    if not change.run_id or not change.graph_job_id:
        return "ignored: not a miniwdl-serverless job"
    run = _existing_run(change.run_id)
    if run is not None and run.status == store.RUN_FAILED and change.status in ("STARTING", "RUNNING"):
        services.batch.terminate(change.job_id, "miniwdl-serverless: run failed")  # a straggler
        return "terminated: run failed"
    if run is None or run.status != store.RUN_RUNNING:
        return "ignored: run not running"
    job = store.get_job(change.run_id, change.graph_job_id)
    if job is None:
        return "ignored: unknown job"
    ctx = load_context(run, services)
    try:
        return _on_job_change(ctx, job, change)
    except Exception as exn:  # a failure to advance ends the run rather than stalling it
        log.exception("advancing %s failed", job.job_id)
        fail_run(ctx, _job_error(ctx, job, exn))
        return "failed: " + type(exn).__name__


def _on_job_change(ctx: RunContext, job: store.JobModel, change: BatchJobChange) -> str:
    if job.status == store.DONE or job.status.startswith("completing"):
        _drive(ctx, job.job_id, [job])  # finish what a crashed attempt left
        return "resumed"
    if (
        job.status != store.RUNNING
        or job.attempt != change.attempt
        or job.batch_job_name != change.job_name
        or job.batch_job_id not in (None, change.job_id)
    ):
        return "ignored: stale event"
    if change.status in ("STARTING", "RUNNING"):
        if job.started_at is None:
            store.update_job(job, started_at=time.time(), log_stream=change.log_stream or "")
        return "noted"
    if change.status == "SUCCEEDED":
        return _collect(ctx, job, change, 0)
    if change.status == "FAILED":
        if change.exit_code is not None:
            return _collect(ctx, job, change, int(change.exit_code))
        return _failed_without_exit(ctx, job, change)
    return "ignored: status " + change.status


def _collect(ctx: RunContext, job: store.JobModel, change: BatchJobChange, exit_code: int) -> str:
    task, call_name = _task_of(ctx, job)
    cdir = planner.call_dir(ctx.run_dir, job.job_id)
    try:
        state = spill.load(job.task_state)
        outputs = task_call.collect(ctx.cfg, task, job.job_id, cdir, state, exit_code, logging.getLogger(f"wdl.{job.job_id}"))
    except Exception as exn:
        return _attempt_failed(ctx, job, exn, interrupted=False)
    data = WDL.values_to_json(outputs.wrap_namespace(call_name))
    scope = ctx.scope(job.scope, list(job.call_path))
    targets = _complete(ctx, job, data, scope, attempt=int(job.attempt), calls_succeeded=1)
    if targets is not None:
        ctx.services.count("TasksSucceeded")
        ctx.log(f"finished {job.job_id} (exit status {exit_code})")
    _drive(ctx, job.job_id, _ready_dependents(job, targets))
    return "collected"


def _failed_without_exit(ctx: RunContext, job: store.JobModel, change: BatchJobChange) -> str:
    interrupted = bool(INTERRUPTION.search(change.status_reason))
    exn = RuntimeError(f"AWS Batch job failed: {change.status_reason or 'no exit code'}")
    if interrupted:
        exn = WDL.runtime.Interrupted(change.status_reason)  # type: ignore[assignment]
    return _attempt_failed(ctx, job, exn, interrupted=interrupted)


def _attempt_failed(ctx: RunContext, job: store.JobModel, exn: BaseException, interrupted: bool) -> str:
    """Retry (preemptible for interruptions, then maxRetries) or fail the run."""
    runtime = job.runtime or {}
    attempt = int(job.attempt)
    interruptions = int(job.interruptions or 0)
    retries_used = attempt - interruptions
    if interrupted and interruptions < int(runtime.get("preemptible") or 0):
        store.update_job(job, interruptions=interruptions + 1)
        job.interruptions = interruptions + 1
    elif retries_used >= int(runtime.get("maxRetries") or 0):
        store.fail_job(job, describe_exception(exn))
        store.count(ctx.run_id, calls_failed=1)
        ctx.services.count("TasksFailed")
        fail_run(ctx, _job_error(ctx, job, exn))
        return "failed"
    ctx.log(f"retrying {job.job_id} after attempt {attempt + 1}: {exn}")
    store.count(ctx.run_id, calls_retried=1)
    ctx.services.count("TasksRetried")
    submit_task(ctx, job, None, attempt + 1)
    return "retried"


def _job_error(ctx: RunContext, job: store.JobModel, exn: BaseException) -> RunError:
    """miniwdl's nested error JSON: RunFailed for the workflow, the cause from the call."""
    cause = describe_exception(exn)
    cause.setdefault("node", job.job_id)
    cause["run"] = job.job_id
    cause["dir"] = planner.call_dir(ctx.run_dir, job.job_id)
    target = ctx.target()
    info = {
        "error": "RunFailed",
        "message": f"{'task' if isinstance(target, Tree.Task) else 'workflow'} {target.name} failed at {job.job_id}: "
        + str(cause.get("message") or cause.get("error")),
        "workflow" if isinstance(target, Tree.Workflow) else "task": target.name,
        "run": ctx.run_id,
        "dir": ctx.run_dir,
        "pos": {"source": target.pos.abspath, "line": target.pos.line, "column": target.pos.column},
        "cause": cause,
    }
    if "exit_status" in cause:
        info["message"] = f"{job.job_id} command failed with exit status {cause['exit_status']}"
    return RunError(str(cause.get("error") or "RunFailed"), info)


# ---- ending a run ---------------------------------------------------------------------------


def succeed_run(ctx: RunContext, outputs: dict[str, Any]) -> None:
    stored = spill.dump(outputs, os.path.join(ctx.run_dir, ".state"), "run.outputs")
    if store.set_run_status(ctx.run, store.RUN_SUCCEEDED, [store.RUN_RUNNING], outputs=stored):
        ctx.log("workflow finished")
    try:
        ctx.services.sfn.send_task_success(
            taskToken=ctx.run.task_token, output=json.dumps({"run_id": ctx.run_id, "dir": ctx.run_dir})
        )
    except Exception as exn:  # a repeated success (token already used) is harmless
        log.info("send_task_success: %s", exn)


def fail_run(ctx: RunContext, error: RunError) -> None:
    """Fail fast: record the error, terminate the run's other Batch jobs, tell Step Functions."""
    ctx.run.status = store.RUN_FAILED
    if not store.set_run_status(ctx.run, store.RUN_FAILED, [store.RUN_PLANNING, store.RUN_RUNNING], error=error.info):
        return
    ctx.log(f"workflow failed: {error.info.get('message')}")
    write_json(os.path.join(ctx.run_dir, "error.json"), error.info)
    terminate_run_jobs(ctx.run_id, ctx.services, f"miniwdl-serverless: run failed ({error.name})")
    _send_failure(ctx.services, str(ctx.run.task_token), error)


def stop_run(run_id: str, execution_status: str, services: Services) -> int:
    """The execution ended without the run ending (stopped, timed out): fail the run and
    terminate its Batch jobs. Returns how many were terminated. Idempotent."""
    run = _existing_run(run_id)
    if run is None or run.status in (store.RUN_SUCCEEDED,):
        return 0
    info = {"error": "RunStopped", "message": f"the Step Functions execution ended: {execution_status}"}
    if run.status != store.RUN_FAILED:
        store.set_run_status(run, store.RUN_FAILED, [store.RUN_PLANNING, store.RUN_RUNNING], error=info)
    return terminate_run_jobs(run_id, services, f"miniwdl-serverless: execution {execution_status}")


def terminate_run_jobs(run_id: str, services: Services, reason: str) -> int:
    count = 0
    for job in store.query_jobs(run_id, [store.RUNNING]):
        if job.batch_job_id:
            try:
                services.batch.terminate(job.batch_job_id, reason)
                count += 1
            except Exception as exn:
                log.warning("terminate %s: %s", job.batch_job_id, exn)
    return count


def _send_failure(services: Services, token: str, error: RunError) -> None:
    try:
        services.sfn.send_task_failure(taskToken=token, error=error.name[:256], cause=error.cause[:32768])
    except Exception as exn:
        log.info("send_task_failure: %s", exn)


def write_json(path: str, data: Any) -> None:
    """Atomically write a JSON file in the run directory (best effort: EFS may be gone)."""
    try:
        with open(path + ".tmp", "w") as outfile:
            json.dump(data, outfile, indent=2)
        os.replace(path + ".tmp", path)
    except OSError as exn:
        log.warning("cannot write %s: %s", path, exn)

