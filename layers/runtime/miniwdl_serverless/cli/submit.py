"""`miniwdl-serverless submit`, the pure part: options (flags, then miniwdl-aws's environment
variables), inputs parsed and typechecked with miniwdl's own rules, the miniwdl zip of a local
workflow, and the Step Functions execution input. No AWS calls here (see stack.py; local
inputs are staged by staging.py)."""

from __future__ import annotations

import base64
import configparser
import contextlib
import io
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from miniwdl_serverless.core.options import DELETE_AFTER
from miniwdl_serverless.core.stack_bucket import staged_key  # noqa: F401 - submit's own name for it

# miniwdl-aws's variables for options that are not miniwdl settings: read here, never passed
# through to the run as configuration.
ENV_TASK_QUEUE = "MINIWDL__AWS__TASK_QUEUE"
ENV_TASK_QUEUE_FALLBACK = "MINIWDL__AWS__TASK_QUEUE_FALLBACK"
ENV_FSAP = "MINIWDL__AWS__FSAP"
ENV_S3UPLOAD = "MINIWDL__AWS__S3_UPLOAD_FOLDER"
ENV_DELETE_AFTER = ("MINIWDL__AWS__DELETE_AFTER_S3_UPLOAD", "MINIWDL__AWS__S3_UPLOAD_DELETE_AFTER")
ENV_JOB_TAGS = "MINIWDL__AWS__JOB_TAGS"
LAUNCH_ONLY = {
    ENV_TASK_QUEUE,
    ENV_TASK_QUEUE_FALLBACK,
    ENV_FSAP,
    ENV_S3UPLOAD,
    *ENV_DELETE_AFTER,
    ENV_JOB_TAGS,
    "MINIWDL__AWS__FS",
    "MINIWDL__AWS__WORKFLOW_QUEUE",
    "MINIWDL__AWS__WORKFLOW_ROLE",
    "MINIWDL__AWS__WORKFLOW_IMAGE",
    "MINIWDL__FILE_IO__ROOT",
}
ENV_STACK = "MINIWDL_SERVERLESS_STACK"
ENV_STATE_MACHINE = "MINIWDL_SERVERLESS_STATE_MACHINE"
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_TIMEOUT = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad input on the laptop: one line, exit status 2, nothing started."""


@dataclass(frozen=True)
class SubmitSettings:
    """Every submit option after flags and environment variables are combined."""

    s3upload: str | None = None
    delete_after: str | None = None
    task_queue: str | None = None
    task_queue_fallback: str | None = None
    fsap: str | None = None
    fsap_from_flag: bool = False
    dir: str | None = None
    copy_input_files: bool = False
    config: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int | None = None
    name: str | None = None
    task: str | None = None
    stage_inputs: bool = True  # --no-stage: refuse local inputs instead of staging them


def resolve_settings(args: Any, env: Mapping[str, str]) -> SubmitSettings:
    """Flags win over environment variables (as in miniwdl-aws). Checks that need no AWS."""
    s3upload = args.s3upload or env.get(ENV_S3UPLOAD) or None
    if s3upload is not None and not S3_URI.match(s3upload):
        raise UsageError(f"--s3upload must be an s3://bucket/folder URI, not {s3upload!r}")
    delete_after = args.delete_after or next((env[k] for k in ENV_DELETE_AFTER if env.get(k)), None)
    if delete_after is not None:
        delete_after = delete_after.strip().lower()
        if delete_after not in DELETE_AFTER:
            raise UsageError(
                f"--delete-after must be one of {', '.join(DELETE_AFTER)}, not {delete_after!r}"
            )
        if not s3upload:  # checked after reading both flags and their variables
            raise UsageError(
                f"--delete-after needs an upload folder: give --s3upload or set {ENV_S3UPLOAD}"
            )
    directory = args.dir
    if directory is not None and not directory.startswith("/"):
        raise UsageError(
            f"--dir must be an absolute path on the stack's file system, not {directory!r}"
        )
    fsap = args.fsap or env.get(ENV_FSAP) or None
    if fsap is not None and not fsap.startswith("fsap-"):
        raise UsageError(f"--fsap must be an EFS access point id (fsap-...), not {fsap!r}")
    return SubmitSettings(
        s3upload=s3upload,
        delete_after=delete_after,
        task_queue=args.task_queue or env.get(ENV_TASK_QUEUE) or None,
        task_queue_fallback=args.task_queue_fallback or env.get(ENV_TASK_QUEUE_FALLBACK) or None,
        fsap=fsap,
        fsap_from_flag=bool(args.fsap),
        dir=directory,
        copy_input_files=bool(args.copy_input_files),
        config=_with_env_flags(
            run_config(args.cfg, env, args.no_env, args.no_cache, args.runtime_defaults),
            args.env,
        ),
        tags=parse_tags(args.tags, env.get(ENV_JOB_TAGS)),
        timeout_seconds=parse_timeout(args.timeout) if args.timeout is not None else None,
        name=args.name,
        task=args.task,
        stage_inputs=not getattr(args, "no_stage", False),
    )


def _with_env_flags(config: dict[str, str], items: list[str]) -> dict[str, str]:
    """--env: values resolved here, from this command's environment (the run's functions never
    pass their own through: core/options.py)."""
    if not items:
        return config
    from miniwdl_serverless.cli.local_run import task_env_config

    return task_env_config(config, items, None)


def run_config(  # noqa: C901, PLR0913 - one branch per source of settings, as miniwdl-aws
    cfg_items: list[str],
    env: Mapping[str, str],
    no_env: bool,
    no_cache: bool,
    runtime_defaults: str | None,
) -> dict[str, str]:
    """miniwdl settings for the run, later sources winning: --cfg files/KEY=VALUE, then every
    MINIWDL__* variable (unless --no-env), then --runtime-defaults and --no-cache."""
    config: dict[str, str] = {}
    for item in cfg_items or []:
        if os.path.isfile(item):
            config.update(read_cfg_file(item))
        elif "=" in item and "__" in item.partition("=")[0]:
            key, _, value = item.partition("=")
            config[_config_key(key)] = value
        else:
            raise UsageError(
                f"--cfg wants a miniwdl .cfg file or SECTION__KEY=VALUE; cannot read {item!r}"
            )
    if not no_env:
        for key, value in env.items():
            if (
                key.upper().startswith("MINIWDL__")
                and key.upper() not in LAUNCH_ONLY
                and key.count("__") >= 2
            ):
                config[_config_key(key)] = value
    if runtime_defaults is not None:
        try:
            defaults = json.loads(_runtime_defaults_text(runtime_defaults))
        except ValueError as exn:
            raise UsageError(f"--runtime-defaults must be a JSON object: {exn}") from exn
        if not isinstance(defaults, dict):
            raise UsageError(
                '--runtime-defaults must be a JSON object, e.g. \'{"docker": "ubuntu:22.04"}\''
            )
        merged: dict[str, Any] = {}
        if "TASK_RUNTIME__DEFAULTS" in config:
            try:
                merged = dict(json.loads(config["TASK_RUNTIME__DEFAULTS"]))
            except (ValueError, TypeError):
                merged = {}
        merged.update(defaults)
        config["TASK_RUNTIME__DEFAULTS"] = json.dumps(merged)
    if no_cache:
        config["CALL_CACHE__GET"] = "false"
        config["CALL_CACHE__PUT"] = "false"
    return config


def _runtime_defaults_text(value: str) -> str:
    """--runtime-defaults as miniwdl takes it: a literal JSON object, or a file holding one
    (anything else is parsed as JSON, for the error naming what is wrong)."""
    if value.lstrip().startswith("{") or not os.path.isfile(value):
        return value
    try:
        with open(value, encoding="utf-8") as infile:
            return infile.read()
    except OSError as exn:
        raise UsageError(
            f"--runtime-defaults wants a JSON object or a file holding one; cannot read {value!r}"
        ) from exn


def read_cfg_file(path: str) -> dict[str, str]:
    """A miniwdl .cfg file (INI) as SECTION__KEY settings, parsed as miniwdl's config loader
    parses one (configparser's defaults: %(name)s interpolation, %% for a literal %); quotes
    and $VARIABLES are left for the run's loader, which reads every value that way."""
    parser = configparser.ConfigParser()
    try:
        with open(path) as infile:
            parser.read_file(infile)
        return {
            _config_key(f"{section}__{key}"): value
            for section in parser.sections()
            for key, value in parser.items(section)
        }
    except (OSError, configparser.Error) as exn:
        raise UsageError(f"cannot read --cfg {path}: {exn}") from exn


def _config_key(key: str) -> str:
    key = key.strip().upper()
    key = key[len("MINIWDL__") :] if key.startswith("MINIWDL__") else key
    if not re.match(r"^[A-Z0-9_]+__[A-Z0-9_]+$", key):
        raise UsageError(f"not a miniwdl setting (SECTION__KEY): {key!r}")
    return key


def parse_tags(items: list[str] | None, env_json: str | None) -> dict[str, str]:
    """--tags k=v (repeatable), over miniwdl-aws's [aws] job_tags JSON from the environment."""
    tags: dict[str, str] = {}
    if env_json:
        try:
            base = json.loads(env_json)
        except ValueError as exn:
            raise UsageError(f"{ENV_JOB_TAGS} must be a JSON object: {exn}") from exn
        if not isinstance(base, dict):
            raise UsageError(f"{ENV_JOB_TAGS} must be a JSON object")
        tags.update({str(k): str(v) for k, v in base.items()})
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tags wants KEY=VALUE, got {item!r}")
        if key.strip().lower().startswith("aws:"):
            raise UsageError(f"tag keys may not start with 'aws:': {key!r}")
        tags[key.strip()] = value
    return tags


def parse_timeout(text: str) -> int:
    """Seconds, or a number with s/m/h/d."""
    match = _TIMEOUT.match(str(text).strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise UsageError(
            f"--timeout wants a positive number of seconds (or 30m, 12h, 2d), not {text!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


# ---- the workflow and its inputs -----------------------------------------------------------


@dataclass
class LoadedWorkflow:
    doc: Any  # WDL.Document
    uri: str  # what the start function will load: a URI, or "" until a local one is staged
    archive: bytes | None = None  # the miniwdl zip to stage (local workflows)


def is_uri(workflow: str) -> bool:
    return workflow.startswith(("s3://", "https://", "http://"))


def load_workflow(workflow: str, no_outside_imports: bool = False) -> LoadedWorkflow:
    """Parse and typecheck the workflow here, so mistakes fail on the laptop. A local .wdl is
    packaged with its imports as a miniwdl zip; a local .zip is sent as it is; URIs pass through.
    ``no_outside_imports``: miniwdl's rule for a local .wdl (imports under its directory)."""
    import WDL
    import WDL.CLI

    from miniwdl_serverless.adapters.sources import UriSources
    from miniwdl_serverless.core.wdl_source import fetch_and_load  # installs wdl_extensions

    fetch = UriSources().fetch
    if is_uri(workflow):
        doc, _ = fetch_and_load(workflow, None, fetch)
        return LoadedWorkflow(doc, workflow)
    path = os.path.abspath(os.path.expanduser(workflow))
    if not os.path.isfile(path):
        raise UsageError(f"cannot read workflow {workflow}: no such file")
    if path.endswith(".zip"):
        doc, _ = fetch_and_load(path, None, fetch)
        with open(path, "rb") as infile:
            return LoadedWorkflow(doc, "", infile.read())
    if no_outside_imports:
        WDL.load(path, read_source=WDL.CLI.make_read_source(True))
    doc, _ = fetch_and_load(path, None, fetch)
    with tempfile.TemporaryDirectory(prefix="msls_submit_") as tmp:
        archive = os.path.join(tmp, os.path.basename(path) + ".zip")
        WDL.Zip.build(doc, archive, quiet_logger(), meta={"miniwdl_serverless": True})
        with open(archive, "rb") as infile:
            return LoadedWorkflow(doc, "", infile.read())


def archive_paths(doc: Any) -> dict[str, str]:
    """Where each document of ``doc``'s tree goes in its miniwdl zip (miniwdl's own rule,
    WDL.Zip.build_zip_paths) -> the document's path here: to name the user's files in errors."""
    import WDL.Zip

    documents: dict[str, Any] = {}
    pending = [doc]
    while pending:
        current = pending.pop()
        if current.pos.abspath not in documents:
            documents[current.pos.abspath] = current
            pending += [imported.doc for imported in current.imports if imported.doc]
    main_dir = os.path.dirname(doc.pos.abspath)
    silent = logging.getLogger("miniwdl_serverless.cli.archive_paths")
    silent.setLevel(logging.ERROR)  # Zip.build warns of outside imports already
    inside = WDL.Zip.build_zip_paths(main_dir, documents, silent)
    return {path: abspath for abspath, path in inside.items()}


def parse_inputs(  # noqa: PLR0913 - miniwdl run's input options, one each
    doc: Any,
    inputs: list[str],
    input_file: str | None,
    empty: list[str],
    none: list[str],
    task: str | None,
) -> tuple[Any, Any]:
    """`miniwdl run`'s input syntax and checks, except that File/Directory inputs are not looked
    for here: whether each is on the stack's file system, a URI or a file on this machine (to
    be staged) is for cli/staging.py to decide. Returns (target, miniwdl value environment)."""
    import WDL.CLI

    with contextlib.redirect_stderr(
        io.StringIO()
    ):  # miniwdl prints the inputs' help; one line is enough
        target, env, _ = WDL.CLI.runner_input(
            doc,
            inputs,
            input_file,
            empty,
            none,
            task=task,
            downloadable=lambda _uri, _directory: True,  # decided later, in staging
            root="/",
        )
    return target, env


def input_json(target: Any, env: Any) -> dict[str, Any]:
    """The inputs as miniwdl run's JSON (namespaced by the workflow's name, as runner_input
    makes it)."""
    import WDL

    namespace = target.name if isinstance(target, WDL.Workflow) else ""
    return dict(WDL.values_to_json(env, namespace=namespace))


def execution_name(workflow: str, name: str | None, target_name: str) -> str:
    """Step Functions execution name (the run id): --name or the workflow's name, made unique
    with a random suffix (as miniwdl-aws makes job names unique)."""
    base = name or target_name or os.path.basename(workflow).split(".")[0]
    base = re.sub(r"[^A-Za-z0-9_-]", "_", base).strip("_-") or "run"
    suffix = base64.b32encode(secrets.token_bytes(5)).decode().lower()
    return f"{base[:71]}-{suffix}"


def execution_input(
    settings: SubmitSettings, workflow_uri: str, inputs: dict[str, Any], task: str | None
) -> dict[str, Any]:
    """The execution input (options.RunOptions fields) for these settings."""
    data: dict[str, Any] = {"workflow": workflow_uri, "inputs": inputs}
    if task:
        data["task"] = task
    for key in ("dir", "s3upload", "delete_after", "task_queue", "task_queue_fallback", "name"):
        value = getattr(settings, key)
        if value:
            data[key] = value
    if settings.copy_input_files:
        data["copy_input_files"] = True
    if settings.config:
        data["config"] = dict(settings.config)
    if settings.tags:
        data["tags"] = dict(settings.tags)
    if settings.timeout_seconds:
        data["timeout_seconds"] = settings.timeout_seconds
    return data


def quiet_logger() -> logging.Logger:
    logger = logging.getLogger("miniwdl_serverless.cli.submit")
    logger.setLevel(logging.WARNING)
    return logger
