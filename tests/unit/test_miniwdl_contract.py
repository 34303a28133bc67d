"""miniwdl internals this project reuses (WDL semantics are miniwdl's own, never re-implemented:
docs/architecture.md, design rule 1): fail loudly if they change."""

from __future__ import annotations

import inspect

import WDL
from WDL.runtime import task as task_module
from WDL.runtime import task_container  # noqa: F401 - TaskContainer, checked below
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


def test_the_allowlist_spelling_of_input_paths():
    """controller/context.py:paths_allowed collects the inputs with miniwdl's ``_fspaths``: a
    Directory as 'path/', the form miniwdl's workflow path checks look up."""
    from WDL import Env, Value
    from WDL.runtime._io_helpers import _fspaths

    env = Env.Bindings().bind("d", Value.Directory("/x/d")).bind("f", Value.File("/x/f"))
    assert _fspaths(env) == {"/x/d/", "/x/f"}


def test_the_range_function_the_planner_caps():
    from WDL.StdLib import _Range

    assert parameters(_Range._call_eager) == ["self", "expr", "arguments"]
    assert isinstance(WDL.StdLib.Base("1.0").range, _Range)


def test_every_read_function_opens_its_file_in_stdlib_py_with_open():
    """core/guarded_reads.py guards the read_* functions by giving WDL.StdLib its own `open`:
    that holds only while every file miniwdl's StdLib reads is opened there, for reading."""
    import re

    import WDL.StdLib

    from miniwdl_serverless.core import guarded_reads, planner  # noqa: F401 - installs the guard

    source = inspect.getsource(WDL.StdLib)
    opens = re.findall(r"\bopen\((.*)\)", source)
    assert opens == [
        'self._devirtualize_filename(file.value), "r"',  # read_string, read_json, read_lines...
        'self.stdlib._devirtualize_filename(file.value), "r"',  # read_tsv
    ]
    assert WDL.StdLib.open is guarded_reads.guarded_open  # type: ignore[attr-defined]


def test_internals_the_wdl_extensions_build_on():
    """core/wdl_extensions.py wraps these miniwdl internals (design rule 1's one exception)."""
    import WDL._parser
    from WDL import Expr, StdLib, Value

    from miniwdl_serverless.core import wdl_extensions

    wdl_extensions.install()
    for rule in ("type", "struct"):
        assert parameters(wdl_extensions._miniwdl[f"{rule}_rule"]) == ["self", "meta", "items"]
    assert WDL._parser._DocTransformer.__dict__["type"].base_func is wdl_extensions._type_rule
    assert parameters(wdl_extensions._miniwdl["get_infer_type"]) == ["self", "type_env"]
    assert parameters(wdl_extensions._miniwdl["get_eval"]) == ["self", "env", "stdlib"]
    assert parameters(wdl_extensions._miniwdl["array_infer_type"]) == ["self", "type_env"]
    assert parameters(wdl_extensions._miniwdl["from_json"]) == ["type", "value"]
    assert callable(Value._infer_from_json) and callable(Value._abbreviate_json)
    assert parameters(StdLib.Base._write) == ["self", "serialize"]
    assert parameters(StdLib.Base._read) == ["self", "parse"]
    assert Expr.Get._eval is wdl_extensions._get_eval
    wdl_extensions.install()  # idempotent: miniwdl's originals are kept once
    assert wdl_extensions._miniwdl["get_eval"] is not wdl_extensions._get_eval
