"""miniwdl's read_* functions (read_string, read_int, read_lines, read_json, read_map,
read_tsv, ...) open their file with the builtin ``open``. In the controller they run in Lambda,
on files tasks can change under them (anything on EFS is untrusted input: docs/architecture.md,
design rule 4): an output swapped for a FIFO would hang the Lambda, ``/dev/zero`` or a huge
file exhaust its memory, and an input swapped for a symlink would be read wherever it points.

``install`` gives ``WDL.StdLib`` — the one module where every read_* function opens its file —
a guarded ``open`` for reading. miniwdl still decides *which* path a function may read (its
allowlist, the task's working directory); the guarded open then reads it only if its real path
lies inside the file system's root, opening that real path one component at a time without
following a symlink (a link swapped in after the check is refused), only if it is a regular
file (non-blocking open and fstat), and only up to the read limit. The root and the limit are
the run's (miniwdl's configuration: ``[file_io] root``, which the controller sets to the EFS
root, and ``[serverless] read_limit`` in bytes, default 128 MiB), set around each evaluation
with ``reading(cfg)``; outside one the root is ``/`` and the limit the default.
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any

import WDL.StdLib

from miniwdl_serverless.core import safe_fs

READ_LIMIT = 128 * 1024 * 1024
SETTING = ("serverless", "read_limit")


@dataclass(frozen=True)
class ReadPolicy:
    root: str = "/"
    limit: int = READ_LIMIT


DEFAULT_POLICY = ReadPolicy()
_policy: ContextVar[ReadPolicy | None] = ContextVar("miniwdl_serverless_read_policy", default=None)


def policy_of(cfg: Any) -> ReadPolicy:
    """The read policy miniwdl's configuration gives."""
    limit = int(cfg.get_int(*SETTING)) if cfg.has_option(*SETTING) else READ_LIMIT
    return ReadPolicy(root=os.path.realpath(str(cfg["file_io"]["root"] or "/")), limit=limit)


@contextmanager
def reading(cfg: Any) -> Iterator[ReadPolicy]:
    """Evaluate with miniwdl under the run's read policy."""
    policy = policy_of(cfg)
    token = _policy.set(policy)
    try:
        yield policy
    finally:
        _policy.reset(token)


def read_guarded(path: str, policy: ReadPolicy | None = None) -> bytes:
    """The content of the regular file ``path``, whose real path lies inside the policy's root,
    read without following a link swapped in meanwhile, at most the policy's limit."""
    policy = policy or _policy.get() or DEFAULT_POLICY
    absolute = os.path.abspath(path)
    fd = safe_fs.open_regular(policy.root, safe_fs.resolved(policy.root, absolute))
    return safe_fs.read_limited(fd, policy.limit, path)


def guarded_open(  # noqa: PLR0913 - builtins.open's signature
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
) -> IO[Any]:
    """``open`` for miniwdl's StdLib: reading a path is guarded; anything else is the builtin."""
    if set(mode) - set("rbt") or opener is not None or not isinstance(file, (str, os.PathLike)):
        return builtins.open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    data = read_guarded(os.fspath(file))
    if "b" in mode:
        return io.BytesIO(data)
    return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors=errors, newline=newline)


def install() -> None:
    """Put the guarded open in WDL.StdLib (idempotent; the whole process: every evaluation the
    controller makes goes through it)."""
    WDL.StdLib.open = guarded_open  # type: ignore[attr-defined]
