"""The local Batch executor: runs each job submitted to the local queue with bash, reports its
state changes (as AWS Batch's "Batch Job State Change" events would), and keeps its output in
CloudWatch Logs, where the awslogs driver puts it."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from miniwdl_serverless.core import call_files, containers, sandbox
from miniwdl_serverless.core.decisions import MOCK_INTERRUPTION_TAG, SPOT_RECLAIMED
from miniwdl_serverless.core.resources import DEFAULT_IMAGE

BATCH_LOG_GROUP = "/aws/batch/job"
STOP_CHECK_SECONDS = 0.02  # how often a running job's thread looks for TerminateJob


def _exited(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Wait up to ``seconds`` for the process to exit (noticed within a millisecond or so)."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


SANDBOX_VARIABLE = "MINIWDL_SERVERLESS_SANDBOX"  # auto (default), bwrap (required) or none


@functools.cache
def bwrap_usable() -> bool:
    """Whether bubblewrap is installed and can make its namespaces here (it cannot where user
    namespaces are disabled, e.g. in some containers)."""
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--unshare-all", "--share-net", "--ro-bind", "/", "/", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def sandboxed() -> bool:
    """Whether local tasks run under bubblewrap: ``MINIWDL_SERVERLESS_SANDBOX=none`` turns it
    off, ``bwrap`` insists on it (an error where it cannot run), ``auto`` uses it if it runs."""
    mode = os.environ.get(SANDBOX_VARIABLE, "auto")
    if mode == "none":
        return False
    if mode == "bwrap" and not bwrap_usable():
        raise RuntimeError(f"{SANDBOX_VARIABLE}=bwrap but bubblewrap cannot run here")
    return bwrap_usable()


def _input_links(work_dir: str) -> dict[str, str]:
    """The links ``prepare_call`` made under the attempt's ``work…/_miniwdl_inputs`` → their
    targets. Read before the task starts: ``prepare_call`` made that folder afresh (whatever an
    earlier attempt's task put there is gone) and other tasks are confined to their own call
    directories, so these are the controller's."""
    links: dict[str, str] = {}
    for parent, dirs, files in os.walk(os.path.join(work_dir, call_files.INPUTS_DIR)):
        for name in dirs + files:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                target = os.readlink(path)
                if os.path.isabs(target):
                    links[path] = target
    return links


def _system_folders() -> dict[str, str | None]:
    return {
        path: os.readlink(path) if os.path.islink(path) else None
        for path in sandbox.SYSTEM_DIRS
        if os.path.lexists(path)
    }


def confined(command: list[str], script: str, array_index: str | None) -> list[str]:
    """``command`` under bubblewrap, confined to its call (core/sandbox.py); unchanged when
    sandboxing is off or the script names no call directory."""
    work_dir = sandbox.work_dir_of(script, array_index)
    if work_dir is None or not sandboxed():
        return command
    return sandbox.bwrap_argv(work_dir, _input_links(work_dir), _system_folders(), command)


def _job_environment(job: Any, parent: Any) -> tuple[dict[str, str], str | None]:
    """The environment the job's container gets (its definition's and overrides', Batch's
    variables) and its array index (None: not an array child)."""
    properties = job.job_definition.container_properties or {}
    env: dict[str, str] = {}
    overrides = job.container_overrides.get("environment", [])
    for item in properties.get("environment", []) + overrides:
        env[item["name"]] = item["value"]
    env["AWS_BATCH_JOB_ID"] = job.job_id
    index = None
    if parent is not None:
        index = str(job.array_properties["index"])
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = index
    return env, index


def _job_command(job: Any) -> list[str]:
    properties = job.job_definition.container_properties or {}
    return list(job.container_overrides.get("command") or properties.get("command") or [])


def _command_and_environment(job: Any, parent: Any) -> tuple[list[str], dict[str, str]]:
    """What the job's container would run, with its environment, run with bash here; a task's
    script confined to its call under bubblewrap."""
    own, index = _job_environment(job, parent)
    env = {**os.environ, **own}
    argv = _job_command(job)
    if len(argv) == 3 and argv[:2] == ["/bin/bash", "-ec"]:  # the adapter's job script
        argv = confined(argv, argv[2], index)
    return argv, env


def _index_record(path: str, line: int) -> str | None:
    """Line ``line`` of an array's index file (a regular file only), None if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as opened:
        if not stat.S_ISREG(os.fstat(opened.fileno()).st_mode):
            return None
        for number, record in enumerate(opened):
            if number == line:
                return record.decode("utf-8", "replace")
    return None


def container_job(job: Any, parent: Any) -> containers.ContainerJob:
    """The job as a container engine runs it: its definition's image, the call directory
    (and, for an array child, its run directory) read-write and the call's inputs read-only
    at the paths the Batch job sees them, its environment and resources."""
    properties = job.job_definition.container_properties or {}
    env, index = _job_environment(job, parent)
    argv = _job_command(job)
    call_dir = run_dir = work_dir = None
    if len(argv) == 3 and argv[:2] == ["/bin/bash", "-ec"]:  # the adapter's job script
        call_dir, run_dir = containers.job_mounts(argv[2], index, _index_record)
        work_dir = sandbox.work_dir_of(argv[2], index)
    if call_dir is not None and work_dir is None:  # an array child's, from its index file
        work_dir = os.path.join(call_dir, call_files.work_dir(0))
    mounts: list[containers.Mount] = []
    if call_dir is not None and work_dir is not None and os.path.isdir(call_dir):
        mounts = containers.mounts_for(call_dir, _input_links(work_dir), [run_dir or call_dir])
    elif run_dir is not None:
        mounts = containers.mounts_for(run_dir, {})
    requirements = properties.get("resourceRequirements", []) + job.container_overrides.get(
        "resourceRequirements", []
    )
    vcpus, memory = containers.resources_of(requirements)
    return containers.ContainerJob(
        image=str(properties.get("image") or DEFAULT_IMAGE),
        name=containers.container_name(job.job_name, job.job_id, index),
        command=argv,
        workdir=work_dir or run_dir,
        environment=env,
        mounts=mounts,
        vcpus=vcpus,
        memory_mib=memory,
    )


@functools.cache
def engine_works(program: str) -> bool:
    """Whether ``PROGRAM info`` succeeds: the CLI may be installed with no engine to talk to."""
    if shutil.which(program) is None:
        return False
    try:
        probe = subprocess.run([program, "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def container_engine(mode: str | None, as_me: bool = False) -> containers.Engine | None:
    """The engine local tasks run in for ``--container`` ``mode`` (else
    ``MINIWDL_SERVERLESS_CONTAINER``, else auto); None: bash. A named engine that does not
    answer ``info`` is an error; auto without one says so once, on stderr."""
    mode = mode or os.environ.get(containers.CONTAINER_VARIABLE) or "auto"
    program = containers.choose(mode, engine_works)
    if program is None:
        if mode == "auto":
            print(
                "miniwdl-serverless: no container engine (neither `docker info` nor "
                "`podman info` succeeded): tasks run with bash on this machine",
                file=sys.stderr,
            )
        return None
    if not engine_works(program):
        raise RuntimeError(f"--container {program}: `{program} info` fails here")
    user = f"{os.getuid()}:{os.getgid()}" if as_me else None
    return containers.Engine(program, user)


class LocalBatch:
    """Runs submitted Batch jobs with bash, or in containers of ``engine``, in parallel
    (bounded), and reports their changes."""

    def __init__(
        self,
        workers: int,
        emit: Callable[[Any], None],
        log: Callable[[Any, bytes], None] | None = None,
        engine: containers.Engine | None = None,
    ):
        self.engine = engine
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch")
        self.emit = emit
        self.log = log
        self.lock = threading.Lock()
        self.active = 0
        self.running: set[Any] = set()

    def accept(self, job: Any) -> None:
        job.status = "RUNNABLE"
        with self.lock:
            self.active += 1
            self.running.add(job)
        self.pool.submit(self._run, job)

    def accept_array(self, parent: Any, children: list[Any]) -> None:
        """An array job: its children run as jobs (``AWS_BATCH_JOB_ARRAY_INDEX`` set), the
        parent is PENDING once they are RUNNABLE, and ends once they all did: SUCCEEDED, or
        FAILED if any failed (docs.aws.amazon.com/batch/latest/userguide/array_jobs.html)."""
        parent._child_jobs = children
        parent.array_left = len(children)
        parent.array_failed = False
        for child in children:
            child.array_parent = parent
            child.status = "RUNNABLE"
        parent.status = "PENDING"
        self.emit(parent)
        for child in children:
            self.accept(child)

    def _child_ended(self, child: Any) -> None:
        parent = getattr(child, "array_parent", None)
        if parent is None:
            return
        with self.lock:
            parent.array_left -= 1
            parent.array_failed |= child.status != "SUCCEEDED"
            last = parent.array_left == 0
        if last:
            parent._mark_stopped(success=not parent.array_failed)
            self.emit(parent)

    def idle(self) -> bool:
        with self.lock:
            return self.active == 0

    def _run(self, job: Any) -> None:
        try:
            self._execute(job)
        except Exception:  # never leave a job hanging: report it failed
            logging.getLogger(__name__).exception("local batch job crashed")
            job.job_stopped_reason = "local executor error"
            job._mark_stopped(success=False)
            self.emit(job)
        finally:
            try:
                self._child_ended(job)
            finally:
                with self.lock:
                    self.active -= 1
                    self.running.discard(job)

    def _execute(self, job: Any) -> None:
        parent = getattr(job, "array_parent", None)
        if parent is not None and parent.stop:  # TerminateJob of the parent ends its children
            job.stop = True
        if job.stop:
            job._mark_stopped(success=False)
            self.emit(job)
            return
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        job.status = "RUNNING"
        self.emit(job)
        argv, env, name = self._launch(job, parent)
        # the container's output, as the awslogs driver keeps it
        with tempfile.TemporaryFile() as output:
            process = subprocess.Popen(
                argv,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            while not _exited(process, STOP_CHECK_SECONDS):  # at once when it exits
                if job.stop or (parent is not None and parent.stop):
                    job.stop = True
                    if name is not None and self.engine is not None:
                        _kill_container(self.engine, name)
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    break
            if self.log is not None:
                output.seek(0)
                try:
                    self.log(job, output.read(1 << 20))
                except Exception:  # the logs are a convenience; the job's outcome stands
                    logging.getLogger(__name__).warning(
                        "cannot put the job's output in CloudWatch Logs", exc_info=True
                    )
        _end(job, process.returncode)
        self.emit(job)

    def _launch(self, job: Any, parent: Any) -> tuple[list[str], dict[str, str], str | None]:
        """The command, its environment and the container's name (None: bash)."""
        if self.engine is None:
            return (*_command_and_environment(job, parent), None)
        spec = container_job(job, parent)
        return containers.run_argv(self.engine, spec), dict(os.environ), spec.name

    def stop_all(self, timeout: float = 2.0) -> bool:
        """Kill every running job's process group (each job's thread does, within 20 ms) and
        wait until they are gone; True if they all went within ``timeout``."""
        with self.lock:
            for job in self.running:
                job.stop = True
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def shutdown(self) -> None:
        with self.lock:
            for job in self.running:
                job.stop = True  # their processes are killed
        self.pool.shutdown(wait=False, cancel_futures=True)


def _kill_container(engine: containers.Engine, name: str) -> None:
    """Stop the container itself: killing its engine's client leaves it running."""
    try:
        subprocess.run(
            containers.kill_argv(engine, name), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        logging.getLogger(__name__).warning("cannot remove container %s", name, exc_info=True)


def job_tags(job: Any) -> dict[str, str]:
    """A local Batch job's tags; an array child has its parent's. The in-process Batch's jobs
    hold theirs; moto's Batch (full and server mode) keeps them in its tagger."""
    holder = getattr(job, "array_parent", None) or job
    tags = getattr(holder, "tags", None)
    if not isinstance(tags, dict):
        tags = holder.backend.list_tags_for_resource(holder.arn)
    return dict(tags)


def _end(job: Any, returncode: int) -> None:
    """The job's end as Batch reports it: stopped, its command's exit, or (miniwdl's
    ``_mock_interruptions``: core/decisions.py) a reclaimed spot instance."""
    if job.stop:
        job._mark_stopped(success=False)
    elif job_tags(job).get(MOCK_INTERRUPTION_TAG):
        job.job_stopped_reason = SPOT_RECLAIMED  # and no exit code, as AWS reports a reclaim
        job._mark_stopped(success=False)
    else:
        job.exit_code = returncode
        job.job_stopped_reason = "Essential container in task exited"
        job._mark_stopped(success=returncode == 0)


class JobLogs:
    """A finished job's output in CloudWatch Logs, where the awslogs driver puts it (nothing
    once ``closing()`` says the embedded AWS is going away)."""

    def __init__(self, closing: Callable[[], bool]):
        self.closing = closing

    def __call__(self, job: Any, output: bytes) -> None:
        if self.closing() or not job.log_stream_name:
            return
        from miniwdl_serverless.local import moto_patches
        from miniwdl_serverless.local.resources import ACCOUNT, REGION

        now = int(time.time() * 1000)
        lines = [line or " " for line in output.decode(errors="replace").splitlines()]
        events = [{"timestamp": now, "message": line} for line in lines[-5000:]]
        moto_patches.put_job_log(ACCOUNT, REGION, BATCH_LOG_GROUP, job.log_stream_name, events)
