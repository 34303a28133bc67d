"""The call cache's decisions: miniwdl's call-cache key, when the cache is read and written
(``[call_cache] get/put``), and whether an entry is still valid. Outputs are kept by reference
(the paths the first call left), never copied; an entry is valid while every local file and
directory its inputs and outputs name is as it was when the entry was written (size, newest
mtime and count: any change, or the file gone, is a miss). URI inputs are keyed by the cache
path of the version downloaded (core/localizing.py), so a changed object is a miss too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from WDL import Env, Tree, Value
from WDL.runtime.cache import call_cache_key

from miniwdl_serverless.core.localizing import Stamp, is_downloadable

PREFIX = "call:"


@dataclass(frozen=True)
class Settings:
    get: bool
    put: bool

    @classmethod
    def from_config(cls, cfg: Any) -> Settings:
        def flag(key: str) -> bool:
            return (
                bool(cfg["call_cache"].get_bool(key))
                if cfg.has_option("call_cache", key)
                else False
            )

        return cls(get=flag("get"), put=flag("put"))


def key_of(task: Tree.Task, inputs: Env.Bindings[Value.Base]) -> str:
    """The cache table's key: miniwdl's ``task name/task digest/inputs digest``."""
    return PREFIX + call_cache_key(task.name, task.digest, inputs)


def local_paths(*envs: Env.Bindings[Value.Base]) -> list[str]:
    """The local files and directories the values name (URIs are not local)."""
    found: dict[str, None] = {}

    def visit(value: Value.Base) -> str:
        text = str(value.value)
        if not is_downloadable(text):
            found[text.rstrip("/") or text] = None
        return text

    for env in envs:
        Value.rewrite_env_paths(env, visit)
    return list(found)


def stamps_json(stamps: dict[str, Stamp | None]) -> dict[str, Any] | None:
    """What an entry records of its paths; None if one is missing (nothing to cache on)."""
    if any(stamp is None for stamp in stamps.values()):
        return None
    return {path: stamp.to_json() for path, stamp in stamps.items() if stamp is not None}


def stale_paths(recorded: dict[str, Any], current: dict[str, Stamp | None]) -> list[str]:
    """The paths an entry names that are no longer as they were (empty: a valid entry)."""
    return [p for p, data in recorded.items() if current.get(p) != Stamp.from_json(data)]
