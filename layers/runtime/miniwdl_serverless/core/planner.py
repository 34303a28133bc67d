"""The planner: miniwdl's workflow graph as independent job records (pure; no AWS, no clock).

miniwdl's ``StateMachine`` keeps the whole expanded graph in memory. Here each job is a record
with its dependencies, the jobs waiting on it (``dependents``) and a pending-dependency count,
so the store can hold one item per job and each event only touches what it changes.
Evaluating a ready job reuses miniwdl's own ``StateMachine._do_job`` on a shell that holds
just that job and its dependencies' outputs: ``_do_job`` needs from the machine only the job,
``job_outputs`` (its dependencies'), the workflow, its inputs, the path allowlist, the call-cache
paths, a logger and ``values_to_json``, and a section schedules its body into ``jobs``, where the
new records are read back. tests/unit/test_miniwdl_contract.py pins these private signatures
(docs/architecture.md, design rule 1).

Job ids are miniwdl's (``call-t-07``, ``gather-call-t``, ``decl-x``, ``outputs``), prefixed
with the calling job's id and ``/`` inside sub-workflows (``call-sub/call-t-07``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import WDL
from WDL import Env, StdLib, Tree, Type, Value
from WDL.runtime._stdlib import WorkflowStdLib
from WDL.runtime._workflow_state import StateMachine, WorkflowOutputs, _Job
from WDL.runtime.cache import CallCacheAddPaths

from miniwdl_serverless.core import guarded_reads, wdl_extensions
from miniwdl_serverless.core.scatter_limits import (
    CappedRange,
    check_scatter_width,
    max_scatter_width,
)

guarded_reads.install()  # miniwdl's read_* functions open files through it (design rule 4)
wdl_extensions.install()  # Object and its stdlib functions (core/wdl_extensions.py)

OUTPUTS = "outputs"
TASK_CALL_PREFIX = "call-"


@dataclass
class JobSpec:
    """A job to create in the store (ids are local to the scope)."""

    id: str
    node_id: str
    deps: list[str]
    dependents: list[str]
    scatter_stack: list[list[Any]] = field(default_factory=list)  # [index, variable, value JSON]
    pending: int = 0  # dependencies that will decrement this job through their ``dependents``
    external: list[str] = field(default_factory=list)  # dependencies to register with as a waiter
    # A scatter's gather: its shards described, not listed (``deps`` is then empty, ``pending``
    # their number): {"of": the scatter's job, "node", "prefix", "count"} (records.Job.shards).
    shards: dict[str, Any] | None = None


@dataclass
class Evaluation:
    """What evaluating one ready job produced."""

    outputs: Env.Bindings[Value.Base] | None = None
    call: StateMachine.CallInstructions | None = None
    new_jobs: list[JobSpec] = field(default_factory=list)


class PathAllowlist(set):
    """miniwdl's fspath allowlist without a global set: paths under the run directory (outputs
    of this run's calls) and the download cache (copies of URI inputs), plus the workflow's
    input paths."""

    def __init__(self, run_dir: str, paths: Iterable[str], also_under: Iterable[str] = ()):
        super().__init__(paths)
        self.roots = [os.path.realpath(root).rstrip("/") + "/" for root in (run_dir, *also_under)]

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        # resolved, so neither '..' nor a symlink planted by a task leads outside the run
        real = os.path.realpath(path)
        return set.__contains__(self, path) or any(real.startswith(r) for r in self.roots)


class Scope:
    """One workflow being run: the top-level workflow, a sub-workflow call, or a lone task."""

    def __init__(
        self, target: Tree.Workflow | Tree.Task, inputs: Env.Bindings[Value.Base], prefix: str = ""
    ):
        self.target = target
        self.prefix = prefix
        self.initial: dict[str, _Job] = {}
        if isinstance(target, Tree.Workflow):
            # miniwdl's constructor also normalizes the inputs (None for a defaulted input
            # that is not optional means "use the default"): reuse it for both.
            machine = StateMachine("wdl", "/nonexistent", target, inputs)
            inputs, self.initial = machine.inputs, machine.jobs
        self.inputs = inputs
        self.nodes: dict[str, Tree.WorkflowNode] = {}
        self.scatters: dict[str, list[Tree.Scatter]] = {}
        self.sections: dict[str, list[str]] = {}  # enclosing scatters and conditionals
        self.output_deps: set[str] = set()
        self.completion_deps: set[str] = set()
        self.dependents: dict[str, list[Tree.WorkflowNode]] = {}
        if isinstance(target, Tree.Workflow):
            self._index(target)

    @property
    def is_task(self) -> bool:
        return isinstance(self.target, Tree.Task)

    @property
    def task_call_id(self) -> str:
        return TASK_CALL_PREFIX + self.target.name

    def _index(self, workflow: Tree.Workflow) -> None:
        def visit(
            nodes: Iterable[Tree.WorkflowNode], enclosing: list[Tree.WorkflowSection]
        ) -> None:
            for node in nodes:
                self._place(node, enclosing)
                if isinstance(node, Tree.WorkflowSection):
                    visit(node.body, enclosing + [node])
                    for gather in node.gathers.values():
                        self._place(gather, enclosing)

        top_level = (workflow.inputs or []) + workflow.body + (workflow.outputs or [])
        visit(top_level, [])
        outputs = WorkflowOutputs(workflow)
        self._place(outputs, [])
        for node in self.nodes.values():
            for dep in node.workflow_node_dependencies:
                self.dependents.setdefault(dep, []).append(node)
        # As in miniwdl, a workflow is done only when all its jobs are (a failing declaration
        # nobody reads still fails the run): the outputs job also waits for every top-level job.
        self.output_deps = set(outputs.workflow_node_dependencies)
        everything = {n.workflow_node_id for n in top_level}
        for node in top_level:
            if isinstance(node, Tree.WorkflowSection):
                everything |= {g.workflow_node_id for g in node.gathers.values()}
        self.completion_deps = everything - self.output_deps
        for dep in self.completion_deps:
            self.dependents.setdefault(dep, []).append(outputs)

    def _place(self, node: Tree.WorkflowNode, enclosing: list[Tree.WorkflowSection]) -> None:
        self.nodes[node.workflow_node_id] = node
        self.sections[node.workflow_node_id] = [s.workflow_node_id for s in enclosing]
        self.scatters[node.workflow_node_id] = [s for s in enclosing if isinstance(s, Tree.Scatter)]

    def node(self, node_id: str) -> Tree.WorkflowNode:
        return self.nodes[node_id]


def initial_jobs(scope: Scope) -> list[JobSpec]:
    """The jobs scheduled before anything runs (sections expand later, when they run)."""
    if scope.is_task:
        call = scope.task_call_id
        return [
            JobSpec(id=call, node_id=call, deps=[], dependents=[OUTPUTS]),
            JobSpec(id=OUTPUTS, node_id=OUTPUTS, deps=[call], dependents=[], pending=1),
        ]
    specs = [_spec(scope, job) for job in scope.initial.values()]
    for spec in specs:
        if spec.id == OUTPUTS:
            spec.deps = sorted(set(spec.deps) | scope.completion_deps)
            spec.pending = len(spec.deps)
    return specs


def dependents_of(scope: Scope, node_id: str, indices: list[str]) -> list[str]:
    """Ids of the jobs that will wait on the job for ``node_id`` at these scatter indices.

    Only dependents in the same section or an enclosing one count: a node inside a section
    that does not enclose this job gets its job when that section runs, and the section
    itself waits for this job.
    """
    mine = set(scope.sections[node_id])
    found = []
    for node in scope.dependents.get(node_id, []):
        if set(scope.sections[node.workflow_node_id]) <= mine:
            depth = len(scope.scatters[node.workflow_node_id])
            found.append("-".join([node.workflow_node_id] + indices[:depth]))
    return sorted(set(found))


def _spec(scope: Scope, job: _Job) -> JobSpec:
    """The record of one miniwdl job.

    ``dependents`` are the jobs in the same section or an enclosing one that depend on it:
    those exist whenever it finishes. A dependency in an enclosing section may however still
    be waiting when a section's body is created (miniwdl lets a body start before its outside
    dependencies finish), and such a dependency may not even exist yet (a gather of another
    section). Those are listed in ``external``: the driver registers the job as their waiter.
    """
    indices = [index for index, _ in job.scatter_stack]
    stack = [[index, binding.name, binding.value.json] for index, binding in job.scatter_stack]
    shards = _shards(job, indices)
    if shards is not None:  # a scatter's gather: its item must not grow with the width
        return JobSpec(
            id=job.id,
            node_id=job.node.workflow_node_id,
            deps=[],
            dependents=dependents_of(scope, job.node.workflow_node_id, indices),
            scatter_stack=stack,
            pending=shards["count"],
            shards=shards,
        )
    deps = sorted(job.dependencies)
    mine = set(scope.sections[job.node.workflow_node_id])
    external = [d for d in deps if mine and not mine <= set(scope.sections[_dep_node(job.node, d)])]
    return JobSpec(
        id=job.id,
        node_id=job.node.workflow_node_id,
        deps=deps,
        dependents=dependents_of(scope, job.node.workflow_node_id, indices),
        scatter_stack=stack,
        pending=len(deps) - len(external),
        external=external,
    )


def _shards(job: _Job, indices: list[str]) -> dict[str, Any] | None:
    """miniwdl's gather of a scatter depends on every shard of its body node (that node's id
    plus the gather's scatter indices plus one more): described here by that prefix and their
    number. The shards are created with the gather and each names it a dependent, so they
    never wait outside it (see ``_spec``). Conditionals' gathers (one dependency at most) and
    everything else: None."""
    node = job.node
    if not (isinstance(node, Tree.Gather) and isinstance(node.section, Tree.Scatter)):
        return None
    shard_node = node.referee.workflow_node_id
    prefix = "-".join([shard_node, *indices]) + "-"
    assert all(d.startswith(prefix) for d in job.dependencies), (job.id, prefix)
    return {
        "of": "-".join([node.section.workflow_node_id, *indices]),
        "node": shard_node,
        "prefix": prefix,
        "count": len(job.dependencies),
    }


def _dep_node(node: Tree.WorkflowNode, dep_job_id: str) -> str:
    """The node id of one of ``node``'s dependency jobs (job id = node id + scatter indices)."""
    candidates = [
        n
        for n in node.workflow_node_dependencies
        if dep_job_id == n or dep_job_id.startswith(n + "-")
    ]
    assert candidates, (node.workflow_node_id, dep_job_id)
    return max(candidates, key=len)


def output_types(scope: Scope, node_id: str) -> Env.Bindings[Type.Base]:
    """The types of a job's outputs, to read its stored WDL JSON back into values."""
    if scope.is_task:
        task = scope.target
        assert isinstance(task, Tree.Task)
        outputs: Env.Bindings[Type.Base] = Env.Bindings()
        for decl in task.outputs:
            outputs = outputs.bind(decl.name, decl.type)
        return outputs.wrap_namespace(task.name)
    node = scope.node(node_id)
    return _node_types(node)


def _node_types(node: Tree.WorkflowNode) -> Env.Bindings[Type.Base]:
    if isinstance(node, Tree.Decl):
        return Env.Bindings(Env.Binding(node.name, node.type))
    if isinstance(node, Tree.Call):
        return node.effective_outputs
    if isinstance(node, Tree.Gather):
        inner = _node_types(node.referee)
        if isinstance(node.section, Tree.Scatter):
            return inner.map(lambda b: Env.Binding(b.name, Type.Array(b.value)))
        return inner.map(lambda b: Env.Binding(b.name, b.value.copy(optional=True)))
    return Env.Bindings()


def values_from_json(
    types: Env.Bindings[Type.Base], data: dict[str, Any]
) -> Env.Bindings[Value.Base]:
    env: Env.Bindings[Value.Base] = Env.Bindings()
    for binding in types:
        if binding.name in data:
            env = env.bind(binding.name, value_from_json(binding.value, data[binding.name]))
    return env


def value_from_json(wdl_type: Type.Base, data: Any) -> Value.Base:
    """``Value.from_json``, also for values miniwdl holds with nulls inside non-optional types
    (a WDL 1.2 File that does not exist becomes null inside a Pair, for instance)."""
    try:
        return Value.from_json(wdl_type, data)
    except WDL.Error.InputError:
        return _with_nulls(wdl_type, data)


def _with_nulls(wdl_type: Type.Base, data: Any) -> Value.Base:
    if data is None:
        return Value.Null()
    if isinstance(wdl_type, Type.Array) and isinstance(data, list):
        return Value.Array(
            wdl_type.item_type, [_with_nulls(wdl_type.item_type, item) for item in data]
        )
    if isinstance(wdl_type, Type.Pair) and isinstance(data, dict):
        left = _with_nulls(wdl_type.left_type, data.get("left"))
        right = _with_nulls(wdl_type.right_type, data.get("right"))
        return Value.Pair(wdl_type.left_type, wdl_type.right_type, (left, right))
    if isinstance(wdl_type, Type.Map) and isinstance(data, dict):
        key_type, value_type = wdl_type.item_type
        items = [
            (Value.from_json(key_type, k), _with_nulls(value_type, v)) for k, v in data.items()
        ]
        return Value.Map(wdl_type.item_type, items)
    return Value.from_json(wdl_type, data)


def values_to_json(env: Env.Bindings[Value.Base]) -> dict[str, Any]:
    return WDL.values_to_json(env)  # type: ignore[no-any-return]


def scatter_stack_values(
    scope: Scope, node_id: str, stack: list[list[Any]]
) -> list[tuple[str, Env.Binding[Value.Base]]]:
    """Rebuild miniwdl's scatter stack (index, variable binding) from its JSON form."""
    sections = scope.scatters[node_id]
    assert len(sections) == len(stack), (node_id, stack)
    rebuilt = []
    for section, (index, variable, value) in zip(sections, stack, strict=True):
        item_type = section.expr.type.item_type  # type: ignore[attr-defined]
        rebuilt.append((index, Env.Binding(variable, value_from_json(item_type, value))))
    return rebuilt


def evaluate(  # noqa: PLR0913 - the inputs of miniwdl's StateMachine._do_job
    cfg: WDL.runtime.config.Loader,
    scope: Scope,
    run_dir: str,
    allowlist: PathAllowlist,
    job_id: str,
    node_id: str,
    deps: list[str],
    scatter_stack: list[list[Any]],
    dep_outputs: dict[str, Env.Bindings[Value.Base]],
) -> Evaluation:
    """Evaluate one ready job with miniwdl, given its dependencies' outputs.

    Returns the job's outputs (decls, gathers, sections, workflow outputs), the instructions
    for a call, and any jobs that a scatter or conditional schedules.
    """
    if scope.is_task:
        return _evaluate_task_scope(scope, job_id, dep_outputs)
    workflow = scope.target
    assert isinstance(workflow, Tree.Workflow)
    node = scope.node(node_id)
    if node_id == OUTPUTS:  # only what the output section reads (see Scope.completion_deps)
        deps = [d for d in deps if d in scope.output_deps]
        dep_outputs = {d: v for d, v in dep_outputs.items() if d in scope.output_deps}
    job = _Job(
        id=job_id,
        node=node,
        dependencies=set(deps),
        scatter_stack=scatter_stack_values(scope, node_id, scatter_stack),
    )
    machine = StateMachine.__new__(StateMachine)
    machine.logger_id = "wdl.serverless"
    machine._logger = logging.getLogger("wdl.serverless")
    machine.run_dir = run_dir
    machine.workflow = workflow
    machine.inputs = scope.inputs
    machine.values_to_json = WDL.values_to_json  # type: ignore[assignment]
    machine.fspath_allowlist = allowlist
    machine.cache_add_paths = CallCacheAddPaths()
    machine.jobs = {job_id: job}
    machine.job_outputs = dict(dep_outputs)
    machine.finished, machine.running, machine.waiting, machine.runnable = (
        set(),
        {job_id},
        set(),
        [],
    )
    stdlib = _workflow_stdlib(cfg, workflow.effective_wdl_version, machine)
    width = max_scatter_width(cfg)
    stdlib.range = CappedRange(width)  # type: ignore[attr-defined]
    with guarded_reads.reading(cfg):  # read_* in Lambda: regular files under the root, bounded
        if isinstance(node, Tree.Scatter):
            check_scatter_width(node, machine, job, stdlib, width)
        result = machine._do_job(cfg, stdlib, job)
    if isinstance(result, StateMachine.CallInstructions):
        return Evaluation(call=result)
    new_jobs = [_spec(scope, j) for jid, j in machine.jobs.items() if jid != job_id]
    return Evaluation(outputs=result, new_jobs=new_jobs)


def _evaluate_task_scope(
    scope: Scope, job_id: str, dep_outputs: dict[str, Env.Bindings[Value.Base]]
) -> Evaluation:
    task = scope.target
    assert isinstance(task, Tree.Task)
    if job_id == OUTPUTS:
        return Evaluation(outputs=dep_outputs[scope.task_call_id])
    return Evaluation(
        call=StateMachine.CallInstructions(id=job_id, callee=task, inputs=scope.inputs)
    )


_stdlibs = threading.local()  # each thread's last WorkflowStdLib (see _workflow_stdlib)


def _workflow_stdlib(
    cfg: WDL.runtime.config.Loader, version: str, machine: StateMachine
) -> WorkflowStdLib:
    """miniwdl's workflow stdlib for one job's evaluation on ``machine``.

    Building one defines every stdlib function anew (~1 ms, a job's largest cost in a wide
    scatter); miniwdl builds one a workflow run. Its functions reach the evaluation only through
    the instance's ``state`` and ``cache`` (and the immutable ``eval_context``), so each thread
    keeps its last instance and gives it the next evaluation's, for the same configuration (the
    same object), WDL version and run directory (its ``write_*`` directory)."""
    last = getattr(_stdlibs, "last", None)
    if last is not None and last.serves(cfg, version, machine.run_dir):
        stdlib: Any = last.stdlib
        stdlib.state, stdlib.cache = machine, _NoCache(cfg)
        stdlib.eval_context = StdLib.EvalContext()
        return stdlib  # type: ignore[no-any-return]
    stdlib = WorkflowStdLib(cfg, version, machine, _NoCache(cfg))  # type: ignore[arg-type]
    _stdlibs.last = _LastStdLib(cfg, version, machine.run_dir, stdlib)
    return stdlib  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _LastStdLib:
    cfg: Any
    wdl_version: str
    run_dir: str
    stdlib: WorkflowStdLib

    def serves(self, cfg: Any, wdl_version: str, run_dir: str) -> bool:
        return self.cfg is cfg and (self.wdl_version, self.run_dir) == (wdl_version, run_dir)


class _NoCache:
    """The parts of miniwdl's CallCache that workflow-level stdlib functions touch."""

    def __init__(self, cfg: WDL.runtime.config.Loader):
        self._cfg = cfg

    def get_download(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def get(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def put(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def workflow_at(doc: WDL.Document, call_path: list[str]) -> Tree.Workflow:
    """The (sub-)workflow reached by following call node ids from the document's workflow."""
    workflow = doc.workflow
    assert workflow is not None
    for node_id in call_path:
        call = Scope(workflow, Env.Bindings()).node(node_id)
        assert isinstance(call, Tree.Call) and isinstance(call.callee, Tree.Workflow), node_id
        workflow = call.callee
    return workflow


def call_dir(run_dir: str, job_id: str) -> str:
    """Directory of a call: ``<run>/call-x-0`` or ``<run>/call-sub/call-x`` in sub-workflows."""
    return os.path.join(run_dir, *job_id.split("/"))
