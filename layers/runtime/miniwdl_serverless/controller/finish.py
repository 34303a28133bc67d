"""The Finish state: outputs.json or error.json, the upload to S3 with miniwdl-aws's folder
rule, and deleting the run directory per ``delete_after``."""

from __future__ import annotations

import logging
import os
from typing import Any

from miniwdl_serverless.controller.context import append_workflow_log, load_context
from miniwdl_serverless.controller.end import (
    LIVE,
    fail_run,
    fail_unloadable_run,
    write_json_best_effort,
)
from miniwdl_serverless.controller.ports import Ports, TransientError
from miniwdl_serverless.core import payloads
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.records import RUN_FAILED, RUN_SUCCEEDED, Run

log = logging.getLogger("miniwdl_serverless.controller")
FAILED_TASK_LOGS = (
    ("stderr_file", "CommandFailed_stderr.txt"),
    ("stdout_file", "CommandFailed_stdout.txt"),
)


def upload_folder(s3upload: str, run_dir: str) -> str:
    """miniwdl-aws's rule: a trailing '/' uploads into that folder, else into
    <s3upload>/<run name>/."""
    if s3upload.endswith("/"):
        return s3upload
    return s3upload + "/" + os.path.basename(run_dir.rstrip("/")) + "/"


def finish_run(state: dict[str, Any], execution_name: str, ports: Ports) -> dict[str, Any]:
    """Returns {"status": "succeeded", "dir", "outputs_json", "outputs" (when small)} or
    {"status": "failed", "error", "cause", "error_json"} (the state machine's Succeed and Fail
    states read these; core/payloads.py keeps them within Step Functions' limits)."""
    run_id = (state.get("result") or {}).get("run_id") or execution_name
    run = ports.store.get_run(run_id)
    if run is None:
        error = state.get("error") or {}
        name = str(error.get("Error") or "RunFailed")
        return payloads.failed(name, {"error": error.get("Error"), "message": error.get("Cause")})
    if "error" in state and run.status in LIVE:
        _stop_unfinished(run, state["error"], ports)
        run = ports.store.get_run(run_id) or run
    if run.status == RUN_SUCCEEDED:
        return _succeeded(run, ports)
    cause = str((state.get("error") or {}).get("Cause"))
    info = run.error or RunError.of("RunFailed", cause).info
    error_json = _after_failure(run, info, ports)
    return payloads.failed(str(info.get("error") or "RunFailed"), info, error_json)


def _stop_unfinished(run: Run, error: dict[str, Any], ports: Ports) -> None:
    """Start crashed, the run timed out or was stopped: fail it and terminate its jobs."""
    name = str(error.get("Error") or "RunFailed")
    message = str(error.get("Cause") or name)
    if name == "States.Timeout":  # error names may not start with "States." when we send them
        name, message = "RunTimeout", "the run exceeded its timeout (timeout_seconds)"
    failure = RunError.of(name, message)
    if run.run_dir and run.bundle_path:
        try:
            ctx = load_context(run, ports)
        except TransientError:
            raise
        except Exception:  # its WDL bundle on EFS was changed or swapped by a task
            fail_unloadable_run(run, ports, failure)
            return
        fail_run(ctx, failure)
    else:
        ports.store.set_run_status(run.run_id, RUN_FAILED, LIVE, error=failure.info)


def _succeeded(run: Run, ports: Ports) -> dict[str, Any]:
    """outputs.json, the upload and ``delete_after``. Idempotent: once every output is
    uploaded (``uploaded_to`` recorded), a re-invoked Finish returns what was uploaded, never
    paths that ``delete_after`` may have deleted since (nor reads the run's spilled outputs,
    deleted with them)."""
    run_dir = str(run.run_dir)
    options = run.options or {}
    deletes = options.get("delete_after") in ("success", "always")
    if run.uploaded_to:
        folder = run.uploaded_to
        uploaded = ports.uploads.get_json(folder + "outputs.json")
        if deletes and ports.files.is_dir(run_dir):
            _delete_run_dir(run, ports)
        return payloads.succeeded(run_dir, uploaded, folder + "outputs.json", folder)
    outputs = ports.files.load_value(run.outputs) or {}
    outputs_json = os.path.join(run_dir, "outputs.json")
    write_json_best_effort(ports.files, outputs_json, outputs)
    if not options.get("s3upload"):
        return payloads.succeeded(run_dir, outputs, outputs_json)
    folder = upload_folder(options["s3upload"], run_dir)
    left: list[str] = []  # outputs that stayed on EFS
    uploaded = _upload_outputs(ports, run, outputs, folder, left)
    _upload_file(ports, os.path.join(run_dir, "workflow.log"), folder + "workflow.log", run_dir)
    ports.uploads.put_json(folder + "outputs.json", uploaded)
    if not left:
        ports.store.record_upload(run.run_id, folder)
    if deletes and left:  # deleting would lose them: keep the run directory
        message = f"not deleting {run_dir} (delete_after): not uploaded: {', '.join(left)}"
        log.warning(message, extra={"run_id": run.run_id})
        _log_line(ports, run, message)
    elif deletes:
        _delete_run_dir(run, ports)
    return payloads.succeeded(run_dir, uploaded, folder + "outputs.json", folder)


def _after_failure(run: Run, info: dict[str, Any], ports: Ports) -> str | None:
    """error.json, the upload of it and the failed task's logs, ``delete_after``. Returns
    where the whole error JSON is (None: the run has no directory)."""
    options = run.options or {}
    if not run.run_dir or not ports.files.is_dir(str(run.run_dir)):
        return None
    run_dir = str(run.run_dir)
    error_json = os.path.join(run_dir, "error.json")
    write_json_best_effort(ports.files, error_json, info)
    if not options.get("s3upload"):
        return error_json
    folder = upload_folder(options["s3upload"], run_dir)
    cause = info.get("cause") or {}
    for key, name in FAILED_TASK_LOGS:
        if cause.get(key) and _upload_file(ports, cause[key], folder + name, root=run_dir):
            cause[key.replace("_file", "_s3file")] = folder + name
    _upload_file(ports, os.path.join(run_dir, "workflow.log"), folder + "workflow.log", run_dir)
    ports.uploads.put_json(folder + "error.json", info)
    if options.get("delete_after") in ("failure", "always"):
        _delete_run_dir(run, ports)
    return folder + "error.json"


def _delete_run_dir(run: Run, ports: Ports) -> None:
    """``delete_after``: only the directory this run created (recorded when it was provisioned);
    a ``DIR/.`` that existed before the run, the EFS root for one, is never deleted."""
    run_dir = str(run.run_dir)
    if not run.run_dir_created:
        message = f"not deleting {run_dir} (delete_after): the run did not create it"
        log.warning(message, extra={"run_id": run.run_id})
        _log_line(ports, run, message)
        return
    try:
        ports.files.remove_tree(run_dir)
    except OSError as exn:  # a link swapped in on the way is refused, not followed
        log.warning("cannot delete %s: %s", run_dir, exn, extra={"run_id": run.run_id})
        _log_line(ports, run, f"cannot delete {run_dir} (delete_after): {exn}")


def _log_line(ports: Ports, run: Run, message: str) -> None:
    append_workflow_log(ports.files, str(run.run_dir), run.workflow_name, message)


def _upload_outputs(
    ports: Ports, run: Run, outputs: dict[str, Any], folder: str, left: list[str]
) -> dict[str, Any]:
    """Upload each output file under <folder>/<output name>/ (a Directory with everything in
    it) and rewrite it to its s3:// URI, in any WDL type. Only files of the run (or its
    inputs) are uploaded: an output string naming another file on the Lambda's file system
    stays a string. A file or directory of the run that could not be uploaded keeps its path
    and is named in ``left``."""
    files = ports.files
    run_dir = files.real_path(str(run.run_dir)).rstrip("/") + "/"
    inputs = _input_paths(files.load_value(run.inputs) or {})

    def ours(value: str) -> bool:
        return files.real_path(value).startswith(run_dir) or value.rstrip("/") in inputs

    def rewrite(value: Any, name: str) -> Any:
        if isinstance(value, str) and os.path.isabs(value) and ours(value):
            if files.is_file(value):
                target = f"{folder}{name}/{os.path.basename(value)}"
                if _upload_file(ports, value, target):
                    return target
                left.append(name)
            elif files.is_dir(value):
                return _upload_directory(ports, value, f"{folder}{name}/", name, left)
            return value
        if isinstance(value, list):
            return [rewrite(v, f"{name}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: rewrite(v, f"{name}/{k}") for k, v in value.items()}
        return value

    return {key: rewrite(value, key) for key, value in outputs.items()}


def _upload_directory(ports: Ports, path: str, prefix: str, name: str, left: list[str]) -> str:
    """A Directory output: every regular file in it (links are not followed), under
    ``<prefix><directory name>/``; its URI ends in '/'."""
    top = path.rstrip("/")
    target = f"{prefix}{os.path.basename(top)}/"
    complete = True
    for file in ports.files.list_files(top):
        complete = _upload_file(ports, file, target + os.path.relpath(file, top)) and complete
    if not complete:
        left.append(name)
        return path
    return target


def _input_paths(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if os.path.isabs(value) else set()
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return set()
    return set().union(*(_input_paths(v) for v in items)) if items else set()


def _upload_file(ports: Ports, path: str, uri: str, root: str | None = None) -> bool:
    """Upload a file; with ``root``, only a regular file inside it (logs a task could replace)."""
    files = ports.files
    if not files.is_file(path) or (root is not None and not files.is_own_file(path, root)):
        return False
    try:
        ports.uploads.upload_file(path, uri)
    except OSError as exn:  # swapped since it was checked: a link out of EFS, a FIFO (refused)
        log.warning("not uploading %s: %s", path, exn)
        return False
    return True
