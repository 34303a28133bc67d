"""Reading a run's files for the CLI (`miniwdl-serverless logs`): the tail of one file inside the
run's directory, never anything outside it.

Tasks can write anything on EFS, including symlinks out of their directory and a run directory
swapped for a link (anything on EFS is untrusted input: docs/architecture.md, design rule 4).
So nothing is resolved with realpath: the file is opened from the fixed EFS root
(``core/options.py:efs_root``), one component at a time, following no symlink — first the run
directory's path under the root, then the file's path in it — and only a regular file is read
(non-blocking: a FIFO cannot hang the function), at most ``max_bytes`` of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from miniwdl_serverless.controller.ports import RunStore
from miniwdl_serverless.core import safe_fs
from miniwdl_serverless.core.options import efs_root

DEFAULT_PATH = "workflow.log"
DEFAULT_TAIL_BYTES = 64 * 1024
MAX_BYTES = 1024 * 1024  # per call: well under Lambda's 6 MB response limit


class LogsRefused(Exception):
    """The request names something this function does not serve (outside the run, not a file)."""

    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class LogsRequest:
    run_id: str
    path: str = DEFAULT_PATH
    tail_bytes: int | None = None
    offset: int | None = None
    max_bytes: int = MAX_BYTES

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> LogsRequest:
        run_id = event.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise LogsRefused("BadRequest", "'run_id' is required")
        path = event.get("path") or DEFAULT_PATH
        if not isinstance(path, str) or "\x00" in path:  # no file name holds a NUL
            raise LogsRefused("BadRequest", "'path' must be a string without NUL characters")
        numbers = {}
        for key in ("tail_bytes", "offset", "max_bytes"):
            value = event.get(key)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise LogsRefused("BadRequest", f"'{key}' must be a non-negative integer")
            numbers[key] = value
        max_bytes = min(numbers["max_bytes"] or MAX_BYTES, MAX_BYTES)
        return cls(run_id, path, numbers["tail_bytes"], numbers["offset"], max_bytes)


def path_in_run(run_dir: str, path: str, root: str) -> str:
    """The absolute path of ``path`` (relative to ``run_dir``), checked lexically: inside the run
    directory (no '..' out of it), and the run directory inside the EFS root."""
    if os.path.isabs(path):
        raise LogsRefused("Forbidden", f"path must be relative to the run directory: {path!r}")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise LogsRefused("Forbidden", f"path is outside the run directory: {path!r}")
    if not os.path.isabs(run_dir) or not safe_fs.inside(root, run_dir):
        raise LogsRefused("Forbidden", "the run directory is outside the EFS root")
    return os.path.join(os.path.normpath(run_dir), *parts)


def read_file(  # noqa: PLR0913 - the request's fields, and the root
    run_dir: str,
    path: str,
    tail_bytes: int | None = None,
    offset: int | None = None,
    max_bytes: int = MAX_BYTES,
    root: str | None = None,
) -> dict[str, Any]:
    """``{"path", "size", "offset", "next_offset", "data"}``: bytes from ``offset`` (or the last
    ``tail_bytes``, default 64 KiB when neither is given), at most ``max_bytes`` of them."""
    root = os.path.realpath(root or efs_root())
    target = path_in_run(run_dir, path, root)
    try:
        fd = safe_fs.open_regular(root, target)
    except safe_fs.UnsafePath as exn:  # a link on the way or at the end, a FIFO, a directory
        raise LogsRefused("Forbidden", f"cannot read {path}: {exn}") from exn
    except FileNotFoundError as exn:
        raise LogsRefused("NotFound", f"no such file in the run directory: {path}") from exn
    except OSError as exn:  # unreadable, or a directory where a file was asked for
        raise LogsRefused("Forbidden", f"cannot read {path}: {exn.strerror}") from exn
    with os.fdopen(fd, "rb") as infile:
        size = os.fstat(fd).st_size
        if offset is None:
            offset = max(0, size - (DEFAULT_TAIL_BYTES if tail_bytes is None else tail_bytes))
        offset = min(offset, size)
        infile.seek(offset)
        data = infile.read(max_bytes)
    return {
        "path": path,
        "size": size,
        "offset": offset,
        "next_offset": offset + len(data),
        "data": data.decode(errors="replace"),
    }


def read_run_file(
    event: dict[str, Any], store: RunStore, root: str | None = None
) -> dict[str, Any]:
    """The logs function: find the run directory in the runs table, read inside it (from the
    EFS root, ``efs_root()`` unless given). Expected problems come back as
    ``{"error", "message"}`` rather than as a failed invocation."""
    try:
        request = LogsRequest.from_event(event)
        run = store.get_run(request.run_id)
        if run is None:
            raise LogsRefused("NotFound", f"no run {request.run_id}")
        if not run.run_dir:
            raise LogsRefused("NotFound", f"run {request.run_id} has no run directory (yet)")
        return read_file(
            str(run.run_dir),
            request.path,
            request.tail_bytes,
            request.offset,
            request.max_bytes,
            root,
        )
    except LogsRefused as exn:
        return {"error": exn.error, "message": str(exn)}
