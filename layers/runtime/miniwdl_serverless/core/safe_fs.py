"""File system primitives for a file system that tasks can change under the controller's feet
(anything on EFS is untrusted input: docs/architecture.md, design rule 4).

A path is opened from a fixed root (the EFS mount, or ``/`` in local mode) one component at a
time with ``O_NOFOLLOW``, so a directory or file swapped for a symlink is refused rather than
followed, however late the swap. Files are read only if they are regular (``O_NONBLOCK`` and
``fstat``: a FIFO or a device swapped in by a task cannot hang the controller) and only up to a
limit. Files are written under unique names created exclusively and renamed into place, never
through a symlink at the target. The one core module that touches the file system: the file
adapters, the logs function and miniwdl's guarded reads (``core/guarded_reads.py``) share it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
# errors a component swapped for a symlink (ELOOP) or a file (ENOTDIR) gives when opened
_REFUSED = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)


class UnsafePath(OSError):
    """A path the controller will not use: outside the root, through or at a symlink, not a
    regular file, or larger than allowed. An OSError, so best-effort writers carry on."""


def inside(root: str, path: str) -> bool:
    """Whether absolute ``path`` lies lexically under ``root`` (or is it)."""
    root, path = os.path.normpath(root), os.path.normpath(path)
    return root == "/" or path == root or path.startswith(root + "/")


def parts_under(root: str, path: str) -> list[str]:
    """The components of absolute ``path`` below ``root``; refused if it is not under it."""
    if not os.path.isabs(path):
        raise UnsafePath(f"not an absolute path: {path}")
    if not inside(root, path):
        raise UnsafePath(f"{path} is outside {root}")
    relative = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
    return [part for part in relative.split("/") if part not in ("", ".")]


def resolved(root: str, path: str) -> str:
    """``path`` with every symlink resolved; refused if the result leaves ``root``. Links that
    stay inside are fine: opening the result with ``open_regular`` then refuses a link swapped in
    after this resolution."""
    real = os.path.realpath(path)
    if not inside(os.path.realpath(root), real):
        raise UnsafePath(f"{path} resolves outside {root}")
    return real


def _refused(exn: OSError, path: str) -> OSError:
    if exn.errno in _REFUSED:
        return UnsafePath(f"{path}: a symlink or non-directory on the way (refused)")
    return exn


def open_dir(root: str, path: str, create: bool = False) -> int:
    """A file descriptor of the directory ``path`` under ``root``, opened component by component
    without following any symlink; ``create`` makes missing directories on the way."""
    parts = parts_under(root, path)
    fd = os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY)  # the mount point itself
    try:
        for part in parts:
            inner = subdir(fd, part, path, create)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def subdir(dir_fd: int, name: str, path: str, create: bool = False) -> int:
    """A new descriptor of the directory ``name`` inside ``dir_fd`` (a symlink there is refused),
    made first if missing and ``create``. ``path`` names it in errors."""
    try:
        try:
            return os.open(name, DIRECTORY_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, dir_fd=dir_fd)
            except FileExistsError:
                pass
            return os.open(name, DIRECTORY_FLAGS, dir_fd=dir_fd)
    except OSError as exn:
        raise _refused(exn, path) from exn


@contextmanager
def directory(root: str, path: str, create: bool = False) -> Iterator[int]:
    """``open_dir`` as a context manager."""
    fd = open_dir(root, path, create)
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(root: str, path: str) -> int:
    """A read-only descriptor of the regular file ``path`` under ``root``, no symlink followed
    on the way or at the end, opened non-blocking (a FIFO cannot hang the caller)."""
    parent, name = os.path.split(os.path.normpath(path))
    with directory(root, parent) as dir_fd:
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except OSError as exn:
            raise _refused(exn, path) from exn
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"not a regular file: {path}")
    return fd


def read_limited(fd: int, limit: int, path: str) -> bytes:
    """Everything in ``fd`` (closed after), refused past ``limit`` bytes (a file may grow while
    it is read: the limit holds for what is read, not only for the size fstat saw)."""
    try:
        if os.fstat(fd).st_size > limit:
            raise UnsafePath(f"{path} is larger than {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UnsafePath(f"{path} is larger than {limit} bytes")
    finally:
        os.close(fd)


def read_bytes(root: str, path: str, limit: int) -> bytes:
    """The content of the regular file ``path`` under ``root`` (no symlink followed), at most
    ``limit`` bytes."""
    return read_limited(open_regular(root, path), limit, path)


def _refuse_link_at(dir_fd: int, name: str, path: str) -> None:
    """A symlink (or a directory, FIFO, device) where a regular file is to be replaced is a
    task's doing: refused."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(f"refusing to replace a symlink or non-file: {path}")


def create_exclusive(dir_fd: int, name: str, mode: int = 0o666) -> int:
    """A new file ``name`` in the directory, created exclusively (never an existing file, never
    through a symlink)."""
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)


def replace_in(dir_fd: int, name: str, data: bytes, path: str) -> None:
    """Atomically replace the regular file ``name`` in the directory with ``data``: written under
    a unique name created exclusively, then renamed over it (concurrent writers of the same file
    each use their own temporary file; the last rename wins)."""
    _refuse_link_at(dir_fd, name, path)
    temporary = f".{name[:180]}.{secrets.token_hex(8)}.tmp"
    fd = create_exclusive(dir_fd, temporary)
    try:
        with os.fdopen(fd, "wb") as outfile:
            outfile.write(data)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def write_bytes(root: str, path: str, data: bytes) -> None:
    """Replace the file ``path`` under ``root`` atomically (directories made as needed)."""
    parent, name = os.path.split(os.path.normpath(path))
    with directory(root, parent, create=True) as dir_fd:
        replace_in(dir_fd, name, data, path)


def append_bytes(root: str, path: str, data: bytes) -> None:
    """Append to the regular file ``path`` under ``root`` (created if missing), never through a
    symlink, never to a FIFO or device."""
    parent, name = os.path.split(os.path.normpath(path))
    with directory(root, parent, create=True) as dir_fd:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(name, flags, 0o666, dir_fd=dir_fd)
        except OSError as exn:
            raise _refused(exn, path) from exn
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"not a regular file: {path}")
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_tree(root: str, path: str) -> None:
    """Delete the directory ``path`` under ``root`` and everything in it, following no symlink:
    neither on the way to it nor inside it (a link inside is removed, not followed)."""
    parent, name = os.path.split(os.path.normpath(path))
    if not parts_under(root, path):
        raise UnsafePath(f"refusing to delete the root itself: {path}")
    with directory(root, parent) as dir_fd:
        info = os.lstat(name, dir_fd=dir_fd)
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePath(f"not a directory: {path}")
        remove_tree_at(dir_fd, name)


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove the directory ``name`` in ``dir_fd`` and everything in it through descriptors,
    following no symlink, removing what can be removed (as ``rmtree(ignore_errors=True)``).

    Neither recursion nor one descriptor per level: a task can nest directories thousands of
    levels deep (past Python's recursion limit, the descriptor limit and PATH_MAX), so each
    directory met is first moved up into the top one and emptied from there."""
    top = os.open(name, DIRECTORY_FLAGS, dir_fd=dir_fd)
    try:
        pending = _empty(top, top)  # directories directly in ``top``, each to empty and remove
        while pending:
            current = pending[-1]
            try:
                fd = os.open(current, DIRECTORY_FLAGS, dir_fd=top)
            except OSError:
                pending.pop()
                continue
            try:
                hoisted = _empty(fd, top)
            finally:
                os.close(fd)
            if hoisted:
                pending += hoisted
                continue
            pending.pop()
            try:
                os.rmdir(current, dir_fd=top)
            except OSError:
                continue
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=dir_fd)


def _empty(fd: int, top: int) -> list[str]:
    """Unlink every non-directory in ``fd`` (links included) and move its directories into
    ``top`` under unique names, which are returned."""
    with os.scandir(fd) as entries:
        children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    moved = []
    for child, is_dir in children:
        try:
            if not is_dir:
                os.unlink(child, dir_fd=fd)
            elif fd == top:
                moved.append(child)
            else:
                hoisted = f".rm-{secrets.token_hex(8)}"
                os.rename(child, hoisted, src_dir_fd=fd, dst_dir_fd=top)
                moved.append(hoisted)
        except OSError:
            continue
    return moved
