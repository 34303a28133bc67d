"""Finish's uploads (``s3upload``): which files of a run go where (the plan, in one fixed
order), and sending them through the Uploads port until the deadline comes near, when Finish
hands its progress to a further invocation (core/uploads.py decides)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from miniwdl_serverless.controller.ports import Ports, RunFiles
from miniwdl_serverless.core import uploads
from miniwdl_serverless.core.out_links import OUT_DIR
from miniwdl_serverless.core.records import Run
from miniwdl_serverless.core.uploads import Deadline, Progress, Tally, Throughput, Transfer

log = logging.getLogger("miniwdl_serverless.controller")


@dataclass(frozen=True)
class Item:
    """One file to upload: ``name`` is what it belongs to (an output, ``w.d`` or ``w.fs/0``,
    or a failed task's log, ``stderr_file``); with ``own_root``, only a regular file (not a
    link) inside that directory is uploaded (logs a task could replace)."""

    path: str
    uri: str
    name: str
    own_root: str | None = None


class Continue(Exception):
    """The deadline is near: a further invocation goes on from ``progress``."""

    def __init__(self, progress: Progress):
        super().__init__(f"continuing after {progress.done} files")
        self.progress = progress


@dataclass
class Batch:
    """Sends a plan's files, from where the progress of earlier invocations says. ``session``
    counts this invocation's transfers, ``total`` every invocation's."""

    ports: Ports
    deadline: Deadline | None = None
    progress: Progress = field(default_factory=Progress)
    session: Tally = field(default_factory=Tally)
    total: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.total = self.progress.tally

    def upload(self, items: list[Item]) -> set[str]:
        """The names of the items that could not be uploaded. Raises Continue when the next
        file would not be sent before the deadline (never before this invocation's first)."""
        keys = [(item.path, item.uri) for item in items]
        start = self.progress.resumed(keys)
        failed, tally, throughput = list(start.failed), start.tally, Throughput()
        clock: Callable[[], float] = self.deadline.clock if self.deadline else time.monotonic
        for index in range(start.done, len(items)):
            item = items[index]
            if self._out_of_time(item, throughput, started=index > start.done):
                raise Continue(start.stopped_at(keys, index, failed, tally))
            began = clock()
            transfer = upload_item(self.ports, item)
            if transfer is None:
                failed.append(index)
                continue
            tally, self.session = tally.add(transfer), self.session.add(transfer)
            if not transfer.skipped:
                throughput = throughput.add(transfer.size, clock() - began)
        self.total = tally
        return {items[index].name for index in failed}

    def _out_of_time(self, item: Item, throughput: Throughput, started: bool) -> bool:
        if self.deadline is None:
            return False
        size = self.ports.files.file_size(item.path)
        return uploads.stop_before(size, self.deadline.left(), throughput.rate(), started)


def upload_item(ports: Ports, item: Item) -> Transfer | None:
    """Upload one file; None if it could not be (swapped for a link or a FIFO since it was
    listed, not the run's own log, changed while it was sent)."""
    files = ports.files
    if item.own_root is not None and not files.is_own_file(item.path, item.own_root):
        log.warning("not uploading %s: not a regular file of the run", item.path)
        return None
    try:
        return ports.uploads.upload_file(item.path, item.uri)
    except OSError as exn:  # refused (a link out of EFS, a FIFO) or changed meanwhile
        log.warning("not uploading %s: %s", item.path, exn)
        return None


class OutputPlan:
    """Where a run's outputs go: each output file under ``<folder><name>/``, a Directory
    with everything in it under ``<folder><name>/<directory name>/`` (links are not followed),
    in any WDL type. Only files of the run (or its inputs) are uploaded, and files under
    ``also_under`` (the download cache, earlier runs' calls reused from the call cache): an
    output string naming another file on the Lambda's file system stays a string."""

    def __init__(  # noqa: PLR0913 - the run, where to, what, and which other folders count
        self,
        files: RunFiles,
        run: Run,
        folder: str,
        outputs: dict[str, Any],
        also_under: tuple[str, ...] = (),
    ):
        self.files = files
        self.folder = folder
        self.run_dir = files.real_path(str(run.run_dir)).rstrip("/") + "/"
        self.roots = (self.run_dir, *(files.real_path(r).rstrip("/") + "/" for r in also_under))
        self.inputs = input_paths(files.load_value(run.inputs) or {})
        self.out = os.path.join(str(run.run_dir).rstrip("/"), OUT_DIR) + "/"
        self.items: list[Item] = []
        self.targets: dict[str, str] = {}  # output name → its URI
        _map_outputs(outputs, self._plan)

    def rewrite(self, outputs: dict[str, Any], left: set[str]) -> dict[str, Any]:
        """The outputs with each uploaded file or directory as its s3:// URI; what was not
        uploaded (named in ``left``) keeps its path."""

        def uri(value: str, name: str) -> str:
            return self.targets[name] if name in self.targets and name not in left else value

        return _map_outputs(outputs, uri)

    def _ours(self, value: str) -> bool:
        real = self.files.real_path(value)
        return real.startswith(self.roots) or value.rstrip("/") in self.inputs

    def _plan(self, value: str, name: str) -> str:
        if not self._ours(value):
            return value
        under_out = value.startswith(self.out)  # a link there: what it names, at its own path
        source = self.files.real_path(value) if under_out else value
        key = value[len(self.out) :] if under_out else self._outside_key(value, name)
        if self.files.is_file(source):
            target = self.folder + key
            self.items.append(Item(source, target, name))
            self.targets[name] = target
        elif self.files.is_dir(source):
            top = source.rstrip("/")
            target = self.folder + key.rstrip("/") + "/"
            for file in self.files.list_files(top):
                self.items.append(Item(file, target + os.path.relpath(file, top), name))
            self.targets[name] = target
        return value

    @staticmethod
    def _outside_key(value: str, name: str) -> str:
        """miniwdl-aws's layout puts out/'s contents right under the folder; an output outside
        out/ (its link could not be made) goes under the output's name."""
        return f"{name}/{os.path.basename(value.rstrip('/'))}"


def _map_outputs(outputs: dict[str, Any], leaf: Callable[[str, str], str]) -> dict[str, Any]:
    """``leaf(path, name)`` for every absolute path in the outputs, named as ``left`` names
    them: the output's name, then ``/index`` or ``/key`` for each level inside it."""

    def walk(value: Any, name: str) -> Any:
        if isinstance(value, str):
            return leaf(value, name) if os.path.isabs(value) else value
        if isinstance(value, list):
            return [walk(v, f"{name}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: walk(v, f"{name}/{k}") for k, v in value.items()}
        return value

    return {key: walk(value, key) for key, value in outputs.items()}


def input_paths(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if os.path.isabs(value) else set()
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return set()
    return set().union(*(input_paths(v) for v in items)) if items else set()
