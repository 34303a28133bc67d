"""Start's planning step: parse and typecheck the submission with miniwdl, provision the run
directory, record the run and its first jobs. Bad input fails here, before any job."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

import WDL
from WDL import Tree, Value

from miniwdl_serverless.controller.actions import Action, Evaluate, Plan
from miniwdl_serverless.controller.context import (
    inputs_env,
    load_context,
    load_scope,
    make_config,
    remember_document,
    run_target,
)
from miniwdl_serverless.controller.finish import upload_folder
from miniwdl_serverless.controller.localize import check_input_uris
from miniwdl_serverless.controller.ports import RunFiles
from miniwdl_serverless.controller.progress import create_jobs
from miniwdl_serverless.core import localizing, planner
from miniwdl_serverless.core.decisions import run_dir_request
from miniwdl_serverless.core.errors import BadSubmission, RunError
from miniwdl_serverless.core.options import RunOptions, parse_run_options
from miniwdl_serverless.core.records import RUN_PLANNING, RUN_RUNNING, Run
from miniwdl_serverless.core.stack_bucket import staged_digest, upload_target_problem
from miniwdl_serverless.core.wdl_source import SourceBundle, fetch_and_load, source_copy_names

if TYPE_CHECKING:
    from miniwdl_serverless.controller.drive import Driver

log = logging.getLogger("miniwdl_serverless.controller")


def plan(driver: Driver, action: Plan) -> list[Action]:
    ports = driver.ports
    existing = ports.store.get_run(action.run_id)
    options = parse_run_options(action.execution_input)
    staged = staged_digest(options.workflow, ports.stack_bucket)  # wdl/<sha256>.zip: verified
    doc, bundle = fetch_and_load(
        options.workflow, options.workflow_source, ports.sources.fetch, staged_sha256=staged
    )
    target = run_target(doc, options.task)
    check_upload_target(options, target.name, action.started_at, ports.stack_bucket)
    inputs = check_inputs(target, options, ports.files, downloads=ports.remotes is not None)
    root = ports.files.root
    settings = localizing.Settings.from_config(make_config(options, root), root)
    if not ports.files.inside_root(settings.cache_dir):  # the run would write there
        message = f"[download_cache] dir must resolve inside the EFS root {ports.files.root}"
        raise BadSubmission(f"{message}, got {json.dumps(settings.cache_dir)}")
    if ports.remotes is not None:  # every URI input readable, before anything is made
        check_input_uris(ports, settings.requester_pays, inputs_env(target, inputs))
    if existing is not None and existing.run_dir:
        run_dir, created = existing.run_dir, existing.run_dir_created
    else:
        run_dir, created = provision_run_dir(ports.files, options, target.name, action.started_at)
    bundle_path = os.path.join(run_dir, "wdl", "bundle.json")
    write_run_files(ports.files, run_dir, bundle, inputs, bundle_path)
    run = existing or Run(action.run_id)
    run.status, run.workflow_name, run.run_dir = RUN_PLANNING, target.name, run_dir
    run.run_dir_created = created
    run.execution_arn, run.task_token = action.execution_arn, action.task_token
    run.options, run.bundle_path, run.bundle_digest = (
        action.execution_input,
        bundle_path,
        bundle.digest,
    )
    run.inputs = ports.files.store_value(inputs, os.path.join(run_dir, ".state"), "inputs")
    if existing is None:
        if not ports.store.create_run(run):  # another start won the race
            driver.result = {"run_id": action.run_id, "resumed": True}
            return []
    else:
        ports.store.put_run(run)
    remember_document(bundle.digest, doc)  # parsed and typechecked above: not again
    ctx = driver.ctx = load_context(run, ports)
    ctx.log(f"run {run.run_id} started: {options.workflow or '(inline source)'}")
    ports.store.set_run_status(run.run_id, RUN_RUNNING, [RUN_PLANNING])
    ctx.run.status = RUN_RUNNING
    driver.result = {"run_id": run.run_id, "dir": run_dir}
    initial = planner.initial_jobs(load_scope(ctx, "", []))
    return [Evaluate(job) for job in create_jobs(ctx, "", [], initial, claimant="start")]


def check_upload_target(
    options: RunOptions, target_name: str, started_at: str | None, stack_bucket: str | None
) -> None:
    """``s3upload`` may not write under the stack bucket's control prefixes
    (core/stack_bucket.py), whatever the folder rule makes of it. The run directory's name
    matters only for ``s3://bucket`` without a folder; the ``_2`` a taken name gets never
    makes a difference there."""
    if not options.s3upload:
        return
    root, name = run_dir_request(options.run_root, target_name, started_at)
    folder = upload_folder(options.s3upload, os.path.join(root, name) if name else root)
    problem = upload_target_problem(folder, stack_bucket)
    if problem:
        raise BadSubmission(f"s3upload: {problem}, got {json.dumps(options.s3upload)}")


def provision_run_dir(
    files: RunFiles, options: RunOptions, name: str, started_at: str | None
) -> tuple[str, bool]:
    """miniwdl's run directory under ``dir``, which must resolve inside the file system's root
    (the EFS mount; anywhere in local mode). Returns it (its real path) and whether this run
    created it: ``DIR/.`` runs in DIR exactly, which may exist already."""
    root, leaf = run_dir_request(options.run_root, name, started_at)
    if not files.inside_root(root):
        raise BadSubmission(
            f"dir: must resolve inside the EFS root {files.root}, got {json.dumps(options.dir)}"
        )
    try:
        run_dir, created = files.create_run_dir(root, leaf)
    except FileExistsError as exn:
        raise RunError.of("RunDirectory", f"cannot create a run directory under {root}") from exn
    except OSError as exn:  # a link swapped in on the way (UnsafePath), a file in the way
        message = f"cannot create a run directory under {root}: {exn}"
        raise RunError.of("RunDirectory", message) from exn
    if leaf is not None and created:  # miniwdl's _LAST: the newest timestamped run
        try:
            files.point_last(os.path.dirname(run_dir), os.path.basename(run_dir))
        except OSError as exn:  # a convenience: the run goes on
            log.warning("cannot update _LAST under %s: %s", root, exn)
    return run_dir, created


def check_inputs(
    target: Tree.Workflow | Tree.Task, options: RunOptions, files: RunFiles, downloads: bool
) -> dict[str, Any]:
    """Typecheck the inputs with miniwdl's rules; local paths must exist, and resolve inside the
    file system's root (symlinks included: realpath); URIs are downloaded later (``downloads``:
    the controller has its Remotes port). Returns namespaced JSON."""
    env = inputs_env(target, dict(options.inputs))
    missing, outside = [], []

    def check(value: Value.Base) -> str:
        path = str(value.value)
        if downloads and localizing.is_downloadable(path):
            return path  # probed by check_input_uris
        if "://" in path:  # say so now rather than fail in a task later
            missing.append(f"{path} (not a URI that can be downloaded here)")
            return path
        if not os.path.isabs(path):
            missing.append(f"{path} (input paths must be absolute)")
            return path
        # checked and kept in one spelling, miniwdl's (its CLI's abspath): the allowlist then
        # finds '/d/./x', '/d//x' or '/e/../d/x' as '/d/x' wherever the workflow uses it
        path = normal_path(path)
        if not files.inside_root(path):  # before existence: nothing is said about outside
            outside.append(path)
        elif not files.exists(path):
            missing.append(path)
        return path

    env = Value.rewrite_env_paths(env, check)
    if outside:
        message = f"input file or directory outside the EFS root {files.root}: "
        raise WDL.Error.InputError(message + ", ".join(outside))
    if missing:
        raise WDL.Error.InputError("input file or directory not found: " + ", ".join(missing))
    return WDL.values_to_json(env, namespace=target.name)  # type: ignore[no-any-return]


def normal_path(path: str) -> str:
    """An absolute path without '.', '..', doubled or trailing slashes (lexically, as
    ``os.path.abspath``; POSIX keeps a leading '//', which names the same root here)."""
    return "/" + os.path.normpath(path).lstrip("/")


def write_run_files(
    files: RunFiles, run_dir: str, bundle: SourceBundle, inputs: dict[str, Any], bundle_path: str
) -> None:
    names = source_copy_names(list(bundle.sources))  # readable copies, as miniwdl keeps wdl/
    for key, text in bundle.sources.items():
        files.write_text(os.path.join(run_dir, "wdl", names[key]), text)
    files.write_text(bundle_path, bundle.to_json())  # last: a source named bundle.json loses
    files.write_json(os.path.join(run_dir, "inputs.json"), inputs)
