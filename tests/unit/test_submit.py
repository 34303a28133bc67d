"""`submit`'s pure part: flags over miniwdl-aws's environment variables, run configuration,
tags, timeouts, inputs with miniwdl's rules, the execution input (valid for options.py)."""

from __future__ import annotations

import argparse
import json

import pytest

from miniwdl_serverless.cli import submit
from miniwdl_serverless.cli.main import parse_remote_args
from miniwdl_serverless.cli.submit import UsageError, resolve_settings
from miniwdl_serverless.core.options import parse_run_options


def args(*argv: str) -> argparse.Namespace:
    return parse_remote_args("submit", ["w.wdl", *argv])


def test_flags_win_over_environment():
    env = {
        "MINIWDL__AWS__TASK_QUEUE": "env-q",
        "MINIWDL__AWS__S3_UPLOAD_FOLDER": "s3://env-bucket/x/",
    }
    settings = resolve_settings(args("--task-queue", "flag-q"), env)
    assert settings.task_queue == "flag-q"
    assert settings.s3upload == "s3://env-bucket/x/"
    assert (
        resolve_settings(args("--s3upload", "s3://flag-bucket/y"), env).s3upload
        == "s3://flag-bucket/y"
    )


def test_delete_after_accepts_the_folder_from_the_environment():
    """miniwdl-aws checked for --s3upload before reading its variable; we read it first."""
    settings = resolve_settings(
        args("--delete-after", "success"), {"MINIWDL__AWS__S3_UPLOAD_FOLDER": "s3://bkt/f/"}
    )
    assert settings.delete_after == "success"
    env = {
        "MINIWDL__AWS__S3_UPLOAD_FOLDER": "s3://bkt/f/",
        "MINIWDL__AWS__DELETE_AFTER_S3_UPLOAD": "always",
    }
    assert resolve_settings(args(), env).delete_after == "always"
    with pytest.raises(UsageError, match="needs an upload folder"):
        resolve_settings(args("--delete-after", "failure"), {})
    with pytest.raises(UsageError, match="needs an upload folder"):
        resolve_settings(args(), {"MINIWDL__AWS__DELETE_AFTER_S3_UPLOAD": "always"})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--s3upload", "bucket/folder"], "s3://bucket/folder URI"),
        (["--s3upload", "s3://Bad_Bucket/x"], "s3://bucket/folder URI"),
        (["--dir", "relative/runs"], "absolute path"),
        (["--fsap", "fs-123"], "access point id"),
        (["--tags", "novalue"], "KEY=VALUE"),
        (["--tags", "aws:x=1"], "may not start with 'aws:'"),
        (["--timeout", "0"], "positive"),
        (["--runtime-defaults", "{oops"], "JSON object"),
        (["--cfg", "/nonexistent.cfg"], "cannot read"),
    ],
)
def test_bad_options(argv, message):
    with pytest.raises(UsageError, match=message):
        resolve_settings(args(*argv), {})


def test_environment_becomes_run_configuration_unless_no_env(tmp_path):
    cfg = tmp_path / "my.cfg"
    cfg.write_text(
        '[task_runtime]\ndefaults = {"docker": "ubuntu:20.04", "cpu": 2}\n'
        "[call_cache]\nget = true\n"
    )
    env = {
        "MINIWDL__CALL_CACHE__GET": "false",  # beats the file
        "MINIWDL__AWS__TASK_QUEUE": "q",  # a launch option, not a setting
        "MINIWDL__AWS__S3_UPLOAD_FOLDER": "s3://bkt/f/",
        "MINIWDL__FILE_IO__ROOT": "/mnt/efs",
        "OTHER": "x",
    }
    settings = resolve_settings(
        args("--cfg", str(cfg), "--runtime-defaults", '{"cpu": 4, "maxRetries": 1}', "--no-cache"),
        env,
    )
    assert (
        settings.config["CALL_CACHE__GET"] == "false"
        and settings.config["CALL_CACHE__PUT"] == "false"
    )
    assert json.loads(settings.config["TASK_RUNTIME__DEFAULTS"]) == {
        "docker": "ubuntu:20.04",
        "cpu": 4,
        "maxRetries": 1,
    }
    assert not any(k.startswith("AWS__") or k.startswith("FILE_IO") for k in settings.config)
    quiet = resolve_settings(args("--no-env"), env)
    assert quiet.config == {}
    assert resolve_settings(args("--cfg", "scheduler__call_concurrency=8"), {}).config == {
        "SCHEDULER__CALL_CONCURRENCY": "8"
    }


def test_tags_and_timeout():
    settings = resolve_settings(
        args("--tags", "team=x", "--tags", "cost=1=2", "--timeout", "2h"),
        {"MINIWDL__AWS__JOB_TAGS": '{"team": "base", "env": "dev"}'},
    )
    assert settings.tags == {"team": "x", "env": "dev", "cost": "1=2"}
    assert settings.timeout_seconds == 7200
    assert submit.parse_timeout("90") == 90 and submit.parse_timeout("3d") == 3 * 86400


def test_execution_name_is_unique_and_valid():
    names = {submit.execution_name("/x/my.wdl", None, "my_wf") for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert name.startswith("my_wf-") and len(name) <= 80
    assert submit.execution_name("w.wdl", "a name/with:odd*chars" * 10, "w").startswith(
        "a_name_with_odd_chars"
    )
    assert len(submit.execution_name("w.wdl", "x" * 200, "w")) == 80


def test_execution_input_is_a_valid_run_options():
    settings = resolve_settings(
        args(
            "--s3upload",
            "s3://bkt/f",
            "--delete-after",
            "always",
            "--dir",
            "/mnt/efs/runs",
            "--copy-input-files",
            "--tags",
            "a=b",
            "--timeout",
            "60",
            "--name",
            "n",
            "--task-queue",
            "q",
            "--runtime-defaults",
            "{}",
        ),
        {},
    )
    data = submit.execution_input(settings, "s3://bucket/wdl/x.zip", {"w.n": 1}, "t")
    options = parse_run_options(data)
    assert (
        options.workflow == "s3://bucket/wdl/x.zip"
        and options.task == "t"
        and options.inputs == {"w.n": 1}
    )
    assert (
        options.s3upload == "s3://bkt/f"
        and options.delete_after == "always"
        and options.dir == "/mnt/efs/runs"
    )
    assert options.copy_input_files and options.tags == {"a": "b"} and options.timeout_seconds == 60
    assert options.task_queue == "q" and options.config == {"TASK_RUNTIME__DEFAULTS": "{}"}


def test_local_workflow_is_packaged_with_its_imports(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "t.wdl").write_text(
        "version 1.0\ntask t { input { Int x } command <<< echo ~{x} >>> }\n"
    )
    (tmp_path / "main.wdl").write_text(
        'version 1.0\nimport "lib/t.wdl"\n'
        "workflow main { input { File f  Int x } call t.t { input: x = x } }\n"
    )
    loaded = submit.load_workflow(str(tmp_path / "main.wdl"))
    assert loaded.uri == "" and loaded.archive and loaded.archive[:2] == b"PK"
    assert submit.staged_key(loaded.archive).startswith("wdl/") and submit.staged_key(
        loaded.archive
    ).endswith(".zip")
    target, env = submit.parse_inputs(
        loaded.doc, ["x=3", "f=/mnt/efs/data/reads.bam"], None, [], [], None
    )
    assert target.name == "main" and submit.input_json(target, env) == {
        "main.x": 3,
        "main.f": "/mnt/efs/data/reads.bam",
    }  # not looked for here
    # nor is a relative path: staging (cli/staging.py) decides where each path is
    target, env = submit.parse_inputs(loaded.doc, ["x=3", "f=reads.bam"], None, [], [], None)
    assert submit.input_json(target, env)["main.f"] == "reads.bam"
    # a zip given as the workflow is sent as it is
    zipped = tmp_path / "main.zip"
    zipped.write_bytes(loaded.archive)
    assert submit.load_workflow(str(zipped)).archive == loaded.archive
