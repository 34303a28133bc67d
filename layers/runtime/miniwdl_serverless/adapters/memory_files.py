"""The RunFiles port in memory: the controller's own files (JSON, spills, logs, call
directories) in dicts. Tasks' own files, which miniwdl reads directly, need real ones
(adapters.efs.EfsRunFiles on a temporary directory).

The same rules as on EFS (tests/contract/test_files_contract.py): every path lies under
``root``; a symlink (an entry of ``links``, as a test plants one) is never followed by a read
or a write, whether at the path or on the way to it.
"""

from __future__ import annotations

import io
import json
import os
import threading
from typing import Any, BinaryIO

from miniwdl_serverless.core import call_files, safe_fs, spill
from miniwdl_serverless.core.localizing import Stamp
from miniwdl_serverless.core.safe_fs import UnsafePath

READ_LIMIT = 256 * 1024 * 1024


class MemoryRunFiles:
    def __init__(self, root: str = "/") -> None:
        self.root = os.path.normpath(root)
        self._lock = threading.Lock()
        self._files: dict[str, str] = {}
        # lines appended to a log since it was last read: appending is O(1), as O_APPEND on
        # EFS, instead of copying the whole log (a wide run's workflow.log) per line
        self._tails: dict[str, list[str]] = {}
        self.dirs: set[str] = {"/"}
        self.links: dict[str, str] = {}
        self._mkdirs(self.root)  # the mount point exists

    @property
    def files(self) -> dict[str, str]:
        """Every file's text by path (tests read and plant files here)."""
        with self._lock:
            self._fold_all()
            return self._files

    def _text(self, path: str) -> str:
        """A file's text, its appended lines folded in (the lock held)."""
        tail = self._tails.pop(path, None)
        if tail:
            self._files[path] += "".join(tail)
        return self._files[path]

    def _set(self, path: str, text: str) -> None:
        self._tails.pop(path, None)
        self._files[path] = text

    def _fold_all(self) -> None:
        for path in list(self._tails):
            self._text(path)

    def create_run_dir(self, root: str, name: str | None) -> tuple[str, bool]:
        real = self.real_path(root)
        if not safe_fs.inside(self.root, real):
            raise UnsafePath(f"{root} resolves outside {self.root}")
        with self._lock:
            self._check(real)
            if name is None:
                created = real not in self.dirs
                self._mkdirs(real)
                return real, created
            base = os.path.join(real, name)
            for attempt in range(100):
                path = base if attempt == 0 else f"{base}_{attempt + 1}"
                if path not in self.dirs and path not in self._files and path not in self.links:
                    self._mkdirs(path)
                    return path, True
        raise FileExistsError(base)

    def inside_root(self, path: str) -> bool:
        return safe_fs.inside(self.root, self.real_path(path))

    def make_dirs(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._mkdirs(path)

    def write_text(self, path: str, text: str) -> None:
        with self._lock:
            self._check(path)
            self._mkdirs(os.path.dirname(path))
            self._set(path, text)

    def read_text(self, path: str, limit: int = READ_LIMIT) -> str:
        with self._lock:
            self._check(path)
            if path not in self._files:
                raise FileNotFoundError(path)
            text = self._text(path)
        if len(text.encode()) > limit:
            raise UnsafePath(f"{path} is larger than {limit} bytes")
        return text

    def write_json(self, path: str, data: Any) -> None:
        self.write_text(path, json.dumps(data, indent=2))

    def store_value(self, value: Any, spill_dir: str, name: str) -> Any:
        return spill.store(value, spill_dir, name, self.write_text)

    def load_value(self, stored: Any) -> Any:
        return spill.load(stored, lambda path: self.read_text(path, spill.MAX_BYTES).encode())

    def append_log(self, path: str, line: str) -> None:
        with self._lock:
            self._check(path)
            self._files.setdefault(path, "")
            self._tails.setdefault(path, []).append(line)

    def prepare_call(
        self,
        call_dir: str,
        command: str,
        inputs: dict[str, str],
        copy_inputs: bool,
        attempt: int = 0,
    ) -> None:
        work = os.path.join(call_dir, call_files.work_dir(attempt))
        command_path = os.path.join(call_dir, call_files.COMMAND)
        streams = [os.path.join(call_dir, name) for name in call_files.streams(attempt)]
        with self._lock:
            self._check(call_dir)
            if copy_inputs:
                self._check_copied(inputs)
            # as on EFS: what an earlier attempt's task left at these names goes (a link is
            # never followed); this attempt's own streams are kept (never truncated)
            self._clear(work, keep=self.dirs)
            self._clear(os.path.join(work, call_files.INPUTS_DIR), keep=set())
            self._clear(command_path, keep=set())
            for path in streams:
                self._clear(path, keep=self._files.keys())
            self._mkdirs(work)
            self._set(command_path, command)
            for host, inside in inputs.items():
                self._check(inside.rstrip("/"))
                self._mkdirs(os.path.dirname(inside.rstrip("/")))
                if copy_inputs and host.endswith("/"):
                    self._copy_tree(self._resolve(host.rstrip("/")), inside.rstrip("/"))
                elif copy_inputs:
                    real = self._resolve(host)
                    self._set(inside, self._text(real) if real in self._files else "")
                else:
                    self.links[inside.rstrip("/")] = host.rstrip("/")
            for path in streams:
                if path not in self._files:
                    self._set(path, "")

    def _check_copied(self, inputs: dict[str, str]) -> None:
        """Each input to copy: a regular file (or a Directory) whose real path is under the root."""
        for host in inputs:
            if host.endswith("/"):
                if not safe_fs.inside(self.root, self._resolve(host.rstrip("/"))):
                    raise UnsafePath(f"{host} resolves outside {self.root}")
            else:
                self._check_input(host)

    def _clear(self, path: str, keep: Any) -> None:
        """Remove ``path`` (a link itself, a file, or a directory and all in it) unless it is
        in ``keep`` (the lock held)."""
        if path in keep:
            return
        self._fold_all()
        for table in (self._files, self.links):
            for name in [n for n in table if n == path or n.startswith(path + "/")]:
                del table[name]
        self.dirs = {d for d in self.dirs if not (d == path or d.startswith(path + "/"))}

    def _copy_tree(self, top: str, copy: str) -> None:
        """A Directory input's copy: its folders and regular files (links left out)."""
        self._mkdirs(copy)
        for name in sorted(n for n in self.dirs if n.startswith(top + "/")):
            self._mkdirs(os.path.join(copy, os.path.relpath(name, top)))
        for name in [n for n in self._files if n.startswith(top + "/")]:
            target = os.path.join(copy, os.path.relpath(name, top))
            self._mkdirs(os.path.dirname(target))
            self._set(target, self._text(name))

    def point_last(self, parent: str, name: str) -> None:
        last = os.path.join(parent, "_LAST")
        with self._lock:
            self._check(parent)
            if last in self._files or last in self.dirs:
                return
            self.links[last] = name

    def link_output(self, link: str, target: str, hard: bool) -> None:
        with self._lock:
            self._check(link)
            if hard:
                self._check_input(target)
            self._mkdirs(os.path.dirname(link))
            for table in (self._files, self.links):
                for name in [n for n in table if n == link or n.startswith(link + "/")]:
                    del table[name]
            if hard:
                self._set(link, self._text(self._resolve(target)))
            else:
                self.links[link] = target

    def exists(self, path: str) -> bool:
        real = self._resolve(path)
        return self.inside_root(path) and (
            real in self._files or real in self.dirs or path in self.links
        )

    def is_dir(self, path: str) -> bool:
        return self.inside_root(path) and self._resolve(path) in self.dirs

    def is_file(self, path: str) -> bool:
        return self.inside_root(path) and self._resolve(path) in self._files

    def is_own_file(self, path: str, root: str) -> bool:
        if not safe_fs.inside(root, path) or path not in self._files:
            return False
        try:
            self._check(path)
        except UnsafePath:
            return False
        return True

    def real_path(self, path: str) -> str:
        return self._resolve(path)

    def file_size(self, path: str) -> int:
        if not self.inside_root(path):
            return 0
        with self._lock:
            real = self._resolve(path)
            text = self._text(real) if real in self._files else None
        return len(text.encode()) if text is not None else 0

    def list_files(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        with self._lock:
            return sorted(name for name in self._files if name.startswith(prefix))

    def open_new(self, path: str) -> BinaryIO:
        with self._lock:
            self._check(path)
            if path in self._files or path in self.links:
                raise FileExistsError(path)
            self._mkdirs(os.path.dirname(path))
            self._set(path, "")
        owner = self

        class _Writer(io.BytesIO):  # the text lands in ``files`` when closed
            def close(self) -> None:
                if not self.closed:
                    with owner._lock:
                        owner._set(path, self.getvalue().decode(errors="replace"))
                super().close()

        return _Writer()

    def move(self, source: str, target: str) -> None:
        with self._lock:
            self._check(source)
            self._check(target)
            if target in self._files or target in self.dirs or target in self.links:
                raise FileExistsError(target)
            self._mkdirs(os.path.dirname(target))
            self._move(source, target)

    def stamp(self, path: str) -> Stamp | None:
        with self._lock:
            if path in self._files:
                return Stamp(len(self._text(path).encode()), 0)
            if path not in self.dirs:
                return None
            self._fold_all()
            inside = [t for n, t in self._files.items() if n.startswith(path.rstrip("/") + "/")]
        return Stamp(sum(len(t.encode()) for t in inside), 0, len(inside))

    def remove_tree(self, path: str) -> None:
        with self._lock:
            self._check(path)
            if not safe_fs.parts_under(self.root, path):
                raise UnsafePath(f"refusing to delete the root itself: {path}")
            self._fold_all()
            for table in (self._files, self.links):
                for name in [n for n in table if n == path or n.startswith(path + "/")]:
                    del table[name]
            self.dirs = {d for d in self.dirs if not (d == path or d.startswith(path + "/"))}

    def _check(self, path: str) -> None:
        """As on EFS: under the root, and no link at ``path`` or on the way to it."""
        current = self.root
        parts = safe_fs.parts_under(self.root, path)
        for index, part in enumerate(parts):
            current = os.path.join(current, part)
            if current in self.links:
                raise UnsafePath(f"{path}: a symlink on the way (refused)")
            if current in self._files and index < len(parts) - 1:
                raise UnsafePath(f"{path}: a non-directory on the way (refused)")

    def _check_input(self, path: str) -> None:
        real = self._resolve(path)
        if not safe_fs.inside(self.root, real):
            raise UnsafePath(f"{path} resolves outside {self.root}")
        if real not in self._files:
            raise UnsafePath(f"not a regular file: {path}")

    def _resolve(self, path: str) -> str:
        """The path with every planted link resolved (as realpath)."""
        path = os.path.normpath(path)
        for _ in range(40):
            prefix = "/"
            for part in [p for p in path.split("/") if p]:
                prefix = os.path.join(prefix, part)
                if prefix in self.links:
                    target = os.path.join(os.path.dirname(prefix), self.links[prefix])
                    path = os.path.normpath(target + path[len(prefix) :])
                    break
            else:
                return path
        return path

    def _mkdirs(self, path: str) -> None:
        while path and path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    def _move(self, source: str, target: str) -> None:
        self._fold_all()
        for table in (self._files, self.links):
            for name in [n for n in table if n == source or n.startswith(source + "/")]:
                table[target + name[len(source) :]] = table.pop(name)
        moved = {d for d in self.dirs if d == source or d.startswith(source + "/")}
        self.dirs -= moved
        self.dirs |= {target + d[len(source) :] for d in moved}
