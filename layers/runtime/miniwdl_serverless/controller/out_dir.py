"""The run's ``out/`` folder of links to its outputs (core/out_links.py decides them), made
when the workflow's outputs are known, before the run is marked succeeded."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from miniwdl_serverless.core import out_links

if TYPE_CHECKING:
    from miniwdl_serverless.controller.context import RunContext

log = logging.getLogger("miniwdl_serverless.controller")


def link_outputs(ctx: RunContext, outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs naming their links under ``out/``. Raises ``OutputCollision``; if a link
    cannot be made (a task took the place of ``out/``), the outputs keep their own paths."""
    target = ctx.target()
    types = {b.name: b.value for b in target.effective_outputs}
    file_io = ctx.cfg["file_io"]
    files = ctx.ports.files
    plan = out_links.plan(
        outputs,
        types,
        target.name,
        ctx.run_dir,
        bool(file_io.get_bool("use_relative_output_paths")),
        files.real_path,
    )
    hard = bool(file_io.get_bool("output_hardlinks"))
    try:
        files.make_dirs(os.path.join(ctx.run_dir, out_links.OUT_DIR))
        for link in plan.links:
            _make(ctx, link, hard)
        for mark in plan.marks:
            files.write_text(mark, "")
    except OSError as exn:
        log.warning("cannot link the outputs under out/: %s", exn)
        ctx.log(f"outputs not linked under out/: {exn}")
        return outputs
    return plan.outputs


def _make(ctx: RunContext, link: out_links.OutLink, hard: bool) -> None:
    files = ctx.ports.files
    real = files.real_path(link.target)
    if not files.inside_root(real):
        raise OSError(f"{link.target}: outside the file system's root")
    if not hard:
        files.link_output(link.link, out_links.symlink_text(real, link.link, ctx.run_dir), False)
    elif not link.directory:
        files.link_output(link.link, real, True)
    else:  # miniwdl copies the directory's tree with every file hard-linked
        files.make_dirs(link.link)
        for file in files.list_files(real):
            files.link_output(os.path.join(link.link, os.path.relpath(file, real)), file, True)
