"""A pure in-memory driver of the planner with the store's rules (pending counters decremented
through ``dependents``), to test the graph logic without AWS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import WDL
from WDL import Env, Tree, Value

from miniwdl_serverless.core import planner

TaskRunner = Callable[[Tree.Task, Env.Bindings[Value.Base]], dict[str, Any]]


def run(doc: WDL.Document, inputs: dict[str, Any], run_task: TaskRunner, run_dir: str = "/tmp/sim") -> dict[str, Any]:
    """Run the document's workflow; returns its namespaced outputs JSON (stored values as JSON)."""
    cfg = WDL.runtime.config.Loader(logging.getLogger("sim"))
    workflow = doc.workflow
    assert workflow is not None
    env = WDL.values_from_json(inputs, workflow.available_inputs, workflow.required_inputs)
    jobs: dict[str, dict[str, Any]] = {}
    scopes: dict[str, planner.Scope] = {"": planner.Scope(workflow, env)}
    allow = planner.PathAllowlist(run_dir, [])
    final: dict[str, Any] = {}

    def add(scope_id: str, specs: list[planner.JobSpec]) -> list[str]:
        prefix = scope_id + "/" if scope_id else ""
        for spec in specs:
            jid = prefix + spec.id
            assert jid not in jobs or "spec" not in jobs[jid], jid
            stub = jobs.get(jid, {})
            jobs[jid] = {"spec": spec, "scope": scope_id, "pending": spec.pending, "status": "waiting",
                         "dependents": [prefix + d for d in spec.dependents], "outputs": None,
                         "waiters": stub.get("waiters", [])}
        for spec in specs:  # register as a waiter on dependencies that do not list us
            for dep in spec.external:
                target = jobs.setdefault(prefix + dep, {"waiters": []})
                if target.get("status") != "done":
                    target["waiters"].append(prefix + spec.id)
                    jobs[prefix + spec.id]["pending"] += 1
        return [prefix + s.id for s in specs if jobs[prefix + s.id]["pending"] == 0]

    def complete(jid: str, outputs: dict[str, Any]) -> list[str]:
        job = jobs[jid]
        assert job["status"] != "done", jid
        job["status"], job["outputs"] = "done", outputs
        ready = []
        for dep in job["dependents"] + job["waiters"]:
            assert dep in jobs, f"{jid} has dependent {dep} that does not exist"
            jobs[dep]["pending"] -= 1
            if jobs[dep]["pending"] == 0:
                ready.append(dep)
        return ready

    work = add("", planner.initial_jobs(scopes[""]))
    while work:
        jid = work.pop()
        job = jobs[jid]
        spec, scope_id = job["spec"], job["scope"]
        scope = scopes[scope_id]
        prefix = scope_id + "/" if scope_id else ""
        dep_outputs = {}
        for dep in spec.deps:
            dep_job = jobs[prefix + dep]
            assert dep_job["status"] == "done", f"{jid} ran before its dependency {dep}"
            dep_outputs[dep] = planner.values_from_json(planner.output_types(scope, dep_job["spec"].node_id), dep_job["outputs"])
        evaluation = planner.evaluate(cfg, scope, run_dir, allow, spec.id, spec.node_id, spec.deps, spec.scatter_stack, dep_outputs)
        if evaluation.call is not None:
            callee = evaluation.call.callee
            name = scope.node(spec.node_id).name
            if isinstance(callee, Tree.Workflow):
                child = planner.Scope(callee, evaluation.call.inputs, prefix=jid)
                scopes[jid] = child
                job["status"] = "running"
                work += add(jid, planner.initial_jobs(child))
                continue
            outputs = {f"{name}.{k}": v for k, v in run_task(callee, evaluation.call.inputs).items()}
            work += complete(jid, outputs)
            continue
        work += add(scope_id, evaluation.new_jobs)
        outputs = planner.values_to_json(evaluation.outputs)
        work += complete(jid, outputs)
        if spec.id == planner.OUTPUTS:
            if not scope_id:
                final = {f"{workflow.name}.{k}": v for k, v in outputs.items()}
            else:
                parent = jobs[scope_id]
                parent_scope = scopes[parent["scope"]]
                call_name = parent_scope.node(parent["spec"].node_id).name
                work += complete(scope_id, {f"{call_name}.{k}": v for k, v in outputs.items()})
    unfinished = [j for j, v in jobs.items() if v["status"] != "done"]
    assert not unfinished, f"deadlock: {unfinished} never ran (pending {[jobs[j]['pending'] for j in unfinished]})"
    return final
