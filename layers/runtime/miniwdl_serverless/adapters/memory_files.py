"""The RunFiles port in memory: the controller's own files (JSON, spills, logs, call
directories) in dicts. Tasks' own files, which miniwdl reads directly, need real ones
(adapters.efs.EfsRunFiles on a temporary directory)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from miniwdl_serverless.core import spill


class MemoryRunFiles:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: dict[str, str] = {}
        self.dirs: set[str] = {"/"}
        self.links: dict[str, str] = {}

    def create_run_dir(self, root: str, name: str | None) -> str:
        with self._lock:
            if name is None:
                self._mkdirs(root)
                return root
            base = os.path.join(root, name)
            for attempt in range(100):
                path = base if attempt == 0 else f"{base}_{attempt + 1}"
                if path not in self.dirs and path not in self.files:
                    self._mkdirs(path)
                    return path
        raise FileExistsError(base)

    def make_dirs(self, path: str) -> None:
        with self._lock:
            self._mkdirs(path)

    def write_text(self, path: str, text: str) -> None:
        with self._lock:
            self._mkdirs(os.path.dirname(path))
            self.files[path] = text

    def read_text(self, path: str) -> str:
        with self._lock:
            if path not in self.files:
                raise FileNotFoundError(path)
            return self.files[path]

    def write_json(self, path: str, data: Any) -> None:
        self.write_text(path, json.dumps(data, indent=2))

    def store_value(self, value: Any, spill_dir: str, name: str) -> Any:
        return spill.store(value, spill_dir, name, self.write_text)

    def load_value(self, stored: Any) -> Any:
        return spill.load(stored, lambda path: self.read_text(path).encode())

    def append_log(self, path: str, line: str) -> None:
        with self._lock:
            self.files[path] = self.files.get(path, "") + line

    def prepare_call(
        self,
        call_dir: str,
        command: str,
        inputs: dict[str, str],
        copy_inputs: bool,  # noqa: ARG002 - in memory a copy and a link look the same
    ) -> None:
        with self._lock:
            self._mkdirs(os.path.join(call_dir, "work"))
            self.files[os.path.join(call_dir, "command")] = command
            for host, inside in inputs.items():
                self._mkdirs(os.path.dirname(inside.rstrip("/")))
                self.links[inside.rstrip("/")] = host.rstrip("/")
            for name in ("stdout.txt", "stderr.txt"):
                self.files[os.path.join(call_dir, name)] = ""

    def archive_attempt(self, call_dir: str, attempt: int) -> None:
        with self._lock:
            target = os.path.join(call_dir, f"attempt-{attempt}")
            self._mkdirs(target)
            for name in ("work", "stdout.txt", "stderr.txt", "command"):
                self._move(os.path.join(call_dir, name), os.path.join(target, name))

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs or path in self.links

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def is_file(self, path: str) -> bool:
        return path in self.files

    def is_own_file(self, path: str, root: str) -> bool:
        return path in self.files and path.startswith(root.rstrip("/") + "/")

    def real_path(self, path: str) -> str:
        return self.links.get(path, path)

    def remove_tree(self, path: str) -> None:
        with self._lock:
            for table in (self.files, self.links):
                for name in [n for n in table if n == path or n.startswith(path + "/")]:
                    del table[name]
            self.dirs = {d for d in self.dirs if not (d == path or d.startswith(path + "/"))}

    def _mkdirs(self, path: str) -> None:
        while path and path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    def _move(self, source: str, target: str) -> None:
        for table in (self.files, self.links):
            for name in [n for n in table if n == source or n.startswith(source + "/")]:
                table[target + name[len(source) :]] = table.pop(name)
        moved = {d for d in self.dirs if d == source or d.startswith(source + "/")}
        self.dirs -= moved
        self.dirs |= {target + d[len(source) :] for d in moved}
