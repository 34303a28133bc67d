"""Reading a run's files for the CLI (`miniwdl-serverless logs`): the tail of one file inside the
run's directory, never anything outside it.

Tasks can write anything on EFS, including symlinks out of their directory (anything on EFS
is untrusted input: docs/architecture.md, design rule 4), so a path is resolved with realpath
and must stay inside the run directory's
own realpath; the file is then opened component by component without following any symlink.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from miniwdl_serverless.controller.ports import RunStore

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
        if not isinstance(path, str):
            raise LogsRefused("BadRequest", "'path' must be a string")
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


def resolve_inside(run_dir: str, path: str) -> str:
    """The real path of ``path`` (relative to ``run_dir``); refused if it leaves the run
    directory."""
    root = os.path.realpath(run_dir)
    if os.path.isabs(path):
        raise LogsRefused("Forbidden", f"path must be relative to the run directory: {path!r}")
    real = os.path.realpath(os.path.join(root, path))
    if real != root and os.path.commonpath([root, real]) != root:
        raise LogsRefused("Forbidden", f"path is outside the run directory: {path!r}")
    return real


def _open_beneath(root: str, relative: str) -> int:
    """Open ``root/relative`` one component at a time, following no symlink on the way, so a
    directory swapped for a symlink between the realpath check and the open is refused too."""
    parts = [part for part in relative.split(os.sep) if part not in ("", ".")]
    if not parts or ".." in parts:
        raise IsADirectoryError(21, "not a file")
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
    finally:
        os.close(directory)


def read_file(
    run_dir: str,
    path: str,
    tail_bytes: int | None = None,
    offset: int | None = None,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """``{"path", "size", "offset", "next_offset", "data"}``: bytes from ``offset`` (or the last
    ``tail_bytes``, default 64 KiB when neither is given), at most ``max_bytes`` of them."""
    real = resolve_inside(run_dir, path)
    try:
        fd = _open_beneath(
            os.path.realpath(run_dir), os.path.relpath(real, os.path.realpath(run_dir))
        )
    except FileNotFoundError as exn:
        raise LogsRefused("NotFound", f"no such file in the run directory: {path}") from exn
    except OSError as exn:  # a symlink swapped in after realpath, or unreadable
        raise LogsRefused("Forbidden", f"cannot read {path}: {exn.strerror}") from exn
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LogsRefused("Forbidden", f"not a regular file: {path}")
    with os.fdopen(fd, "rb") as infile:
        size = info.st_size
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


def read_run_file(event: dict[str, Any], store: RunStore) -> dict[str, Any]:
    """The logs function: find the run directory in the runs table, read inside it. Expected
    problems come back as ``{"error", "message"}`` rather than as a failed invocation."""
    try:
        request = LogsRequest.from_event(event)
        run = store.get_run(request.run_id)
        if run is None:
            raise LogsRefused("NotFound", f"no run {request.run_id}")
        if not run.run_dir:
            raise LogsRefused("NotFound", f"run {request.run_id} has no run directory (yet)")
        return read_file(
            str(run.run_dir), request.path, request.tail_bytes, request.offset, request.max_bytes
        )
    except LogsRefused as exn:
        return {"error": exn.error, "message": str(exn)}
