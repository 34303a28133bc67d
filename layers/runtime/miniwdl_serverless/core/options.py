"""Run options: the Step Functions execution input, validated into a typed value."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema

from miniwdl_serverless.core.errors import BadSubmission

DELETE_AFTER = ("success", "failure", "always")
DEFAULT_TIMEOUT_SECONDS = 7 * 24 * 3600
# miniwdl settings that would widen what the controller's file access may reach: a submission
# cannot set them. [file_io] root is always the EFS root (controller/context.py:make_config);
# allow_any_input would let a workflow read any file, not only its inputs (an operator can still
# set it in the Lambdas' MINIWDL__* environment). The other [file_io] settings, [call_cache] and
# [download_cache] are not used by the controller or only narrow access; copy_input_files copies
# only regular files under the EFS root (adapters/efs.py).
REFUSED_SETTINGS = frozenset({("file_io", "root"), ("file_io", "allow_any_input")})


EFS_MOUNT = "/mnt/efs"  # where template.yaml mounts the access point, in functions and tasks


def efs_root() -> str:
    """Where the shared file system is mounted, identically in Lambdas and task jobs."""
    return os.environ.get("MSLS_EFS_ROOT", EFS_MOUNT)


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
        return {
            (k if k.startswith("MINIWDL__") else "MINIWDL__" + k): v for k, v in self.config.items()
        }


def parse_run_options(data: Any) -> RunOptions:
    """Validate the execution input against the JSON Schema; every problem is named in a
    `BadSubmission` ("s3upload: must be an s3://bucket/prefix URI, got \"x\"")."""
    problem = schema_problem(data)
    if problem:
        raise BadSubmission(problem)
    values = {k: v for k, v in data.items() if v is not None}
    if "timeout_seconds" in values:  # JSON Schema counts 60.0 as an integer
        values["timeout_seconds"] = int(values["timeout_seconds"])
    return RunOptions(**values)


def schema_path() -> Path:
    """The execution-input JSON Schema (draft-07), shipped inside the package and the layer."""
    return Path(__file__).resolve().parents[1] / "schemas" / "execution_input.schema.json"


@lru_cache(maxsize=1)
def execution_input_schema() -> dict[str, Any]:
    return dict(json.loads(schema_path().read_text()))


@lru_cache(maxsize=1)
def _validator() -> Callable[[Any], Any]:
    # fastjsonschema is what powertools' validation utility runs; compiled once per container.
    return fastjsonschema.compile(execution_input_schema())  # type: ignore[no-any-return]


# Deeper JSON is no WDL input anyone writes, and every recursive step that handles it (the
# schema's validator, json.dumps into the run record, miniwdl's values) would run out of stack.
MAX_NESTING = 100


def too_deep(data: Any, limit: int = MAX_NESTING) -> bool:
    """Whether lists and objects in ``data`` nest more than ``limit`` levels (no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children)
    return False


def storable(data: Any) -> dict[str, Any] | None:
    """The execution input as the run record may keep it: an object, not nested too deeply."""
    return data if isinstance(data, dict) and not too_deep(data) else None


def schema_problem(data: Any) -> str | None:
    """None if ``data`` is a valid execution input, else the first problem in plain words."""
    if too_deep(data):
        return f"the execution input nests lists and objects more than {MAX_NESTING} levels deep"
    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaValueException as exn:
        return _describe(exn, data)
    return _refused_setting(data.get("config") or {})


def setting_of(key: str) -> tuple[str, str]:
    """(section, name) of a ``[MINIWDL__]SECTION__KEY`` setting, lower case."""
    section, _, name = key.removeprefix("MINIWDL__").partition("__")
    return section.lower(), name.lower()


TASK_ENV = ("task_runtime", "env")  # miniwdl's --env: {NAME: VALUE, or null to pass through}


def _refused_setting(config: dict[str, Any]) -> str | None:
    for key, value in config.items():
        if setting_of(key) in REFUSED_SETTINGS:
            return (
                f"config: {key} cannot be set by a submission (it would widen the files a run"
                " may read)"
            )
        if setting_of(key) == TASK_ENV and _passes_through(value):
            # miniwdl reads a null from the environment of the process evaluating the task:
            # here a function holding the stack's credentials. The CLI resolves --env NAME.
            return (
                f"config: {key} must map each name to a value (a null would pass the"
                " controller's own environment variable to the task)"
            )
    return None


def _passes_through(value: Any) -> bool:
    try:
        env = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return False  # miniwdl reports the malformed setting when the run starts
    return not isinstance(env, dict) or any(v is None for v in env.values())


def with_task_env(
    config: dict[str, str], items: list[str], environ: Mapping[str, str], current: str | None
) -> tuple[dict[str, str], list[str]]:
    """``miniwdl run --env NAME[=VALUE]`` into the run's [task_runtime] env setting: merged
    over ``current`` (the setting already configured), a bare NAME passed through from
    ``environ`` (this command's environment) now, so the submission carries only values.
    Returns the new config and the names skipped for being unset (miniwdl warns of those)."""
    keys = [k for k in config if setting_of(k) == TASK_ENV]
    key = keys[-1] if keys else "MINIWDL__TASK_RUNTIME__ENV"
    raw = config.get(key, current) or "{}"
    env = json.loads(raw)
    if not isinstance(env, dict):
        raise ValueError(f"[task_runtime] env must be a JSON object, got {raw!r}")
    env.update({k: environ[k] for k, v in env.items() if v is None and k in environ})
    skipped = [k for k, v in env.items() if v is None]
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise ValueError(f"invalid --env argument: {item}")
        if sep:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
        else:
            skipped.append(name)
    env = {k: str(v) for k, v in env.items() if v is not None}
    return {**config, key: json.dumps(env)}, sorted(set(skipped))


def _describe(exn: fastjsonschema.JsonSchemaValueException, data: Any) -> str:
    """The schema's `errorMessage` for the violated rule, naming the field and the value."""
    texts = exn.definition.get("errorMessage") if isinstance(exn.definition, dict) else None
    text = texts.get(exn.rule) if isinstance(texts, dict) else texts
    path = [str(part) for part in exn.path[1:]]  # drop fastjsonschema's leading "data"
    if exn.rule == "additionalProperties" and not path and isinstance(data, dict):
        unknown = sorted(set(data) - set(execution_input_schema()["properties"]))
        return f"unknown field(s) in execution input: {', '.join(unknown)}"
    if exn.rule == "propertyNames":  # fastjsonschema does not say which name failed
        pattern = re.compile(
            str(exn.rule_definition.get("pattern", ""))
            if isinstance(exn.rule_definition, dict)
            else ""
        )
        bad = [k for k in (exn.value or {}) if not pattern.search(k)]
        nested = (
            (exn.rule_definition or {}).get("errorMessage")
            if isinstance(exn.rule_definition, dict)
            else None
        )
        shown = _show(bad[0] if bad else exn.value)
        return f"{'.'.join(path)}: {nested or 'invalid key'}, got {shown}"
    if not text:
        text = exn.message.replace("data.", "", 1).replace("data ", "", 1)
    if not path:
        return str(text)
    return f"{'.'.join(path)}: {text}, got {_show(exn.value)}"


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
