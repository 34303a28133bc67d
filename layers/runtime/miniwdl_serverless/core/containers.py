"""Local task containers: which engine runs a local task (docker, podman or none: bash), and the
engine's command line for one Batch job, as the job would run on AWS Batch.

miniwdl puts its backends behind ``TaskContainer``; here the local executor
(``local/batch_executor.py``) has two: bash (optionally under bubblewrap, core/sandbox.py) and
an engine's ``run``. Everything in this module is pure: the executor probes the engines, reads
the job and runs the command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from miniwdl_serverless.core import sandbox

CONTAINER_VARIABLE = "MINIWDL_SERVERLESS_CONTAINER"
ENGINES = ("docker", "podman")
MODES = ("auto", *ENGINES, "none")
NAME_LIMIT = 128  # container names: docker accepts more, but a readable bound keeps `ps` usable
_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class Engine:
    """The engine local tasks run in: its program, and ``uid:gid`` to run as (None: the
    image's user, as on Batch)."""

    program: str
    user: str | None = None


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False

    def option(self) -> str:
        if ":" in self.source or ":" in self.target:  # -v splits on it
            raise ValueError(f"cannot mount a path with ':' in a container: {self.source}")
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class ContainerJob:
    """One Batch job as an engine runs it."""

    image: str
    name: str
    command: Sequence[str]
    workdir: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    vcpus: int | None = None
    memory_mib: int | None = None


def choose(mode: str, works: Callable[[str], bool]) -> str | None:
    """The engine for ``mode`` (one of MODES): ``auto`` is the first of ENGINES whose
    ``info`` works (``works(program)``), else None (bash); a named engine is used as asked
    (the caller checks it runs); ``none`` is None."""
    if mode not in MODES:
        raise ValueError(f"--container is one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        return None
    if mode != "auto":
        return mode
    return next((program for program in ENGINES if works(program)), None)


def container_name(job_name: str, job_id: str, index: str | None = None) -> str:
    """A name that says which run and call the container is (the job's name holds them) and
    is unique per job (its id), so a retry never collides with a container still going."""
    tail = f"-{index}" if index is not None else ""
    tail += f"-{job_id[:8]}"
    head = _UNSAFE.sub("-", f"msls-{job_name}").strip("-.")
    return head[: NAME_LIMIT - len(tail)] + tail


def resources_of(requirements: Sequence[Mapping[str, str]]) -> tuple[int | None, int | None]:
    """(vCPUs, memory MiB) from a job's resourceRequirements (the last of each type wins, as
    the overrides come after the definition's)."""
    vcpus = memory = None
    for item in requirements:
        if item.get("type") == "VCPU":
            vcpus = max(1, round(float(item["value"])))
        elif item.get("type") == "MEMORY":
            memory = int(item["value"])
    return vcpus, memory


def array_run_dir(script: str) -> tuple[str, str] | None:
    """(run directory, index file) of ``core/arrays.py:array_script`` (its first two lines),
    or None for another script."""
    lines = script.splitlines()[:2]
    if len(lines) < 2 or not lines[0].startswith("run_dir=") or not lines[1].startswith("index="):  # noqa: PLR2004
        return None
    run_dir = shlex.split(lines[0][len("run_dir=") :])
    index = shlex.split(lines[1][len("index=") :])
    if len(run_dir) != 1 or len(index) != 1:
        return None
    return run_dir[0], index[0]


def mounts_for(call_dir: str, inputs: Mapping[str, str], extra: Sequence[str] = ()) -> list[Mount]:
    """The call directory read-write and each input a link in it points to read-only, at the
    paths the Batch job sees them (so the links resolve inside the container); ``extra``
    read-write folders (an array child's run directory). An input under another mounted
    folder is not mounted again."""
    mounts = [Mount(path, path) for path in sorted({call_dir, *extra})]
    for target in sorted(set(inputs.values())):
        if not any(_under(target, mount.source) for mount in mounts):
            mounts.append(Mount(target, target, read_only=True))
    return mounts


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def job_mounts(
    script: str, array_index: str | None, read_index: Callable[[str, int], str | None]
) -> tuple[str | None, str | None]:
    """(call directory, run directory to mount as well) of a job script: the call directory
    the script names (core/sandbox.py), or an array child's from its index file
    (``read_index(path, line)``: the record, None if unreadable) with the run directory the
    child's script checks it against; (None, None) for a script naming neither."""
    call_dir = sandbox.call_dir_of(script, array_index)
    if call_dir is not None:
        return call_dir, None
    found = array_run_dir(script)
    if found is None or array_index is None or not array_index.isdigit():
        return None, None
    run_dir, index_path = found
    record = read_index(index_path, int(array_index))
    shard = (record or "").strip()
    if not shard or shard.startswith(("/", ".")) or ".." in shard.split("/"):
        return None, run_dir  # the child fails itself; its run directory lets it say so
    return f"{run_dir.rstrip('/')}/{shard}", run_dir


def run_argv(engine: Engine, job: ContainerJob) -> list[str]:
    """``ENGINE run`` for ``job``: removed when it ends, named, limited to its vCPUs and
    memory, its mounts, working directory and environment, as the invoking user if asked."""
    argv = [engine.program, "run", "--rm", "--name", job.name, "--init"]
    if job.vcpus:
        argv += ["--cpus", str(job.vcpus)]
    if job.memory_mib:
        argv += ["--memory", f"{job.memory_mib}m"]
    if engine.user:
        argv += ["--user", engine.user]
        if engine.program == "podman":  # rootless podman: the uid inside is yours outside
            argv += ["--userns", "keep-id"]
    for mount in job.mounts:
        argv += ["-v", mount.option()]
    if job.workdir:
        argv += ["-w", job.workdir]
    for name, value in sorted(job.environment.items()):
        argv += ["-e", f"{name}={value}"]
    return [*argv, job.image, *job.command]


def kill_argv(engine: Engine, name: str) -> list[str]:
    """Stop and remove the container at once (killing the engine's client would leave it)."""
    return [engine.program, "rm", "-f", name]
