"""The RunFiles port on a mounted file system: EFS at /mnt/efs in the Lambdas and task jobs,
a local directory in the embedded mode and in tests."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from WDL._util import symlink_force

from miniwdl_serverless.core import spill


class EfsRunFiles:
    def create_run_dir(self, root: str, name: str | None) -> str:
        if name is None:
            os.makedirs(root, exist_ok=True)
            return root
        os.makedirs(root, exist_ok=True)
        base = os.path.join(root, name)
        for attempt in range(100):
            path = base if attempt == 0 else f"{base}_{attempt + 1}"
            try:
                os.mkdir(path)
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"no free run directory name under {root}")

    def make_dirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def write_text(self, path: str, text: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as outfile:
            outfile.write(text)
        os.replace(path + ".tmp", path)

    def read_text(self, path: str) -> str:
        with open(path) as infile:
            return infile.read()

    def write_json(self, path: str, data: Any) -> None:
        self.write_text(path, json.dumps(data, indent=2))

    def store_value(self, value: Any, spill_dir: str, name: str) -> Any:
        return spill.store(value, spill_dir, name, self.write_text)

    def load_value(self, stored: Any) -> Any:
        return spill.load(stored, _read_bytes)

    def append_log(self, path: str, line: str) -> None:
        with open(path, "a") as logfile:
            logfile.write(line)

    def prepare_call(
        self, call_dir: str, command: str, inputs: dict[str, str], copy_inputs: bool
    ) -> None:
        os.makedirs(os.path.join(call_dir, "work"), exist_ok=True)
        with open(os.path.join(call_dir, "command"), "w") as outfile:
            outfile.write(command)
        for host_path, inside in inputs.items():
            link = inside.rstrip("/")
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if copy_inputs and not host_path.endswith("/"):
                shutil.copyfile(host_path, link)
            else:
                symlink_force(host_path.rstrip("/"), link)
        for name in ("stdout.txt", "stderr.txt"):
            open(os.path.join(call_dir, name), "w").close()

    def archive_attempt(self, call_dir: str, attempt: int) -> None:
        target = os.path.join(call_dir, f"attempt-{attempt}")
        os.makedirs(target, exist_ok=True)
        for name in ("work", "stdout.txt", "stderr.txt", "command"):
            path = os.path.join(call_dir, name)
            if os.path.lexists(path):
                os.replace(path, os.path.join(target, name))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def is_file(self, path: str) -> bool:
        return os.path.isfile(path)

    def is_own_file(self, path: str, root: str) -> bool:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        real_root = os.path.realpath(root).rstrip("/") + "/"
        return os.path.realpath(path).startswith(real_root)

    def real_path(self, path: str) -> str:
        return os.path.realpath(path)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as infile:
        return infile.read()
