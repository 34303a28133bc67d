"""Run options: the Step Functions execution input, validated into a typed value."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import BadSubmission

DELETE_AFTER = ("success", "failure", "always")
DEFAULT_TIMEOUT_SECONDS = 7 * 24 * 3600
_CONFIG_KEY = re.compile(r"^(MINIWDL__)?[A-Z0-9_]+__[A-Z0-9_]+$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")


def efs_root() -> str:
    """Where the shared file system is mounted, identically in Lambdas and task jobs."""
    return os.environ.get("MSLS_EFS_ROOT", "/mnt/efs")


@dataclass(frozen=True)
class RunOptions:
    """Everything one run needs to know, as carried in the execution input."""

    workflow: str | None = None
    workflow_source: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    dir: str | None = None
    s3upload: str | None = None
    delete_after: str | None = None
    copy_input_files: bool = False
    config: dict[str, str] = field(default_factory=dict)
    task_queue: str | None = None
    task_queue_fallback: str | None = None
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None

    @property
    def run_root(self) -> str:
        return self.dir or os.path.join(efs_root(), "miniwdl_run")

    def config_overrides(self) -> dict[str, str]:
        """`MINIWDL__SECTION__KEY` form of the config map (the prefix is optional in the input)."""
        return {(k if k.startswith("MINIWDL__") else "MINIWDL__" + k): v for k, v in self.config.items()}


def parse_run_options(data: Any) -> RunOptions:
    """Validate the execution input; every problem is named in a `BadSubmission`."""
    if not isinstance(data, dict):
        raise BadSubmission("execution input must be a JSON object")
    known = set(RunOptions.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadSubmission(f"unknown field(s) in execution input: {', '.join(unknown)}")
    workflow, source = data.get("workflow"), data.get("workflow_source")
    if bool(workflow) == bool(source):
        raise BadSubmission("give exactly one of 'workflow' (URI or EFS path) or 'workflow_source'")
    _check_type(data, "workflow", str)
    _check_type(data, "workflow_source", str)
    _check_type(data, "inputs", dict)
    for key in ("task", "dir", "s3upload", "task_queue", "task_queue_fallback", "name"):
        _check_type(data, key, str)
    _check_type(data, "copy_input_files", bool)
    _check_type(data, "config", dict)
    _check_type(data, "tags", dict)
    if isinstance(workflow, str) and not re.match(r"^(s3://|https?://|/)", workflow):
        raise BadSubmission(f"workflow must be an s3://, https:// URI or an absolute path: {workflow!r}")
    if data.get("dir") is not None and not os.path.isabs(data["dir"]):
        raise BadSubmission(f"dir must be an absolute path: {data['dir']!r}")
    s3upload = data.get("s3upload")
    if s3upload is not None and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", s3upload):
        raise BadSubmission(f"s3upload must be an s3://bucket/prefix URI: {s3upload!r}")
    delete_after = data.get("delete_after")
    if delete_after is not None:
        if delete_after not in DELETE_AFTER:
            raise BadSubmission(f"delete_after must be one of {', '.join(DELETE_AFTER)}: {delete_after!r}")
        if not s3upload:
            raise BadSubmission("delete_after requires s3upload (the run directory is deleted only after upload)")
    timeout = data.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 31_536_000:
        raise BadSubmission("timeout_seconds must be an integer between 1 and 31536000")
    config = data.get("config") or {}
    for key, value in config.items():
        if not _CONFIG_KEY.match(key) or not isinstance(value, str):
            raise BadSubmission(f"config keys must look like SECTION__KEY with string values: {key!r}")
    tags = data.get("tags") or {}
    for key, value in tags.items():
        if not _TAG_KEY.match(key) or not isinstance(value, str) or len(value) > 256:
            raise BadSubmission(f"invalid tag {key!r}: keys up to 128 chars, string values up to 256")
    return RunOptions(**{k: v for k, v in data.items() if v is not None})


def _check_type(data: dict[str, Any], key: str, kind: type) -> None:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise BadSubmission(f"'{key}' must be a {kind.__name__}, not {type(value).__name__}")
