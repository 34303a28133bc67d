"""S3 object drop: a submission JSON put under ``submit/`` starts exactly one execution.

Pure parts (key handling, execution names, reading and validating a submission) come first;
the adapters for S3 and Step Functions are at the end, behind two small protocols.

* **Exactly once.** The execution name is derived from the bucket, the key and the object's
  version id (or, in an unversioned bucket, its ETag), so a notification delivered twice, or
  concurrently, names the same execution; Step Functions refuses a second execution of that
  name and the duplicate is logged and counted, not started.
* **Nothing lost.** An invalid submission starts nothing and leaves a readable error object
  under ``errors/`` (same relative key + ``.error.json``) naming the submission and the problem.
* **Keys.** EventBridge's "Object Created" events carry the key as stored; S3 notification
  records (SQS/SNS/Lambda) carry it URL-encoded (``unquote_plus``). A key from an EventBridge
  event is used as is and only if no such object exists is its ``unquote_plus`` form tried, so
  either delivery path finds the object, and a key that really contains ``+`` stays intact.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol
from urllib.parse import unquote_plus

from miniwdl_serverless.controller.ports import Metrics
from miniwdl_serverless.core.options import schema_problem
from miniwdl_serverless.core.stack_bucket import ERRORS_PREFIX, SUBMIT_PREFIX

ERROR_SUFFIX = ".error.json"
# Step Functions takes at most 256 KiB of execution input (and state); 4 KiB are left for the
# state machine's own fields. Larger workflows and inputs go by reference (s3://, EFS paths).
MAX_SUBMISSION_BYTES = 252 * 1024
MAX_EXECUTION_NAME = 80  # Step Functions' limit
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8)
_DIGEST_CHARS = 16  # 64 bits of sha256: collisions are not a practical concern here
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

Outcome = Literal["started", "duplicate", "rejected", "ignored", "gone"]


@dataclass(frozen=True)
class SubmittedObject:
    """What the notification says about the object (the key as the event carries it)."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None


@dataclass(frozen=True)
class SubmissionResult:
    outcome: Outcome
    submission: str  # s3://bucket/key
    execution_name: str | None = None
    execution_arn: str | None = None
    error_key: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Rejected(Exception):
    """The submission is not a valid execution input; the message says why, in plain words."""


# -- pure parts --------------------------------------------------------------------------
def is_submission_key(key: str) -> bool:
    """Objects directly or deeper under submit/, not "folder" placeholders."""
    return key.startswith(SUBMIT_PREFIX) and not key.endswith("/") and len(key) > len(SUBMIT_PREFIX)


def key_from_notification_record(encoded: str) -> str:
    """The key of an S3 notification record (SQS/SNS/Lambda), which S3 URL-encodes."""
    return unquote_plus(encoded)


def candidate_keys(event_key: str) -> list[str]:
    """Keys to try for a key from an EventBridge event: as delivered, then URL-decoded."""
    decoded = unquote_plus(event_key)
    return [event_key] if decoded == event_key else [event_key, decoded]


def execution_name(bucket: str, key: str, version_id: str | None, etag: str | None) -> str:
    """Deterministic, ≤ 80 characters of [A-Za-z0-9_-]: a readable stem from the key and a digest
    of (bucket, key, version id or ETag). The same object version always gives the same name."""
    version = (
        version_id if version_id and version_id != "null" else f"etag:{(etag or '').strip(chr(34))}"
    )
    identity = json.dumps([bucket, key, version])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_DIGEST_CHARS]
    stem = key[len(SUBMIT_PREFIX) :] if key.startswith(SUBMIT_PREFIX) else key
    stem = re.sub(r"\.json$", "", stem, flags=re.I)
    stem = _UNSAFE.sub("-", stem).strip("-_")
    stem = stem[: MAX_EXECUTION_NAME - _DIGEST_CHARS - 1].rstrip("-_") or "submission"
    return f"{stem}-{digest}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a (standard) state machine."""
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def error_key(key: str) -> str:
    """errors/<key without submit/>.error.json; a key that would exceed S3's limit is cut and
    told apart from others cut the same by a digest of the whole key."""
    relative = key[len(SUBMIT_PREFIX) :] if key.startswith(SUBMIT_PREFIX) else key
    whole = ERRORS_PREFIX + relative + ERROR_SUFFIX
    if len(whole.encode()) <= MAX_KEY_BYTES:
        return whole
    digest = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST_CHARS]
    room = MAX_KEY_BYTES - len(ERRORS_PREFIX) - len(ERROR_SUFFIX) - _DIGEST_CHARS - 1
    stem = relative.encode()[:room].decode(errors="ignore")  # never half a character
    return f"{ERRORS_PREFIX}{stem}-{digest}{ERROR_SUFFIX}"


def parse_submission(body: bytes, limit: int = MAX_SUBMISSION_BYTES) -> dict[str, Any]:
    """The execution input in a submission object's bytes, or `Rejected` naming the problem."""
    if len(body) > limit:
        raise Rejected(
            f"the submission is larger than {limit} bytes; "
            "give the workflow by reference (workflow: s3://...)"
        )
    data = _decoded(body)
    try:  # JSON may escape what no UTF-8 text holds: Step Functions could not take it
        size = len(execution_input(data).encode())
    except UnicodeEncodeError as exn:
        raise Rejected(
            "the submission is not valid Unicode: it escapes a lone surrogate"
            f" (\\u{ord(exn.object[exn.start]):04x}); write the character itself"
        ) from None
    except RecursionError:
        raise Rejected(_TOO_DEEP) from None
    problem = schema_problem(data)
    if problem:
        raise Rejected(problem)
    if size > limit:  # escapes can make the JSON grow
        raise Rejected(
            f"the execution input is larger than {limit} bytes; "
            "give the workflow by reference (workflow: s3://...)"
        )
    return dict(data)


_TOO_DEEP = "the submission's JSON is nested too deeply to be an execution input"


def _decoded(body: bytes) -> Any:
    """The JSON value in the body: UTF-8 text (a BOM allowed), not empty, JSON."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exn:
        raise Rejected(f"the submission is not UTF-8 text (byte {exn.start})") from None
    if not text.strip():
        raise Rejected("the submission is empty; it must be a JSON object (the execution input)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exn:
        raise Rejected(
            f"the submission is not valid JSON: {exn.msg} at line {exn.lineno} column {exn.colno}"
        ) from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise Rejected(_TOO_DEEP) from None


def execution_input(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def error_document(obj: SubmittedObject, key: str, message: str, now: datetime) -> dict[str, Any]:
    return {
        "submission": f"s3://{obj.bucket}/{key}",
        "version": obj.version_id,
        "etag": obj.etag,
        "error": "InvalidSubmission",
        "message": message,
        "time": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "execution_name": execution_name(obj.bucket, key, obj.version_id, obj.etag),
        "started": False,
    }


# -- the shell -----------------------------------------------------------------------------
class SubmissionStore(Protocol):
    def read(self, bucket: str, key: str, version_id: str | None, limit: int) -> bytes | None:
        """At most ``limit`` bytes of the object (None if there is no such object/version)."""

    def write_error(self, bucket: str, key: str, document: dict[str, Any]) -> None: ...


class Executions(Protocol):
    def start(self, name: str, execution_input: str) -> tuple[str, bool]:
        """Start the named execution; (its ARN, False if it already existed). `Rejected` if
        Step Functions refuses the input."""


@dataclass
class SubmissionPorts:
    """What the S3 drop needs: the bucket's objects, the state machine's executions, metrics."""

    objects: SubmissionStore
    executions: Executions
    metrics: Metrics


# The metric each outcome counts (ignored and gone objects count nothing)
OUTCOME_METRICS = {
    "started": "SubmissionsStarted",
    "rejected": "SubmissionsRejected",
    "duplicate": "SubmissionsDuplicate",
}


def handle_submission(
    obj: SubmittedObject,
    ports: SubmissionPorts,
    log: Callable[[str, dict[str, Any]], None] = lambda _message, _extra: None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    limit: int = MAX_SUBMISSION_BYTES,
) -> SubmissionResult:
    """Start the execution for one submission object, or record why it cannot start."""
    result = _submit(obj, ports, log, now, limit)
    if result.outcome in OUTCOME_METRICS:
        ports.metrics.count(OUTCOME_METRICS[result.outcome])
    return result


def _submit(
    obj: SubmittedObject,
    ports: SubmissionPorts,
    log: Callable[[str, dict[str, Any]], None],
    now: Callable[[], datetime],
    limit: int,
) -> SubmissionResult:
    store, executions = ports.objects, ports.executions
    where = f"s3://{obj.bucket}/{obj.key}"
    if not any(is_submission_key(k) for k in candidate_keys(obj.key)):
        return SubmissionResult(
            "ignored", where, message=f"not a submission (only keys under {SUBMIT_PREFIX} are)"
        )
    body, key = None, obj.key
    if obj.size is None or obj.size <= limit:  # never read an oversized object
        for key in candidate_keys(obj.key):
            body = store.read(obj.bucket, key, obj.version_id, limit + 1)
            if body is not None:
                break
        if body is None:  # deleted (or overwritten in an unversioned bucket) before we got here
            log("submission object is gone", {"submission": where})
            return SubmissionResult("gone", where, message="the submission object no longer exists")
    where = f"s3://{obj.bucket}/{key}"
    name = execution_name(obj.bucket, key, obj.version_id, obj.etag)
    try:
        if body is None:
            raise Rejected(
                f"the submission is {obj.size} bytes, more than the limit of {limit} bytes; "
                "give the workflow by reference (workflow: s3://...)"
            )
        data = parse_submission(body, limit)
        arn, started = executions.start(name, execution_input(data))
    except Rejected as exn:
        target = error_key(key)
        store.write_error(obj.bucket, target, error_document(obj, key, str(exn), now()))
        log("submission rejected", {"submission": where, "error_key": target, "problem": str(exn)})
        return SubmissionResult("rejected", where, name, error_key=target, message=str(exn))
    log(
        "execution started" if started else "duplicate submission: execution exists",
        {"submission": where, "execution_arn": arn},
    )
    return SubmissionResult("started" if started else "duplicate", where, name, arn)
