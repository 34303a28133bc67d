"""The stack's own bucket: the prefixes its functions read as control state, and the
content-addressed keys of staged workflows and inputs. Pure.

* ``submit/`` — every object created there is a submission (the S3 drop starts a run for it);
* ``errors/`` — the S3 drop's error reports;
* ``wdl/<sha256>.zip`` — workflows staged by ``miniwdl-serverless submit``, named by their
  content's SHA-256 and reused by name;
* ``inputs/<sha256>/<name>`` — local File inputs staged by ``submit`` (a Directory's files under
  ``inputs/<sha256 of its listing>/<name>/``), named by their content and reused by name.

A run's ``s3upload`` must never write there: outputs uploaded under ``submit/`` would become
new submissions (runs spawning runs), under ``wdl/`` or ``inputs/`` they could replace staged
workflows or inputs that later runs take for what their names say.
"""

from __future__ import annotations

import hashlib
import re

from miniwdl_serverless.core.errors import RunError

SUBMIT_PREFIX = "submit/"
ERRORS_PREFIX = "errors/"
STAGED_PREFIX = "wdl/"
INPUTS_PREFIX = "inputs/"
CONTROL_PREFIXES = {
    SUBMIT_PREFIX: "every object there is a new submission, so the run's files would start runs",
    ERRORS_PREFIX: "the S3 drop writes its error reports there",
    STAGED_PREFIX: "staged workflows live there, and runs load them",
    INPUTS_PREFIX: "staged inputs live there, named by their content, and runs read them",
}
_STAGED_KEY = re.compile(r"^wdl/([0-9a-fA-F]{64})\.zip$")


def upload_target_problem(folder: str, stack_bucket: str | None) -> str | None:
    """Why uploading into ``folder`` (an ``s3://bucket/prefix/`` URI, as the folder rule makes
    it) would write the stack's control state; None if it would not.

    S3 keys are literal, but an HTTP client may resolve ``.``/``..`` segments of a URL's path,
    so a folder that reaches a control prefix either way is refused."""
    if not stack_bucket or not folder.startswith("s3://"):
        return None
    bucket, _, key = folder[len("s3://") :].partition("/")
    if bucket != stack_bucket:
        return None
    for prefix, reason in CONTROL_PREFIXES.items():
        if any(candidate.startswith(prefix) for candidate in (key, _resolve_dots(key))):
            return (
                f"may not upload under s3://{bucket}/{prefix}, the stack's control prefix "
                f"({reason}); upload elsewhere, e.g. s3://{bucket}/results/"
            )
    return None


def _resolve_dots(key: str) -> str:
    """``key`` with ``.`` and ``..`` path segments resolved as a URL path's would be."""
    parts: list[str] = []
    for part in key.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def staged_key(archive: bytes) -> str:
    """Where a staged workflow goes in the stack's bucket: named by its content's SHA-256."""
    return f"{STAGED_PREFIX}{hashlib.sha256(archive).hexdigest()}.zip"


def staged_input_key(digest: str, name: str) -> str:
    """Where a staged input goes: ``inputs/<sha256>/<name>`` (a File: the SHA-256 of its
    content and its base name; a Directory's file: the digest of the Directory's listing, and
    ``<directory name>/<relative path>``)."""
    return f"{INPUTS_PREFIX}{digest}/{name}"


def staged_digest(workflow: str | None, stack_bucket: str | None) -> str | None:
    """The SHA-256 (hex) a workflow URI promises by its name: ``s3://<stack bucket>/wdl/<64
    hex>.zip``, the key ``staged_key`` gives; None for any other workflow."""
    if not workflow or not stack_bucket or not workflow.startswith("s3://"):
        return None
    bucket, _, key = workflow[len("s3://") :].partition("/")
    match = _STAGED_KEY.match(key)
    return match.group(1).lower() if bucket == stack_bucket and match else None


def verify_staged(workflow: str, data: bytes, expected: str) -> None:
    """A staged archive must be what its name says; else ``TamperedState``."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise RunError.of(
            "TamperedState",
            f"{workflow}: the staged workflow changed after staging (its SHA-256 is {actual}, "
            f"its content-addressed name says {expected}); submit it again",
        )
