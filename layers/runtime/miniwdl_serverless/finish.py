"""Ending a run: outputs.json, upload to S3 with miniwdl-aws's folder rule, delete per delete_after."""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any

from miniwdl_serverless import spill, store
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.engine import Services, fail_run, load_context, write_json
from miniwdl_serverless.task_call import is_own_file

log = logging.getLogger("miniwdl_serverless.finish")


def upload_folder(s3upload: str, run_dir: str) -> str:
    """miniwdl-aws's rule: a trailing '/' uploads into that folder, else into <s3upload>/<run name>/."""
    if s3upload.endswith("/"):
        return s3upload
    return s3upload + "/" + os.path.basename(run_dir.rstrip("/")) + "/"


def finish_run(state: dict[str, Any], execution_name: str, services: Services, s3: Any) -> dict[str, Any]:
    """The Finish state: returns {"status": "succeeded", "dir", "outputs"} or {"status": "failed", "error", "cause"}."""
    run_id = (state.get("result") or {}).get("run_id") or execution_name
    try:
        run = store.get_run(run_id)
    except store.RunModel.DoesNotExist:
        error = state.get("error") or {}
        return _failed(str(error.get("Error") or "RunFailed"), {"error": error.get("Error"), "message": error.get("Cause")})
    if "error" in state and run.status in (store.RUN_PLANNING, store.RUN_RUNNING):
        _stop_unfinished(run, state["error"], services)
        run = store.get_run(run_id)
    if run.status == store.RUN_SUCCEEDED:
        outputs = spill.load(run.outputs) or {}
        return _succeeded(run, outputs, s3)
    info = run.error or {"error": "RunFailed", "message": str((state.get("error") or {}).get("Cause"))}
    _after_failure(run, info, s3)
    return _failed(str(info.get("error") or "RunFailed"), info)


def _stop_unfinished(run: store.RunModel, error: dict[str, Any], services: Services) -> None:
    """Start crashed, the run timed out or was stopped: fail it and terminate its jobs."""
    name = str(error.get("Error") or "RunFailed")
    message = str(error.get("Cause") or name)
    if name == "States.Timeout":  # error names may not start with "States." when we send them
        name, message = "RunTimeout", "the run exceeded its timeout (timeout_seconds)"
    info = {"error": name, "message": message}
    if run.run_dir and run.bundle_path:
        fail_run(load_context(run, services), RunError(name, info))
    else:
        store.set_run_status(run, store.RUN_FAILED, [store.RUN_PLANNING, store.RUN_RUNNING], error=info)


def _succeeded(run: store.RunModel, outputs: dict[str, Any], s3: Any) -> dict[str, Any]:
    run_dir = str(run.run_dir)
    write_json(os.path.join(run_dir, "outputs.json"), outputs)
    options = run.options or {}
    result = {"status": "succeeded", "dir": run_dir, "outputs": outputs}
    if options.get("s3upload"):
        folder = upload_folder(options["s3upload"], run_dir)
        uploaded = _upload_outputs(s3, run, outputs, folder)
        _upload_file(s3, os.path.join(run_dir, "workflow.log"), folder + "workflow.log", root=run_dir)
        _put_json(s3, folder + "outputs.json", uploaded)
        result.update(outputs=uploaded, s3upload=folder)
        if options.get("delete_after") in ("success", "always"):
            shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _after_failure(run: store.RunModel, info: dict[str, Any], s3: Any) -> None:
    options = run.options or {}
    if not run.run_dir or not os.path.isdir(str(run.run_dir)):
        return
    run_dir = str(run.run_dir)
    write_json(os.path.join(run_dir, "error.json"), info)
    if options.get("s3upload"):
        folder = upload_folder(options["s3upload"], run_dir)
        cause = info.get("cause") or {}
        for key, name in (("stderr_file", "CommandFailed_stderr.txt"), ("stdout_file", "CommandFailed_stdout.txt")):
            if cause.get(key) and _upload_file(s3, cause[key], folder + name, root=run_dir):
                cause[key.replace("_file", "_s3file")] = folder + name
        _upload_file(s3, os.path.join(run_dir, "workflow.log"), folder + "workflow.log", root=run_dir)
        _put_json(s3, folder + "error.json", info)
        if options.get("delete_after") in ("failure", "always"):
            shutil.rmtree(run_dir, ignore_errors=True)


def _upload_outputs(s3: Any, run: store.RunModel, outputs: dict[str, Any], folder: str) -> dict[str, Any]:
    """Upload each output file under <folder>/<output name>/ and rewrite it to its s3:// URI.

    Only files of the run (or its inputs) are uploaded: an output string naming another file
    on the Lambda's file system stays a string."""
    run_dir = os.path.realpath(str(run.run_dir)).rstrip("/") + "/"
    inputs = _input_paths(spill.load(run.inputs) or {})

    def rewrite(value: Any, name: str) -> Any:
        if isinstance(value, str) and os.path.isabs(value) and os.path.isfile(value) and (
            os.path.realpath(value).startswith(run_dir) or value in inputs
        ):
            target = f"{folder}{name}/{os.path.basename(value)}"
            _upload_file(s3, value, target)
            return target
        if isinstance(value, list):
            return [rewrite(v, f"{name}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: rewrite(v, f"{name}/{k}") for k, v in value.items()}
        return value

    return {key: rewrite(value, key) for key, value in outputs.items()}


def _input_paths(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if os.path.isabs(value) else set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return set().union(*(_input_paths(v) for v in items)) if items else set()


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _upload_file(s3: Any, path: str, uri: str, root: str | None = None) -> bool:
    """Upload a file; with ``root``, only a regular file inside it (logs a task could replace)."""
    if not os.path.isfile(path) or (root is not None and not is_own_file(path, root)):
        return False
    bucket, key = _split(uri)
    s3.upload_file(path, bucket, key)
    return True


def _put_json(s3: Any, uri: str, data: Any) -> None:
    bucket, key = _split(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(data, indent=2).encode(), ContentType="application/json")


def _failed(name: str, info: dict[str, Any]) -> dict[str, Any]:
    return {"status": "failed", "error": name[:256], "cause": json.dumps(info, sort_keys=True)[:32768]}

