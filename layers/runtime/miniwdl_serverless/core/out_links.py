"""The run directory's ``out/`` folder, as miniwdl lays it out (its ``link_outputs``): one link
per output file or directory, under the output's name, then one folder per level of an Array
(zero-padded indices), Map (its keys, when they all make path names; else indices), Pair
(``left``/``right``) or struct (member names). With ``[file_io] use_relative_output_paths``
the links keep each file's path relative to its call's working directory instead, and two
different files wanting one link fail the run, with miniwdl's message. The run's outputs then
name the links. Pure: what to link where; controller/out_dir.py makes the links."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import WDL

from miniwdl_serverless.core import call_files

OUT_DIR = "out"
DIRECTORY_MARK = ".WDL_Directory"  # beside a Directory output's link, as miniwdl drops it
PATH_NAME = re.compile(r"[-_a-zA-Z0-9][-_a-zA-Z0-9.]*")
COLLISION = (
    "Output filename collision; to allow this, set [file_io] use_relative_output_paths = false."
    " Affected path: "
)


class OutputCollision(Exception):
    """Two different files want one link under ``out/`` (use_relative_output_paths)."""


@dataclass(frozen=True)
class OutLink:
    link: str  # absolute path under <run dir>/out
    target: str  # the output's path as the run's outputs name it
    directory: bool


@dataclass
class OutPlan:
    outputs: dict[str, Any]  # the run's outputs, naming the links
    links: list[OutLink] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)  # DIRECTORY_MARK files to create


def plan(  # noqa: PLR0913 - the outputs, their types, and miniwdl's two settings
    outputs: dict[str, Any],
    types: dict[str, WDL.Type.Base],
    namespace: str,
    run_dir: str,
    relative_paths: bool,
    real_path: Callable[[str], str],
) -> OutPlan:
    """Where each output file or directory is linked under ``<run_dir>/out``; ``types`` by
    the output's name without ``namespace`` (the workflow's or lone task's name)."""
    planner = _Planner(run_dir, relative_paths, real_path)
    prefix = namespace + "."
    for key, value in outputs.items():
        name = key[len(prefix) :] if key.startswith(prefix) else key
        wdl_type = types.get(name)
        folder = os.path.join(planner.out, name)
        planner.result.outputs[key] = (
            planner.walk(value, wdl_type, folder) if wdl_type is not None else value
        )
    return planner.result


class _Planner:
    def __init__(self, run_dir: str, relative_paths: bool, real_path: Callable[[str], str]):
        self.run_dir = run_dir
        self.out = os.path.join(run_dir, OUT_DIR)
        self.relative_paths = relative_paths
        self.real_path = real_path
        self.result = OutPlan(outputs={})
        self.taken: dict[str, str] = {}  # link → real target (use_relative_output_paths)

    def walk(self, value: Any, wdl_type: WDL.Type.Base, folder: str) -> Any:
        if value is None:
            return None
        if isinstance(wdl_type, (WDL.Type.File, WDL.Type.Directory)):
            if isinstance(value, str) and os.path.isabs(value):
                return self.leaf(value, isinstance(wdl_type, WDL.Type.Directory), folder)
            return value
        parts = _members(value, wdl_type)
        if parts is None:
            return value
        walked = {
            key: self.walk(value[key], member, os.path.join(folder, name)) if member else value[key]
            for key, member, name in parts
        }
        return list(walked.values()) if isinstance(value, list) else walked

    def leaf(self, value: str, directory: bool, folder: str) -> str:
        if self.relative_paths:
            real = self.real_path(value)
            link = os.path.join(self.out, relative_link(real, self.run_dir))
            if link in self.taken:
                if self.taken[link] != real:
                    raise OutputCollision(COLLISION + link)
                return link  # the same file named twice: one link
            self.taken[link] = real
        else:
            link = os.path.join(folder, os.path.basename(value.rstrip("/")))
            if directory:
                self.result.marks.append(os.path.join(folder, DIRECTORY_MARK))
        self.result.links.append(OutLink(link, value, directory))
        return link


def _members(value: Any, wdl_type: WDL.Type.Base) -> list[tuple[Any, Any, str]] | None:
    """A compound value's members as (key, WDL type or None, folder name), in miniwdl's out/
    layout: arrays by index, maps by key (by index when a key is no file name), pairs by
    left/right, structs by member; None for anything else."""
    if isinstance(wdl_type, WDL.Type.Array) and isinstance(value, list):
        names = _indices(len(value))
        return [(i, wdl_type.item_type, names[i]) for i in range(len(value))]
    if isinstance(wdl_type, WDL.Type.Map) and isinstance(value, dict):
        keys = [str(k) for k in value]
        names = keys if all(PATH_NAME.fullmatch(k) for k in keys) else _indices(len(keys))
        return [(k, wdl_type.item_type[1], n) for k, n in zip(value, names, strict=True)]
    if isinstance(wdl_type, WDL.Type.Pair) and isinstance(value, dict):
        sides = {"left": wdl_type.left_type, "right": wdl_type.right_type}
        return [(k, sides.get(k), k) for k in value]
    if isinstance(wdl_type, WDL.Type.StructInstance) and isinstance(value, dict):
        members = wdl_type.members or {}
        return [(k, members.get(k), k) for k in value]
    return None


def _indices(count: int) -> list[str]:
    """miniwdl's index folder names: zero-padded to the digits the count needs."""
    digits = int(math.ceil(math.log10(count))) if count else 0
    return [str(i).rjust(digits, "0") for i in range(count)]


def relative_link(real_target: str, run_dir: str) -> str:
    """use_relative_output_paths: the path relative to the working directory of the call that
    made it (``.../call-x/work/REL``, a retry's ``.../call-x/work2/REL`` → REL), else the
    file's name."""
    parts = real_target.strip("/").split("/")
    base = run_dir.strip("/").split("/")
    if parts[: len(base)] == base:
        for index in range(len(parts) - 2, len(base) - 1, -1):
            if call_files.attempt_of_work_dir(parts[index]) is not None and parts[
                index - 1
            ].startswith("call-"):
                return "/".join(parts[index + 1 :])
    return os.path.basename(real_target)


def symlink_text(real_target: str, link: str, run_dir: str) -> str:
    """What the link holds: relative when the target lies under the run root (so the run
    root can move), absolute otherwise, as miniwdl writes them."""
    root = os.path.dirname(run_dir.rstrip("/"))
    if real_target == root or real_target.startswith(root.rstrip("/") + "/"):
        return os.path.relpath(real_target, os.path.dirname(link))
    return real_target
