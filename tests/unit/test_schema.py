"""The execution-input JSON Schema is the one source of truth: valid draft-07, in step with
RunOptions, the README's and examples' inputs pass, and each violation is named in plain words."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from miniwdl_serverless.core.errors import BadSubmission
from miniwdl_serverless.core.options import (
    RunOptions,
    execution_input_schema,
    parse_run_options,
    schema_path,
    schema_problem,
)

ROOT = Path(__file__).resolve().parents[2]


def reference_valid(data: Any) -> bool:
    """The same verdict from the reference implementation (jsonschema), not fastjsonschema."""
    return jsonschema.Draft7Validator(execution_input_schema()).is_valid(data)


def test_schema_is_valid_draft_07_and_ships_in_the_package():
    jsonschema.Draft7Validator.check_schema(execution_input_schema())
    assert execution_input_schema()["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema_path().is_relative_to(ROOT / "layers" / "runtime" / "miniwdl_serverless")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject  # package data for non-editable installs


def test_schema_fields_are_the_run_options():
    assert set(execution_input_schema()["properties"]) == {f.name for f in fields(RunOptions)}


def readme_inputs() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    return [b for b in blocks if isinstance(b, dict) and {"workflow", "workflow_source"} & set(b)]


def test_readme_examples_and_example_file_validate():
    examples = readme_inputs()
    assert examples, "the README shows at least one execution input"
    examples.append(json.loads((ROOT / "examples" / "execution_input.json").read_text()))
    for data in examples:
        assert schema_problem(data) is None, data
        assert reference_valid(data)
        parse_run_options(data)


VALID = [
    {"workflow": "/mnt/efs/wf.wdl"},
    {"workflow": "https://example.org/wf.wdl", "inputs": {"wf.x": 1}},
    {"workflow_source": "version 1.0\nworkflow w {}", "task": "t", "dir": "/mnt/efs/runs/."},
    {"workflow": "s3://b/wf.wdl", "s3upload": "s3://my.bucket-1/out", "delete_after": "failure"},
    {
        "workflow": "s3://b/wf.wdl",
        "config": {"MINIWDL__CALL_CACHE__GET": "true"},
        "tags": {"team:a/b": "x" * 256},
    },
    {"workflow": "s3://b/wf.wdl", "timeout_seconds": 31536000, "copy_input_files": True},
    # optional fields may be null (as a serialized RunOptions has them)
    {
        "workflow": "s3://b/wf.wdl",
        "workflow_source": None,
        "dir": None,
        "delete_after": None,
        "tags": None,
    },
]


@pytest.mark.parametrize("data", VALID)
def test_valid_inputs(data):
    assert schema_problem(data) is None
    assert reference_valid(data)
    options = parse_run_options(data)
    assert options.workflow == data.get("workflow")


def test_integral_float_timeout_becomes_an_int():
    assert parse_run_options({"workflow": "/w.wdl", "timeout_seconds": 60.0}).timeout_seconds == 60


# input → the exact message (field, problem in plain words, offending value)
INVALID = [
    ("not json object", "the execution input must be a JSON object"),
    ({"inputs": {}}, "give exactly one of 'workflow' (URI or EFS path) or 'workflow_source'"),
    ({"workflow": None, "workflow_source": None}, "give exactly one of"),
    (
        {"workflow": "wf.wdl"},
        'workflow: must be an s3://, https:// URI or an absolute path, got "wf.wdl"',
    ),
    ({"workflow": 3}, "give exactly one of"),
    (
        {"workflow_source": ""},
        'workflow_source: must be the WDL source text (a non-empty string), got ""',
    ),
    ({"workflow": "/w.wdl", "input": {}}, "unknown field(s) in execution input: input"),
    ({"workflow": "/w.wdl", "inputs": "x=1"}, "inputs: must be a JSON object of inputs"),
    ({"workflow": "/w.wdl", "dir": "runs"}, 'dir: must be an absolute path, got "runs"'),
    (
        {"workflow": "/w.wdl", "s3upload": "x"},
        's3upload: must be an s3://bucket/prefix URI, got "x"',
    ),
    ({"workflow": "/w.wdl", "s3upload": "s3://B/x"}, "s3upload: must be an s3://bucket/prefix URI"),
    (
        {"workflow": "/w.wdl", "delete_after": "never", "s3upload": "s3://bkt/x"},
        'delete_after: must be one of success, failure, always, got "never"',
    ),
    ({"workflow": "/w.wdl", "delete_after": "success"}, "delete_after requires s3upload"),
    (
        {"workflow": "/w.wdl", "delete_after": "success", "s3upload": None},
        "s3upload: must be given: delete_after requires s3upload",
    ),
    (
        {"workflow": "/w.wdl", "copy_input_files": 1},
        "copy_input_files: must be true or false, got 1",
    ),
    (
        {"workflow": "/w.wdl", "timeout_seconds": 31536001},
        "timeout_seconds: must be an integer between 1 and 31536000, got 31536001",
    ),
    ({"workflow": "/w.wdl", "timeout_seconds": "60"}, "timeout_seconds: must be an integer"),
    ({"workflow": "/w.wdl", "timeout_seconds": None}, "timeout_seconds: must be an integer"),
    (
        {"workflow": "/w.wdl", "config": {"task_runtime__defaults": "{}"}},
        "config: keys must look like SECTION__KEY (upper case, e.g. TASK_RUNTIME__DEFAULTS), "
        'got "task_runtime__defaults"',
    ),
    (
        {"workflow": "/w.wdl", "config": {"A__B": {"x": 1}}},
        "config.A__B: must be a string (JSON settings as text",
    ),
    ({"workflow": "/w.wdl", "tags": {"": "v"}}, "tags: invalid tag key"),
    (
        {"workflow": "/w.wdl", "tags": {"k": "v" * 257}},
        "tags.k: invalid tag value: values are strings of up to 256 characters",
    ),
    ({"workflow": "/w.wdl", "task": ""}, "task: must be the name of a task"),
    (
        {"workflow": "/w.wdl", "task_queue": 5},
        "task_queue: must be a Batch job queue name or ARN, got 5",
    ),
]


@pytest.mark.parametrize("data, message", INVALID)
def test_each_violation_is_named(data, message):
    assert not reference_valid(data)  # the reference implementation agrees it is invalid
    with pytest.raises(BadSubmission) as caught:
        parse_run_options(data)
    assert message in str(caught.value)
    assert caught.value.name == "InvalidSubmission"
    assert caught.value.info == {"error": "InvalidSubmission", "message": str(caught.value)}


def test_long_values_are_shortened_in_messages():
    problem = schema_problem({"workflow": "w" * 500})
    assert problem is not None and problem.endswith("...") and len(problem) < 200
