"""Resuming a run (``submit --resume RUN``, ``run --resume DIR``): the same workflow, inputs
and options again, in the same run root, reading the call cache, so every call that succeeded
is reused and only the failed ones and what depends on them run again."""

from __future__ import annotations

import os
from typing import Any

from miniwdl_serverless.core.records import RUN_PLANNING, RUN_RUNNING

CACHE_KEYS = ("CALL_CACHE__GET", "CALL_CACHE__PUT")


class ResumeRefused(Exception):
    """The run cannot be resumed (the message says why)."""


def resumed_input(
    options: dict[str, Any], run_dir: str | None, status: str | None
) -> dict[str, Any]:
    """The execution input that reruns a failed, stopped or succeeded run."""
    if status in (RUN_PLANNING, RUN_RUNNING):
        raise ResumeRefused("the run is still running: cancel it first, or wait for it to end")
    if not options.get("workflow") and not options.get("workflow_source"):
        raise ResumeRefused("the run's record has no workflow (it failed before it was planned)")
    rerun = dict(options)
    if run_dir:  # the same root: the calls' outputs are reused where they are
        rerun["dir"] = os.path.dirname(run_dir.rstrip("/"))
    config = {
        key: value
        for key, value in (options.get("config") or {}).items()
        if key.upper().removeprefix("MINIWDL__") not in CACHE_KEYS
    }
    config["MINIWDL__CALL_CACHE__GET"] = config["MINIWDL__CALL_CACHE__PUT"] = "true"
    rerun["config"] = config
    return rerun


def cache_was_off(options: dict[str, Any]) -> bool:
    """The run wrote no call cache entries (--no-cache, CALL_CACHE__PUT=false): a resume reruns
    every call."""
    for key, value in (options.get("config") or {}).items():
        if key.upper().removeprefix("MINIWDL__") == "CALL_CACHE__PUT":
            return str(value).lower() == "false"
    return False
