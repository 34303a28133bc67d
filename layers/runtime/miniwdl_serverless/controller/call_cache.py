"""The call cache in the cache table: a call whose task and (localized) inputs were run before
is completed with that run's outputs, by reference, and costs no Batch job. Entries are written
when a call succeeds (``[call_cache] put``) and read before a call is submitted (``get``);
core/call_caching.py says what is valid."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import WDL
from WDL import Env, Tree, Value
from WDL.runtime._io_helpers import _fspaths

from miniwdl_serverless.controller.context import RunContext
from miniwdl_serverless.controller.ports import CacheEntry, TransientError
from miniwdl_serverless.core import call_caching

log = logging.getLogger("miniwdl_serverless.controller")


@dataclass(frozen=True)
class Hit:
    outputs: Env.Bindings[Value.Base]
    origin: str  # the call directory the outputs are in


def lookup(ctx: RunContext, task: Tree.Task, key: str, job_id: str) -> Hit | None:
    """The cached outputs of this call, if an entry is there and still valid."""
    cache = ctx.ports.cache
    if cache is None or not ctx.call_cache.get:
        return None
    entry = cache.get_entry(key)
    if entry is None or entry.status != "ready":
        return None
    try:
        payload = ctx.load_value(entry.data["value"])
        outputs = WDL.values_from_json(payload["outputs"], task.effective_outputs)
    except TransientError:
        raise
    except Exception as exn:  # its spilled value deleted (delete_after) or changed: a miss
        ctx.log(f"{job_id}: call cache entry unreadable ({type(exn).__name__}): running it")
        return None
    recorded = payload.get("stamps") or {}
    stale = call_caching.stale_paths(recorded, {p: ctx.ports.files.stamp(p) for p in recorded})
    if stale:
        ctx.log(f"{job_id}: call cache entry invalid, {stale[0]} changed or removed: running it")
        return None
    allowed = ctx.paths_allowed()
    outside = sorted(p for p in _fspaths(outputs) if p not in allowed)
    if outside:  # an earlier run under another root: this run's workflow may not name them
        ctx.log(f"{job_id}: call cache entry's {outside[0]} is outside this run's root: running it")
        return None
    return Hit(outputs, str(entry.data.get("dir") or ""))


def remember(  # noqa: PLR0913 - the call, its key and inputs, what it produced, where
    ctx: RunContext,
    task: Tree.Task,
    key: str,
    inputs: dict[str, Any],
    outputs: Env.Bindings[Value.Base],
    call_dir: str,
) -> None:
    """An entry for a call that succeeded; best effort (a call never fails for its cache)."""
    cache = ctx.ports.cache
    if cache is None or not ctx.call_cache.put:
        return
    try:
        inputs_env = WDL.values_from_json(inputs, task.available_inputs)
        files = ctx.ports.files
        paths = call_caching.local_paths(inputs_env, outputs)
        stamps = call_caching.stamps_json({p: files.stamp(p) for p in paths})
        if stamps is None:
            return  # a file it names is gone already: nothing to reuse
        payload = {"outputs": WDL.values_to_json(outputs), "stamps": stamps}
        value = files.store_value(payload, os.path.join(call_dir, ".state"), "call_cache")
        data = {"value": value, "dir": call_dir, "task": task.name, "created_at": time.time()}
        cache.put_entry(CacheEntry(key, "ready", ctx.run_id, data=data))
    except Exception:  # noqa: BLE001 - the call succeeded; only its reuse is lost
        log.warning("could not write the call cache entry of %s", call_dir, exc_info=True)
