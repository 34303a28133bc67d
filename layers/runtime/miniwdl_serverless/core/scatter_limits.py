"""How wide a scatter may be: a clear error instead of a Lambda running out of memory when a
workflow asks for a 100-million-way scatter (or a range() that large)."""

from __future__ import annotations

from typing import Any

import WDL
from WDL import Env, Expr, Tree, Type, Value
from WDL.runtime._workflow_state import StateMachine, _Job
from WDL.StdLib import _Range

DEFAULT_MAX_SCATTER_WIDTH = 100_000


def max_scatter_width(cfg: WDL.runtime.config.Loader) -> int:
    """The widest scatter a run may expand (and the largest range()): a clear error instead of
    a Lambda running out of memory. ``MINIWDL__SERVERLESS__MAX_SCATTER_WIDTH``."""
    if cfg.has_option("serverless", "max_scatter_width"):
        return int(cfg.get_int("serverless", "max_scatter_width"))
    return DEFAULT_MAX_SCATTER_WIDTH


def _too_wide(width: int, limit: int) -> str:
    return (
        f"scatter over {width} items exceeds the largest this run allows ({limit}; "
        "setting MINIWDL__SERVERLESS__MAX_SCATTER_WIDTH)"
    )


class CappedRange(_Range):
    """miniwdl's range(), refusing to build an array wider than any scatter may be."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def _call_eager(self, expr: Expr.Apply, arguments: list[Value.Base]) -> Value.Base:
        count = arguments[0].coerce(Type.Int()).value
        if count > self.limit:
            raise WDL.Error.EvalError(expr, _too_wide(count, self.limit))
        return super()._call_eager(expr, arguments)  # type: ignore[no-any-return]


def check_scatter_width(
    node: Tree.Scatter, machine: StateMachine, job: _Job, stdlib: Any, limit: int
) -> None:
    """Evaluate the scatter's array first (miniwdl evaluates it again to expand it)."""
    scatter_vars: Env.Bindings[Value.Base] = Env.Bindings()
    for _, binding in job.scatter_stack:
        scatter_vars = Env.Bindings(binding, scatter_vars)
    env = Env.merge(scatter_vars, *(machine.job_outputs[dep] for dep in job.dependencies))
    array = node.expr.eval(env, stdlib=stdlib)
    if isinstance(array, Value.Array) and len(array.value) > limit:
        raise WDL.Error.EvalError(node.expr, _too_wide(len(array.value), limit))
