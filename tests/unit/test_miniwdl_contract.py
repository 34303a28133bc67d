"""miniwdl internals this project reuses (WDL semantics are miniwdl's own, never re-implemented:
docs/architecture.md, design rule 1): fail loudly if they change."""

from __future__ import annotations

import inspect

import WDL
from WDL.runtime import task as task_module
from WDL.runtime._workflow_state import StateMachine, WorkflowOutputs, _Job, _scatter


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_pinned_version():
    from importlib.metadata import version

    assert version("miniwdl") == "1.16.0"


def test_private_signatures_used_by_the_planner_and_task_calls():
    assert parameters(StateMachine._do_job) == ["self", "cfg", "stdlib", "job"]
    assert _Job._fields == ("id", "node", "dependencies", "scatter_stack")
    assert parameters(_scatter)[:3] == ["workflow", "section", "env"]
    assert parameters(WorkflowOutputs.__init__) == ["self", "workflow"]
    assert parameters(task_module._eval_task_inputs) == [
        "logger",
        "task",
        "posix_inputs",
        "container",
        "cache_add_paths",
    ]
    assert parameters(task_module._eval_task_runtime)[:4] == ["cfg", "logger", "run_id", "task"]
    assert parameters(task_module._eval_task_command)[:3] == ["cfg", "task", "logger"]
    assert parameters(task_module._eval_task_outputs) == [
        "logger",
        "run_id",
        "task",
        "env",
        "container",
    ]
    assert parameters(WDL.runtime._stdlib.WorkflowStdLib.__init__)[:5] == [
        "self",
        "cfg",
        "wdl_version",
        "state",
        "cache",
    ]
    assert hasattr(WDL.runtime.task_container.TaskContainer, "success_exit_code")


def test_the_range_function_the_planner_caps():
    from WDL.StdLib import _Range

    assert parameters(_Range._call_eager) == ["self", "expr", "arguments"]
    assert isinstance(WDL.StdLib.Base("1.0").range, _Range)
