"""The RunFiles port on a mounted file system: EFS at /mnt/efs in the Lambdas and task jobs,
a local directory in the embedded mode and in tests.

Tasks mount the same file system read/write, so every path is reached from the fixed ``root``
one component at a time without following a symlink (``core/safe_fs.py``): a file or directory
a task swapped for a link is refused, never followed. With root ``/`` (local mode: the user's
own machine) nothing is confined to a subtree, but the controller's own files are still never
reached through a link.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from typing import Any, BinaryIO

from miniwdl_serverless.core import call_files, safe_fs, spill
from miniwdl_serverless.core.localizing import Stamp
from miniwdl_serverless.core.safe_fs import UnsafePath

READ_LIMIT = 256 * 1024 * 1024  # read_text without a limit of its own
LAST_LINK = "_LAST"  # miniwdl's link to the newest run directory


class EfsRunFiles:
    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def create_run_dir(self, root: str, name: str | None) -> tuple[str, bool]:
        real = safe_fs.resolved(self.root, root)
        if name is None and real == self.root:
            return real, False  # the file system's root itself exists, always
        if name is None:
            parent, last = os.path.split(real)
            with safe_fs.directory(self.root, parent, create=True) as dir_fd:
                return real, _mkdir(dir_fd, last, real)
        with safe_fs.directory(self.root, real, create=True) as dir_fd:
            for attempt in range(100):
                candidate = name if attempt == 0 else f"{name}_{attempt + 1}"
                try:
                    os.mkdir(candidate, dir_fd=dir_fd)
                    return os.path.join(real, candidate), True
                except FileExistsError:
                    continue
        raise FileExistsError(f"no free run directory name under {root}")

    def inside_root(self, path: str) -> bool:
        return safe_fs.inside(self.root, os.path.realpath(path))

    def make_dirs(self, path: str) -> None:
        os.close(safe_fs.open_dir(self.root, path, create=True))

    def write_text(self, path: str, text: str) -> None:
        safe_fs.write_bytes(self.root, path, text.encode())

    def read_text(self, path: str, limit: int = READ_LIMIT) -> str:
        return safe_fs.read_bytes(self.root, path, limit).decode()

    def write_json(self, path: str, data: Any) -> None:
        self.write_text(path, json.dumps(data, indent=2))

    def store_value(self, value: Any, spill_dir: str, name: str) -> Any:
        return spill.store(value, spill_dir, name, self.write_text)

    def load_value(self, stored: Any) -> Any:
        return spill.load(stored, lambda path: safe_fs.read_bytes(self.root, path, spill.MAX_BYTES))

    def append_log(self, path: str, line: str) -> None:
        safe_fs.append_bytes(self.root, path, line.encode())

    def prepare_call(
        self,
        call_dir: str,
        command: str,
        inputs: dict[str, str],
        copy_inputs: bool,
        attempt: int = 0,
    ) -> None:
        work = call_files.work_dir(attempt)
        with safe_fs.directory(self.root, call_dir, create=True) as call_fd:
            _clear_foreign(call_fd, work, directory=True)
            work_fd = safe_fs.subdir(call_fd, work, f"{call_dir}/{work}", create=True)
            try:  # only the links (copies) made below: none an earlier attempt's task put there
                _clear_foreign(work_fd, call_files.INPUTS_DIR, directory=False)
            finally:
                os.close(work_fd)
            _clear_foreign(call_fd, call_files.COMMAND, directory=False)
            command_path = f"{call_dir}/{call_files.COMMAND}"
            safe_fs.replace_in(call_fd, call_files.COMMAND, command.encode(), command_path)
            for host_path, inside in inputs.items():
                if copy_inputs and host_path.endswith("/"):
                    self._copy_input_tree(host_path, inside)
                elif copy_inputs:
                    self._copy_input(host_path, inside)
                else:
                    self._link_input(host_path, inside)
            for name in call_files.streams(attempt):
                _clear_foreign(call_fd, name, directory=False, keep_file=True)
                try:  # a file there is this attempt's (a resubmission's): never truncated
                    os.close(safe_fs.create_exclusive(call_fd, name))
                except FileExistsError:
                    pass

    def _link_input(self, host_path: str, inside: str) -> None:
        """A link to the input (the task follows it; the controller never does)."""
        parent, name = os.path.split(inside.rstrip("/"))
        with safe_fs.directory(self.root, parent, create=True) as dir_fd:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            os.symlink(host_path.rstrip("/"), name, dir_fd=dir_fd)

    def _copy_input(self, host_path: str, inside: str) -> None:
        """A read-only copy of an input file: the source must be a regular file whose real path
        lies under the root; the copy is a new file (never written through a link)."""
        source = safe_fs.open_regular(self.root, safe_fs.resolved(self.root, host_path))
        parent, name = os.path.split(inside)
        try:
            with safe_fs.directory(self.root, parent, create=True) as dir_fd:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                with (
                    os.fdopen(source, "rb", closefd=False) as infile,
                    os.fdopen(safe_fs.create_exclusive(dir_fd, name), "wb") as outfile,
                ):
                    shutil.copyfileobj(infile, outfile, 1 << 20)
                    os.fchmod(outfile.fileno(), 0o444)  # as miniwdl's read-only input mounts
        finally:
            os.close(source)

    def _copy_input_tree(self, host_path: str, inside: str) -> None:
        """A Directory input's copy: its folders, and a read-only copy of each regular file in
        it (links and other kinds inside are left out), so no task can change the original."""
        top = safe_fs.resolved(self.root, host_path.rstrip("/"))
        copy = inside.rstrip("/")
        with safe_fs.directory(self.root, os.path.dirname(copy), create=True) as dir_fd:
            try:
                os.unlink(os.path.basename(copy), dir_fd=dir_fd)  # a link left by a resume
            except (FileNotFoundError, IsADirectoryError):
                pass
        self.make_dirs(copy)
        folders, files = self._tree(top)
        for folder in folders:
            self.make_dirs(os.path.join(copy, os.path.relpath(folder, top)))
        for file in files:
            self._copy_input(file, os.path.join(copy, os.path.relpath(file, top)))

    def point_last(self, parent: str, name: str) -> None:
        with safe_fs.directory(self.root, parent) as dir_fd:
            try:
                if not stat.S_ISLNK(os.lstat(LAST_LINK, dir_fd=dir_fd).st_mode):
                    return
            except FileNotFoundError:
                pass
            temporary = f".{LAST_LINK}.{uuid.uuid4().hex}"
            os.symlink(name, temporary, dir_fd=dir_fd)
            os.replace(temporary, LAST_LINK, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # atomic

    def link_output(self, link: str, target: str, hard: bool) -> None:
        parent, name = os.path.split(os.path.normpath(link))
        with safe_fs.directory(self.root, parent, create=True) as dir_fd:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:  # what a task put there: the link replaces it
                safe_fs.remove_tree_at(dir_fd, name)
            if not hard:
                os.symlink(target, name, dir_fd=dir_fd)
                return
            source = safe_fs.open_regular(self.root, safe_fs.resolved(self.root, target))
            try:  # the file opened without following anything, linked by its descriptor
                os.link(f"/proc/self/fd/{source}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            finally:
                os.close(source)

    def exists(self, path: str) -> bool:
        return self.inside_root(path) and os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return self.inside_root(path) and os.path.isdir(path)

    def is_file(self, path: str) -> bool:
        return self.inside_root(path) and os.path.isfile(path)

    def is_own_file(self, path: str, root: str) -> bool:
        if not safe_fs.inside(root, path):
            return False
        try:
            fd = safe_fs.open_regular(self.root, path)
        except (UnsafePath, OSError):
            return False
        os.close(fd)
        return True

    def real_path(self, path: str) -> str:
        return os.path.realpath(path)

    def file_size(self, path: str) -> int:
        if not self.is_file(path):
            return 0
        try:
            return os.path.getsize(path)
        except OSError:  # gone since
            return 0

    def list_files(self, path: str) -> list[str]:
        return self._tree(path)[1]

    def _tree(self, path: str) -> tuple[list[str], list[str]]:
        """The folders and the regular files under ``path`` (no link followed), sorted."""
        folders, found, pending = [], [], [path]
        while pending:  # not os.walk: it recurses once per level, and a task may nest deeply
            top = pending.pop()
            try:
                with os.scandir(top) as entries:
                    children = list(entries)
            except OSError:
                continue
            for entry in children:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False) and self.inside_root(entry.path):
                    found.append(entry.path)
        return sorted(folders), sorted(found)

    def open_new(self, path: str) -> BinaryIO:
        parent, name = os.path.split(os.path.normpath(path))
        with safe_fs.directory(self.root, parent, create=True) as dir_fd:
            return os.fdopen(safe_fs.create_exclusive(dir_fd, name), "wb")

    def move(self, source: str, target: str) -> None:
        (src_parent, src_name), (dst_parent, dst_name) = (
            os.path.split(os.path.normpath(p)) for p in (source, target)
        )
        with (
            safe_fs.directory(self.root, src_parent) as src_fd,
            safe_fs.directory(self.root, dst_parent, create=True) as dst_fd,
        ):
            try:
                os.lstat(dst_name, dir_fd=dst_fd)
            except FileNotFoundError:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                return
            raise FileExistsError(target)

    def stamp(self, path: str) -> Stamp | None:
        if not self.inside_root(path):
            return None
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISREG(info.st_mode):
            return Stamp(info.st_size, info.st_mtime_ns)
        if not stat.S_ISDIR(info.st_mode):
            return None
        size, newest, count = 0, info.st_mtime_ns, 0
        for file in self.list_files(path):
            try:
                entry = os.lstat(file)
            except OSError:
                continue
            size, newest, count = size + entry.st_size, max(newest, entry.st_mtime_ns), count + 1
        return Stamp(size, newest, count)

    def remove_tree(self, path: str) -> None:
        try:
            safe_fs.remove_tree(self.root, path)
        except FileNotFoundError:
            pass


def _clear_foreign(dir_fd: int, name: str, directory: bool, keep_file: bool = False) -> None:
    """Remove what is at ``name`` unless it is what the call's own file would be there (a
    directory with ``directory``, a regular file with ``keep_file``): a symlink, a FIFO, or
    anything a task of an earlier attempt put there. Nothing is followed (a link is unlinked,
    a directory removed through descriptors); what cannot be removed is refused."""
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return
    if (directory and stat.S_ISDIR(mode)) or (keep_file and stat.S_ISREG(mode)):
        return
    if stat.S_ISDIR(mode):
        safe_fs.remove_tree_at(dir_fd, name)
    else:
        os.unlink(name, dir_fd=dir_fd)
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    raise UnsafePath(f"cannot remove {name!r} that a task left in the call directory")


def _mkdir(dir_fd: int, name: str, path: str) -> bool:
    """Make the directory; False if one is there already (a link or a file there is refused)."""
    try:
        os.mkdir(name, dir_fd=dir_fd)
        return True
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
            raise UnsafePath(f"not a directory: {path}") from None
        return False
