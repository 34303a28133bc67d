"""The Finish state: outputs.json or error.json, the upload to S3 with miniwdl-aws's folder
rule (controller/uploading.py), and deleting the run directory per ``delete_after`` once every
upload is confirmed. An upload too large for one invocation goes on in further ones."""

from __future__ import annotations

import logging
import os
from typing import Any

from miniwdl_serverless.controller.context import (
    append_workflow_log,
    load_context,
    make_config,
)
from miniwdl_serverless.controller.end import (
    LIVE,
    fail_run,
    fail_unloadable_run,
    write_json_best_effort,
)
from miniwdl_serverless.controller.ports import Ports, TransientError
from miniwdl_serverless.controller.uploading import Batch, Continue, Item, OutputPlan, upload_item
from miniwdl_serverless.core import localizing, payloads
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.options import parse_run_options
from miniwdl_serverless.core.records import RUN_FAILED, RUN_SUCCEEDED, Run
from miniwdl_serverless.core.uploads import Deadline, Progress

log = logging.getLogger("miniwdl_serverless.controller")
# The failed task's logs a failed run uploads, by the key of the error's cause that names
# them: miniwdl-aws's name for stderr (its ``stderr_s3file``), and the same for stdout.
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


def finish_run(
    state: dict[str, Any], execution_name: str, ports: Ports, deadline: Deadline | None = None
) -> dict[str, Any]:
    """Returns {"status": "succeeded", "dir", "outputs_json", "outputs" (when small)} or
    {"status": "failed", "error", "cause", "error_json"} (the state machine's Succeed and Fail
    states read these; core/payloads.py keeps them within Step Functions' limits), or, when
    ``deadline`` came near before every file was uploaded, {"status": "continue", ...}: the
    state machine invokes Finish again with that as its state, and it goes on from there."""
    run_id = (state.get("result") or {}).get("run_id") or execution_name
    run = ports.store.get_run(run_id)
    if run is None:
        error = state.get("error") or {}
        name = str(error.get("Error") or "RunFailed")
        return payloads.failed(name, {"error": error.get("Error"), "message": error.get("Cause")})
    if "error" in state and run.status in LIVE:
        _stop_unfinished(run, state["error"], ports)
        run = ports.store.get_run(run_id) or run
    batch = Batch(ports, deadline, Progress.from_json(state.get("progress")))
    try:
        if run.status == RUN_SUCCEEDED:
            return _succeeded(run, ports, batch)
        cause = str((state.get("error") or {}).get("Cause"))
        info = run.error or RunError.of("RunFailed", cause).info
        error_json = _after_failure(run, info, ports, batch)
    except Continue as stop:
        return _continuing(run, ports, batch, stop.progress, state.get("error"))
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


def _succeeded(run: Run, ports: Ports, batch: Batch) -> dict[str, Any]:
    """outputs.json, the upload and ``delete_after``. Idempotent: once every output is
    uploaded (``uploaded_to`` recorded), a re-invoked Finish returns what was uploaded, never
    paths that ``delete_after`` may have deleted since (nor reads the run's spilled outputs,
    deleted with them). Before that, a re-invoked Finish (or a further one) sends nothing an
    earlier one sent: the objects are there already."""
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
    plan = OutputPlan(ports.files, run, folder, outputs, _reused_roots(run, ports))
    left = batch.upload(plan.items)  # outputs that stay on EFS
    uploaded = plan.rewrite(outputs, left)
    left |= _close(run, ports, batch, folder)
    ports.uploads.put_json(folder + "outputs.json", uploaded)
    if not left:
        ports.store.record_upload(run.run_id, folder)
    if deletes:
        _delete_if_uploaded(run, ports, left)
    return payloads.succeeded(run_dir, uploaded, folder + "outputs.json", folder)


def _reused_roots(run: Run, ports: Ports) -> tuple[str, ...]:
    """Where outputs of this run may lie besides its directory: the download cache (an input
    passed through) and the run root (a call's outputs reused from an earlier run)."""
    options = parse_run_options(run.options or {})
    root = ports.files.root
    downloads = localizing.Settings.from_config(make_config(options, root), root)
    run_dir = str(run.run_dir)
    return (localizing.cache_root(downloads, run_dir), os.path.dirname(run_dir.rstrip("/")))


def _after_failure(run: Run, info: dict[str, Any], ports: Ports, batch: Batch) -> str | None:
    """error.json, the upload of it, the failed task's stderr and stdout (miniwdl-aws's
    names: ``CommandFailed_stderr.txt``, the cause's ``stderr_s3file``) and workflow.log,
    ``delete_after``. Returns where the whole error JSON is (None: the run has no directory)."""
    options = run.options or {}
    if not run.run_dir or not ports.files.is_dir(str(run.run_dir)):
        return None
    run_dir = str(run.run_dir)
    error_json = os.path.join(run_dir, "error.json")
    write_json_best_effort(ports.files, error_json, info)
    if not options.get("s3upload"):
        return error_json
    folder = upload_folder(options["s3upload"], run_dir)
    cause = info.get("cause")
    logs = _failed_task_logs(ports, cause, folder, run_dir)
    left = batch.upload(logs)
    for item in logs:
        if item.name not in left and isinstance(cause, dict):
            cause[item.name.replace("_file", "_s3file")] = item.uri
    left |= _close(run, ports, batch, folder)
    ports.uploads.put_json(folder + "error.json", info)
    if options.get("delete_after") in ("failure", "always"):
        _delete_if_uploaded(run, ports, left)
    return folder + "error.json"


def _failed_task_logs(ports: Ports, cause: Any, folder: str, run_dir: str) -> list[Item]:
    """The failed task's stderr and stdout files its error names, if they are there."""
    if not isinstance(cause, dict):
        return []
    return [
        Item(cause[key], folder + name, key, own_root=run_dir)
        for key, name in FAILED_TASK_LOGS
        if isinstance(cause.get(key), str) and ports.files.is_file(cause[key])
    ]


def _close(run: Run, ports: Ports, batch: Batch, folder: str) -> set[str]:
    """What was uploaded and skipped, in workflow.log and the metrics; then workflow.log
    itself (last, so that it holds the line). Returns {"workflow.log"} if it could not be."""
    line = batch.total.line()
    if batch.progress.invocations:
        line += f", in {batch.progress.invocations + 1} invocations"
    _report(run, ports, batch, line)
    path = os.path.join(str(run.run_dir), "workflow.log")
    if not ports.files.is_file(path):
        return set()
    item = Item(path, folder + "workflow.log", "workflow.log", own_root=str(run.run_dir))
    return set() if upload_item(ports, item) else {"workflow.log"}


def _continuing(
    run: Run, ports: Ports, batch: Batch, progress: Progress, error: Any
) -> dict[str, Any]:
    line = (
        f"{progress.tally.line()} so far; the invocation's time is running out: "
        f"continuing in invocation {progress.invocations + 1}"
    )
    _report(run, ports, batch, line)
    ports.metrics.count("FinishContinued")
    return payloads.continuing(run.run_id, progress.as_json(), error)


def _report(run: Run, ports: Ports, batch: Batch, line: str) -> None:
    log.info(line, extra={"run_id": run.run_id})
    _log_line(ports, run, line)
    for name, value in batch.session.metrics().items():
        if value:
            ports.metrics.count(name, value)


def _delete_if_uploaded(run: Run, ports: Ports, left: set[str]) -> None:
    """``delete_after``, once every upload is confirmed: deleting would lose what is left."""
    if left:
        message = (
            f"not deleting {run.run_dir} (delete_after): not uploaded: {', '.join(sorted(left))}"
        )
        log.warning(message, extra={"run_id": run.run_id})
        _log_line(ports, run, message)
        return
    _delete_run_dir(run, ports)


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
