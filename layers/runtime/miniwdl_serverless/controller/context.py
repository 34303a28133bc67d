"""What one invocation knows about one run: its record, options, miniwdl configuration, the
parsed document, the scopes it has loaded so far and the ports."""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import WDL
from WDL import Env, Tree, Value
from WDL.runtime._io_helpers import _fspaths

from miniwdl_serverless.controller.ports import Ports, RunFiles
from miniwdl_serverless.core import call_caching, guarded_reads, localizing, planner, work
from miniwdl_serverless.core.decisions import Target, TaskSettings
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.ids import call_dir
from miniwdl_serverless.core.options import RunOptions, parse_run_options
from miniwdl_serverless.core.records import Job, Run
from miniwdl_serverless.core.scatter_limits import max_scatter_width
from miniwdl_serverless.core.store_rules import job_expiry
from miniwdl_serverless.core.wdl_source import SourceBundle, load_document

log = logging.getLogger("miniwdl_serverless.controller")

# The run's WDL bundle as read back from EFS: every document of at most 16 MiB, and a zip
# unpacking to at most 64 MiB (core/wdl_source.py), JSON-escaped.
MAX_BUNDLE_BYTES = 160 * 1024 * 1024
# Parsed documents by bundle digest: a warm Lambda container parses each workflow once.
_documents: dict[str, WDL.Document] = {}
_documents_lock = threading.Lock()
# miniwdl configurations by what they are made of (make_config)
_configs: dict[str, WDL.runtime.config.Loader] = {}
_configs_lock = threading.Lock()
MAX_CONFIGS = 64


@dataclass
class RunContext:
    run: Run
    options: RunOptions
    cfg: WDL.runtime.config.Loader
    settings: TaskSettings
    doc: WDL.Document
    ports: Ports
    downloads: localizing.Settings
    call_cache: call_caching.Settings
    scopes: dict[str, planner.Scope] = field(default_factory=dict)
    allowlist: planner.PathAllowlist | None = None
    unanswered: bool = False  # the run ended here but Step Functions could not be told
    probed: dict[tuple[str, bool], localizing.Remote] = field(default_factory=dict)
    done: dict[str, Job] = field(default_factory=dict)  # completed jobs read (outputs final)
    handing_on: list[work.WorkItem] = field(default_factory=list)  # not yet put (hand_on)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def run_dir(self) -> str:
        return str(self.run.run_dir)

    @property
    def state_dir(self) -> str:
        """Where the controller spills values too large for the store."""
        return os.path.join(self.run_dir, ".state")

    def call_dir(self, job_id: str) -> str:
        return call_dir(self.run_dir, job_id)

    def job_expiry(self) -> int:
        """``expires_at`` of the job items created now (core/store_rules.py:job_expiry)."""
        return job_expiry(time.time(), self.options.timeout_seconds)

    def target(self) -> Tree.Workflow | Tree.Task:
        return run_target(self.doc, self.options.task)

    def target_info(self) -> Target:
        target = self.target()
        pos = target.pos
        is_task = isinstance(target, Tree.Task)
        return Target(target.name, is_task, pos.abspath, pos.line, pos.column)

    def hand_on(self, item: work.WorkItem) -> None:
        """Put ``item`` in the work table with others: a BatchWriteItem of up to 25 items,
        written when full or when the driver's loop ends (``flush``)."""
        self.handing_on.append(item)
        if len(self.handing_on) >= work.WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        items, self.handing_on = self.handing_on, []
        if items:
            self.ports.work.put(items)

    def store_value(self, value: Any, name: str) -> Any:
        return self.ports.files.store_value(value, self.state_dir, name)

    def load_value(self, stored: Any) -> Any:
        return self.ports.files.load_value(stored)

    def log(self, message: str) -> None:
        """A line in the run's workflow.log (the file users look at, as with miniwdl)."""
        if not append_workflow_log(self.ports.files, self.run_dir, self.run.workflow_name, message):
            log.warning("cannot append to workflow.log", extra={"run_dir": self.run_dir})

    def log_call(self, job_id: str, message: str) -> None:
        """A line in workflow.log and in the call's own task.log (as miniwdl keeps one)."""
        log_call_lines(self.ports.files, RunNames.of(self.run), job_id, message)

    def paths_allowed(self) -> planner.PathAllowlist:
        """miniwdl's file allowlist: the run's own directory and the workflow's input paths."""
        if self.allowlist is None:
            top = load_scope(self, "", [])
            # miniwdl's own collection: a Directory as 'path/', which is how its checks look
            # a directory (and the files under it) up
            paths = _fspaths(top.inputs)
            cache = localizing.cache_root(self.downloads, self.run_dir)
            # the run root: call-cache hits name the outputs of earlier runs' calls
            others = os.path.dirname(self.run_dir.rstrip("/"))
            self.allowlist = planner.PathAllowlist(self.run_dir, paths, [cache, others])
        return self.allowlist


@dataclass(frozen=True)
class RunNames:
    """Where a run's log lines go and what they are prefixed with: set when the run is
    planned and never changed, so a warm invocation may keep them (advance.py)."""

    run_dir: str
    workflow_name: str | None

    @classmethod
    def of(cls, run: Run) -> RunNames:
        return cls(str(run.run_dir), run.workflow_name)


def log_call_lines(files: RunFiles, names: RunNames, job_id: str, message: str) -> None:
    """A line in workflow.log and in the call's own task.log (as miniwdl keeps one)."""
    if not append_workflow_log(files, names.run_dir, names.workflow_name, message):
        log.warning("cannot append to workflow.log", extra={"run_dir": names.run_dir})
    task_log = os.path.join(call_dir(names.run_dir, job_id), "task.log")
    append_log_line(files, task_log, f"{names.workflow_name}.{job_id}", message)


def append_workflow_log(files: RunFiles, run_dir: str, workflow: str | None, message: str) -> bool:
    """A line in a run's workflow.log, as miniwdl writes it; False if it could not be written
    (the run directory may be gone)."""
    return append_log_line(files, os.path.join(run_dir, "workflow.log"), f"w:{workflow}", message)


def append_log_line(files: RunFiles, path: str, source: str, message: str) -> bool:
    """A timestamped line in workflow.log or a call's task.log; False if it was not written."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    try:
        files.append_log(path, f"{stamp} wdl.{source} {message}\n")
    except OSError:
        return False
    return True


def remember_document(digest: str, doc: WDL.Document) -> None:
    """A document parsed for this bundle digest (start has just parsed it: no second parse)."""
    with _documents_lock:
        _documents[digest] = doc


def load_context(run: Run, ports: Ports) -> RunContext:
    """The run's context; reads the WDL bundle from the run directory (digest-checked)."""
    options = parse_run_options(run.options)
    digest = str(run.bundle_digest)
    with _documents_lock:
        doc = _documents.get(digest)
    if doc is None:
        text = ports.files.read_text(str(run.bundle_path), MAX_BUNDLE_BYTES)
        bundle = SourceBundle.from_json(text, digest)
        doc = load_document(bundle)
        remember_document(digest, doc)
    cfg = make_config(options, ports.files.root)
    settings = TaskSettings.from_config(cfg)
    # our own settings, read here once so that a bad value fails planning, before any job
    max_scatter_width(cfg)
    guarded_reads.policy_of(cfg)
    downloads = localizing.Settings.from_config(cfg, ports.files.root)
    call_cache = call_caching.Settings.from_config(cfg)
    return RunContext(run, options, cfg, settings, doc, ports, downloads, call_cache)


def load_scope(ctx: RunContext, scope: str, call_path: list[str]) -> planner.Scope:
    """The workflow being run in a scope, with its inputs: the run's (read from the run record)
    or a sub-workflow call's (read from that call's job). Cached in the context."""
    if scope not in ctx.scopes:
        if not scope:
            target = ctx.target()
            inputs = inputs_env(target, ctx.load_value(ctx.run.inputs))
            ctx.scopes[scope] = planner.Scope(target, inputs)
        else:
            workflow = planner.workflow_at(ctx.doc, call_path)
            parent = ctx.ports.store.get_job(ctx.run_id, scope)
            assert parent is not None and parent.call_inputs is not None
            data = ctx.load_value(parent.call_inputs)
            inputs = WDL.values_from_json(data, workflow.available_inputs)
            ctx.scopes[scope] = planner.Scope(workflow, inputs, prefix=scope)
    return ctx.scopes[scope]


def scope_of(ctx: RunContext, job: Job) -> planner.Scope:
    return load_scope(ctx, job.scope, list(job.call_path))


def task_of(ctx: RunContext, job: Job) -> tuple[Tree.Task, str]:
    """The task a call job runs and the call's name."""
    scope = scope_of(ctx, job)
    if scope.is_task:
        assert isinstance(scope.target, Tree.Task)
        return scope.target, scope.target.name
    call = scope.node(job.node_id)
    assert isinstance(call, Tree.Call) and isinstance(call.callee, Tree.Task)
    return call.callee, call.name


def make_config(options: RunOptions, root: str = "/") -> WDL.runtime.config.Loader:
    """miniwdl configuration: defaults, the Lambda's MINIWDL__* environment, then the run's map.
    ``[file_io] root`` is the file system's root (the EFS mount; a submission cannot set it),
    which miniwdl's own path checks and the guarded reads (core/guarded_reads.py) hold to."""
    overrides: dict[str, dict[str, str]] = {}
    for key, value in options.config_overrides().items():
        _, section, name = key.split("__", 2)
        overrides.setdefault(section.lower(), {})[name.lower()] = value
    overrides.setdefault("file_io", {})["root"] = root
    for section, key in itertools.product(("download_cache", "call_cache"), ("get", "put")):
        # both caches are on by default (core/localizing.py, core/call_caching.py)
        if f"MINIWDL__{section.upper()}__{key.upper()}" not in os.environ:
            overrides.setdefault(section, {}).setdefault(key, "true")
    if options.copy_input_files:
        overrides.setdefault("file_io", {})["copy_input_files"] = "true"
    # one Loader per configuration in a warm container (reading miniwdl's default.cfg and the
    # environment costs ~2 ms, once per event otherwise); its inputs are all in the key
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("MINIWDL"))
    key = json.dumps([overrides, environment], sort_keys=True)
    with _configs_lock:
        cfg = _configs.get(key)
        if cfg is None:
            logger = logging.getLogger("miniwdl_serverless.config")
            cfg = _configs[key] = WDL.runtime.config.Loader(logger, overrides=overrides)
            while len(_configs) > MAX_CONFIGS:
                _configs.pop(next(iter(_configs)))
    return cfg


def run_target(doc: WDL.Document, task: str | None) -> Tree.Workflow | Tree.Task:
    """What a run runs, as ``miniwdl run`` chooses (its CLI.runner_exe): the task named, else the
    workflow, else the document's only task."""
    if task:
        return find_task(doc, task)
    if doc.workflow is not None:
        return doc.workflow
    if len(doc.tasks) == 1:
        return doc.tasks[0]
    message = "give 'task' for a WDL document with several tasks and no workflow"
    raise RunError.of("InputError", message if doc.tasks else "empty WDL document")


def find_task(doc: WDL.Document, name: str) -> Tree.Task:
    for task in doc.tasks:
        if task.name == name:
            return task
    raise RunError.of("InputError", f"no task named {name} in the document")


def inputs_env(target: Tree.Workflow | Tree.Task, data: dict[str, Any]) -> Env.Bindings[Value.Base]:
    return WDL.values_from_json(  # type: ignore[no-any-return]
        data, target.available_inputs, target.required_inputs, namespace=target.name
    )
