"""What a run hands back to Step Functions. A state's input and output, and so the execution's
output, are capped at 256 KiB, and a payload over it fails the execution with
``States.DataLimitExceeded``, which no ``Catch`` can catch; a Fail state's cause is cut at
32,768 characters. So large outputs and error causes travel by reference: the result always
names ``outputs_json`` (or ``error_json``) and carries the value inline only when it is small."""

from __future__ import annotations

import json
from typing import Any

STATE_PAYLOAD_LIMIT = 256 * 1024
# Outputs inline up to this (UTF-8 bytes of their JSON): well under the cap, with room for the
# rest of the state (the execution input is in it too).
INLINE_OUTPUTS_LIMIT = 64 * 1024
CAUSE_LIMIT = 32_768  # characters of a Fail state's (and SendTaskFailure's) cause
ERROR_NAME_LIMIT = 256
SHORT_TEXT = 1024  # a long string in a cut-down cause keeps this many characters
SHORT_LIST = 10


def size_of(value: Any) -> int:
    """Bytes of ``value`` as JSON, as Step Functions counts a payload (UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False).encode())


def succeeded(
    run_dir: str, outputs: dict[str, Any], outputs_json: str, s3upload: str | None = None
) -> dict[str, Any]:
    """Finish's result for a succeeded run: ``outputs`` inline only while they are small,
    ``outputs_json`` (where the full outputs are: the run directory's or the uploaded copy)
    always."""
    result: dict[str, Any] = {"status": "succeeded", "dir": run_dir, "outputs_json": outputs_json}
    if s3upload:
        result["s3upload"] = s3upload
    if size_of(outputs) <= INLINE_OUTPUTS_LIMIT:
        result["outputs"] = outputs
    else:
        result["outputs_omitted"] = f"{size_of(outputs)} bytes, more than a Step Functions payload"
    return result


def failed(name: str, info: dict[str, Any], error_json: str | None = None) -> dict[str, Any]:
    """Finish's result for a failed run: the error name and miniwdl's error JSON as the cause,
    cut down (long strings and lists shortened) when it would not fit, pointing at
    ``error_json`` for the whole of it."""
    result: dict[str, Any] = {"status": "failed", "error": name[:ERROR_NAME_LIMIT]}
    result["cause"] = cause_text(info, error_json)
    if error_json:
        result["error_json"] = error_json
    return result


def continuing(run_id: str, progress: dict[str, Any], error: Any = None) -> dict[str, Any]:
    """Finish's result when its invocation's time ran out before every file was uploaded: the
    state machine loops back into Finish with it as the state, so it holds what the next
    invocation needs — the run, how far the upload got, and the error Start ended with (its
    cause for a failed run that recorded none; Step Functions' own, within its limits) — and
    nothing that grows with the outputs (``progress`` names at most uploads.MAX_FAILED files,
    by index)."""
    result: dict[str, Any] = {"status": "continue", "result": {"run_id": run_id}}
    result["progress"] = progress
    if isinstance(error, dict):
        limits = (("Error", ERROR_NAME_LIMIT), ("Cause", CAUSE_LIMIT))
        result["error"] = {
            key: str(error[key])[:limit] for key, limit in limits if error.get(key) is not None
        }
    return result


def cause_text(info: dict[str, Any], error_json: str | None = None) -> str:
    """miniwdl's error JSON as a cause of at most CAUSE_LIMIT characters, always valid JSON."""
    text = json.dumps(info, sort_keys=True)
    if len(text) <= CAUSE_LIMIT:
        return text
    short = _shortened(info)
    if not isinstance(short, dict):
        short = {}
    short["truncated"] = f"the error is {len(text)} characters; all of it is in error.json"
    if error_json:
        short["error_json"] = error_json
    text = json.dumps(short, sort_keys=True)
    if len(text) <= CAUSE_LIMIT:
        return text
    kept = ("error", "message", "truncated", "error_json")
    return json.dumps({key: short[key] for key in kept if key in short}, sort_keys=True)


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHORT_TEXT:
        return value[:SHORT_TEXT] + f"… ({len(value) - SHORT_TEXT} more characters)"
    if isinstance(value, list):
        kept = [_shortened(item) for item in value[:SHORT_LIST]]
        if len(value) > SHORT_LIST:
            kept.append(f"… ({len(value) - SHORT_LIST} more)")
        return kept
    if isinstance(value, dict):
        return {str(key)[:SHORT_TEXT]: _shortened(item) for key, item in value.items()}
    return value
