"""A task call split in two around the Batch job: prepare (in Lambda) and collect (in Lambda).

``prepare`` evaluates inputs, runtime and command with miniwdl and says what the call
directory must hold (the command, the inputs to link under ``work/_miniwdl_inputs``): the
RunFiles port writes it. The Batch job runs only bash; ``collect`` applies miniwdl's output
rules (stdout(), stderr(), glob, read_*, optional outputs, returnCodes) to what it left.
The call directory is mounted at the same path in Lambda and in the job (container_dir ==
host_dir), as in miniwdl-aws. Uses private miniwdl functions: miniwdl is pinned and
tests/unit/test_miniwdl_contract.py fails loudly if a signature changes.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import WDL
from WDL import Env, Tree, Value
from WDL._util import WDLVersion, wdl_version_geq
from WDL.runtime._stdlib import TaskInputStdLib
from WDL.runtime.cache import CallCacheAddPaths
from WDL.runtime.task import (
    _eval_task_command,
    _eval_task_inputs,
    _eval_task_outputs,
    _eval_task_runtime,
)
from WDL.runtime.task_container import TaskContainer

from miniwdl_serverless.controller.ports import RunFiles
from miniwdl_serverless.core import arrays, call_files, guarded_reads, wdl_extensions

guarded_reads.install()
wdl_extensions.install()  # Object and its stdlib functions (core/wdl_extensions.py)


class ExternalContainer(TaskContainer):
    """A TaskContainer whose command is run elsewhere (an AWS Batch job), never by miniwdl.

    The job runs at the host paths (``container_dir == host_dir``), in the attempt's own
    working directory, miniwdl's names (``core/call_files.py``). miniwdl's container always
    sees ``{container_dir}/work``; here a retry's job sees ``work2/`` and so on, so the
    inputs are placed under the attempt's own ``work{k+1}/_miniwdl_inputs`` and the paths
    miniwdl names under ``{container_dir}/work`` (``glob``) are read as the attempt's."""

    @classmethod
    def global_init(cls, cfg: WDL.runtime.config.Loader, logger: logging.Logger) -> None:
        pass

    @classmethod
    def detect_resource_limits(
        cls,
        cfg: WDL.runtime.config.Loader,  # noqa: ARG003 - TaskContainer's interface
        logger: logging.Logger,  # noqa: ARG003
    ) -> dict[str, int]:
        return {"cpu": 9999, "mem_bytes": 999_999_999_999_999}  # Batch enforces, don't clamp

    def __init__(
        self, cfg: WDL.runtime.config.Loader, run_id: str, host_dir: str, attempt: int = 0
    ):
        # miniwdl's constructor sets fields and ends by creating work/, which is the RunFiles
        # port's job here: while constructing, host_work_dir() names a directory that exists.
        self._constructed = False
        try:
            super().__init__(cfg, run_id, host_dir)
        except FileExistsError:
            pass
        self._constructed = True
        self.container_dir = host_dir
        self.attempt = attempt
        self.try_counter = attempt + 1
        self.raw_runtime: dict[str, Any] = {}

    def host_work_dir(self) -> str:
        if not getattr(self, "_constructed", True):
            return os.sep
        return os.path.join(self.host_dir, call_files.work_dir(self.attempt))

    def host_stdout_txt(self) -> str:
        return os.path.join(self.host_dir, call_files.stdout_txt(self.attempt))

    def host_stderr_txt(self) -> str:
        return os.path.join(self.host_dir, call_files.stderr_txt(self.attempt))

    def _miniwdl_work(self) -> str:
        """Where miniwdl places the container's working directory (``work`` of any attempt)."""
        return os.path.join(self.container_dir, "work")

    def add_paths(self, host_paths: Iterable[str]) -> None:
        """miniwdl's placement of the inputs (its names, its collision rule), under the
        attempt's own working directory."""
        own, theirs = self.host_work_dir(), self._miniwdl_work()
        if own == theirs:
            super().add_paths(host_paths)
            return
        self._move_inputs(own, theirs)
        super().add_paths(host_paths)
        self._move_inputs(theirs, own)

    def _move_inputs(self, old: str, new: str) -> None:
        """The inputs placed so far, under ``new`` instead of ``old`` (both maps)."""
        placed = {host: _swap(inside, old, new) for host, inside in self.input_path_map.items()}
        self.input_path_map = placed
        self.input_path_map_rev = {inside: host for host, inside in placed.items()}

    def process_runtime(self, logger: logging.Logger, runtime_eval: dict[str, Value.Base]) -> None:
        super().process_runtime(logger, runtime_eval)
        self.raw_runtime = {k: v.json for k, v in runtime_eval.items()}

    def host_path(self, container_path: str, inputs_only: bool = False) -> str | None:
        """miniwdl's rule (outputs only from the working directory), except that an output may
        be a symlink to one of the task's own inputs: inputs are linked, not copied, here. A
        retry's path under its own ``work{k+1}/`` (or under ``work/`` as miniwdl's ``glob``
        names it) is its working directory's."""
        own, theirs = self.host_work_dir(), self._miniwdl_work()
        if own != theirs and os.path.isabs(container_path) and not inputs_only:
            container_path = _swap(container_path, theirs, own)
            inputs_dir = os.path.join(own, call_files.INPUTS_DIR)
            if _under(container_path, own) and not _under(container_path, inputs_dir):
                container_path = os.path.relpath(container_path, own) + (
                    "/" if container_path.endswith("/") else ""
                )  # relative: in the attempt's working directory
        try:
            return super().host_path(container_path, inputs_only)  # type: ignore[no-any-return]
        except WDL.runtime.error.OutputError:
            relative = container_path
            if os.path.isabs(container_path):
                relative = os.path.relpath(container_path, self.host_work_dir())
            candidate = os.path.join(self.host_work_dir(), relative)
            inputs = {os.path.realpath(host.rstrip("/")) for host in self.input_path_map}
            if not relative.startswith("../") and os.path.realpath(candidate) in inputs:
                return candidate
            raise

    def _run(self, logger: logging.Logger, terminating: Any, command: str) -> int:
        raise NotImplementedError("task commands run as AWS Batch jobs")


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder + "/")


def _swap(path: str, old: str, new: str) -> str:
    """``path`` under ``new`` instead of ``old`` (unchanged if not under ``old``)."""
    return new + path[len(old) :] if path == old or _under(path, old) else path


@dataclass
class PreparedCall:
    """What the call directory holds, what the Batch job runs, and what collect needs back
    (``state``, kept digest-checked)."""

    command: str
    inputs: dict[str, str]  # host path → path inside the call directory (work/_miniwdl_inputs)
    script: str
    runtime: dict[str, Any]
    raw_runtime: dict[str, Any]
    state: dict[str, Any]


def _decls(task: Tree.Task) -> Env.Bindings[Tree.Decl]:
    """The task's declarations, with miniwdl's ``_runtime``/``_requirements`` placeholders: the
    evaluated environment keeps the call's ``runtime.*`` overrides, which miniwdl accepts there."""
    env: Env.Bindings[Tree.Decl] = task.available_inputs
    for decl in task.postinputs if task.inputs is not None else []:
        env = env.bind(decl.name, decl)
    return env


def prepare(  # noqa: PLR0913 - what miniwdl's task evaluation takes
    cfg: WDL.runtime.config.Loader,
    task: Tree.Task,
    inputs: Env.Bindings[Value.Base],
    run_id: str,
    call_dir: str,
    attempt: int,
    logger: logging.Logger,
) -> PreparedCall:
    """Evaluate a task's inputs, runtime and command (the call directory is not touched)."""
    container = ExternalContainer(cfg, run_id, call_dir, attempt)
    add_paths = CallCacheAddPaths()
    with guarded_reads.reading(cfg):  # read_* here run in Lambda (core/guarded_reads.py)
        env = _eval_task_inputs(logger, task, inputs, container, add_paths)
        stdlib = TaskInputStdLib(
            task.effective_wdl_version,
            logger,
            container,
            source_dir=task.source_dir,
            cache_add_paths=add_paths,
        )
        _eval_task_runtime(cfg, logger, run_id, task, inputs, container, env, stdlib)
        if wdl_version_geq(task.effective_wdl_version, WDLVersion.V1_2):
            container.build_task_runtime_info_struct(logger, run_id, task)
            env = env.bind("task", container.task_runtime_info_struct)  # type: ignore[arg-type]
        command = _eval_task_command(cfg, task, logger, container, env, attempt, add_paths)
    state = {
        "env": WDL.values_to_json(env.filter(lambda b: b.name != "task")),
        "input_path_map": container.input_path_map,
        "runtime_values": container.runtime_values,
        "attempt": attempt,
    }
    return PreparedCall(
        command=command,
        inputs=dict(container.input_path_map),
        script=job_script(cfg, call_dir, attempt),
        runtime=dict(container.runtime_values),
        raw_runtime=container.raw_runtime,
        state=state,
    )


def job_script(cfg: WDL.runtime.config.Loader, call_dir: str, attempt: int = 0) -> str:
    """The Batch job's bash script: only bash is needed in the image (docs/architecture.md).
    It runs in the attempt's working directory (``work``, a retry's ``work2``…)."""
    shell = cfg.get("task_runtime", "command_shell") or "/bin/bash"
    work = shlex.quote(os.path.join(call_dir, call_files.work_dir(attempt)))
    return f"cd {work}\n{arrays.run_command(shell, attempt)}"


def collect(  # noqa: PLR0913 - the same, plus the files port and the exit code
    cfg: WDL.runtime.config.Loader,
    files: RunFiles,
    task: Tree.Task,
    run_id: str,
    call_dir: str,
    state: dict[str, Any],
    exit_code: int,
    logger: logging.Logger,
) -> Env.Bindings[Value.Base]:
    """Apply miniwdl's output rules after the command exited with ``exit_code``.

    Raises ``WDL.runtime.CommandFailed`` for an exit code the task does not accept.
    """
    attempt = int(state["attempt"])
    for name in call_files.streams(attempt):  # the task may not swap these for links
        if not files.is_own_file(os.path.join(call_dir, name), call_dir):
            raise WDL.runtime.error.OutputError(f"task replaced its {name} with a link or non-file")
    container = ExternalContainer(cfg, run_id, call_dir, attempt)
    container.input_path_map = state["input_path_map"]
    container.input_path_map_rev = {v: k for k, v in state["input_path_map"].items()}
    container.runtime_values = state["runtime_values"]
    container.last_exit_code = exit_code
    if not container.success_exit_code(exit_code):
        raise WDL.runtime.CommandFailed(
            exit_code, container.host_stderr_txt(), container.host_stdout_txt()
        )
    env = WDL.values_from_json(state["env"], _decls(task))
    if wdl_version_geq(task.effective_wdl_version, WDLVersion.V1_2):
        container.build_task_runtime_info_struct(logger, run_id, task)
        container.update_task_runtime_info_struct(
            task,
            output_section=True,
            attempt=Value.Int(state["attempt"]),
            return_code=Value.Int(exit_code),
        )
        env = env.bind("task", container.task_runtime_info_struct)  # type: ignore[arg-type]
    with guarded_reads.reading(cfg):  # read_*(stdout()) and the like: bounded, regular files
        return _eval_task_outputs(logger, run_id, task, env, container)  # type: ignore[no-any-return]
