"""Hostile execution inputs (issue 9): every field of the execution input's schema given the
wrong type, huge, unicode, or a path that leaves the EFS root, alone and in combination.

Property: ``start_run`` (and Finish after it) never raises; either the run starts — and then
plays to its end — or it fails before any Batch job with a named error told to Step Functions
and kept in the run record; nothing outside the EFS root is read into an answer, written,
changed or deleted; no store item exceeds DynamoDB's 400 KB."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from miniwdl_serverless.controller.finish import finish_run
from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.core.records import RUN_FAILED

from .strategies import (
    PATHS,
    SPECIAL_TEXT,
    fill,
    hostile_text,
    json_values,
    path_templates,
)
from .world import DYNAMODB_ITEM_LIMIT, SECRET, Confined, assert_clear_failure, measured

WDL = """
version 1.0
workflow w {
  input {
    File? f
    String? s
    Array[File] fs = []
    Array[String] xs = []
    Int n = 1
  }
  call t { input: s = s, n = n }
  output { String out = t.out  Int count = length(fs) + length(xs) }
}
task t {
  input { String? s  Int n }
  command <<< echo "~{s}" ~{n} >>>
  output { String out = read_string(stdout()) }
}
"""
NO_CALLS = "version 1.0\nworkflow hello { output { Int x = 1 } }\n"
SOURCES = [WDL, NO_CALLS, "version 1.0\nworkflow", "task {", "version 9.9\n", "\x00" * 10]
STEP_FUNCTIONS_INPUT_LIMIT = 256 * 1024
STARTED_AT = "2026-12-01T10:00:00Z"

hostile_inputs = st.fixed_dictionaries(
    {},
    optional={
        "w.f": path_templates,
        "w.s": hostile_text,
        "w.fs": st.lists(path_templates, max_size=3),
        "w.xs": st.lists(hostile_text, max_size=3),
        "w.n": st.integers() | st.sampled_from([10**400, 1.5, True]),
        "f": path_templates,
        "w.nope": json_values,
        "w.t.s": hostile_text,
    },
)
# Per field: the right JSON type with hostile content, most often; any JSON value otherwise
typed = {
    "workflow_source": st.sampled_from(SOURCES) | hostile_text,
    "workflow": st.sampled_from(
        ["{efs}/data/in.txt", "{efs}/data/secret.txt", "{efs}/data/environ", "{outside}/dir"]
    )
    | path_templates,
    "inputs": hostile_inputs,
    "task": st.sampled_from(["t", "w", "nope", "../t"]) | hostile_text,
    "dir": path_templates,
    "s3upload": st.sampled_from(["s3://bucket/out/", "s3://bucket", "s3://bucket/a/../../"])
    | hostile_text.map(lambda text: "s3://bucket/" + text),
    "delete_after": st.sampled_from(["success", "failure", "always", "never"]),
    "copy_input_files": st.booleans(),
    "config": st.dictionaries(
        st.sampled_from(
            [
                "TASK_RUNTIME__DEFAULTS",
                "SERVERLESS__READ_LIMIT",
                "SERVERLESS__MAX_SCATTER_WIDTH",
                "FILE_IO__ROOT",
                "MINIWDL__FILE_IO__ALLOW_ANY_INPUT",
                "FILE_IO__COPY_INPUT_FILES",
                "TASK_RUNTIME__COMMAND_SHELL",
                "task_runtime__defaults",
            ]
        ),
        st.sampled_from(
            ['{"maxRetries": 99999999}', "-1", "0", "{", '{"docker": "../x"}', "/bin/false"]
        )
        | hostile_text,
        max_size=3,
    ),
    "task_queue": hostile_text,
    "task_queue_fallback": hostile_text,
    "timeout_seconds": st.sampled_from([1, 0, -1, 31536001, 1.5, 60.0, 10**400]),
    "tags": st.dictionaries(hostile_text, hostile_text, max_size=3),
    "name": hostile_text,
    "unknown": json_values,
}
BASE = {"workflow_source": WDL, "dir": "{efs}/runs", "inputs": {"w.s": "hi"}}


@st.composite
def execution_inputs(draw: st.DrawFn) -> Any:
    """A valid input with one to three fields made hostile (or dropped), or any JSON value."""
    if draw(st.integers(0, 19)) == 0:
        return draw(json_values)
    data: dict[str, Any] = dict(BASE)
    for name in draw(st.lists(st.sampled_from(sorted(typed)), min_size=1, max_size=3)):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            data.pop(name, None)
        elif choice == 1:
            data[name] = draw(json_values)
        else:
            data[name] = draw(typed[name])
    if "workflow" in data and draw(st.booleans()):
        data.pop("workflow_source", None)
    return data


def start_hostile(world: Confined, execution_input: Any) -> Any:
    harness = world.harness()
    store = measured(harness)
    harness.run_id = "hostile-run"
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{harness.run_id}"
    result = start_run(execution_input, harness.token, arn, STARTED_AT, harness.ports)
    harness.work.drain()
    return harness, store, result


def check_start(world: Confined, execution_input: Any) -> str:
    harness, store, result = start_hostile(world, execution_input)
    assert isinstance(result, dict) and result.get("run_id") == harness.run_id
    run = harness.store.get_run(harness.run_id)
    assert run is not None
    if result.get("failed"):
        assert harness.batch.jobs == {}, "a job was submitted for a run that failed to plan"
    else:
        assert run.run_dir and Path(run.run_dir).resolve().is_relative_to(world.efs.resolve())
        harness.play()
    outcome = "run " + str(harness.run().status)
    if harness.run().status == RUN_FAILED:
        outcome = "failed: " + assert_clear_failure(harness)[0]
    state: dict[str, Any] = {"result": {"run_id": harness.run_id}}
    if harness.answer() is not None and harness.answer()[0] == "failure":
        name, cause = harness.answer()[1]
        state = {"error": {"Error": name, "Cause": cause}}
    finished = finish_run(state, harness.run_id, harness.ports)
    assert finished["status"] in ("succeeded", "failed"), finished
    assert SECRET not in json.dumps(finished, default=str)
    assert world.untouched(), "something outside the EFS root changed"
    assert store.largest <= DYNAMODB_ITEM_LIMIT, (store.largest, store.where)
    return outcome


@given(execution_inputs())
def test_hostile_execution_inputs(execution_input):
    world = Confined.make(Path(tempfile.mkdtemp(prefix="hostile-")))
    try:
        execution_input = fill(execution_input, str(world.efs), str(world.outside))
        size = len(json.dumps(execution_input, default=str).encode("utf-8", "surrogatepass"))
        assume(size <= STEP_FUNCTIONS_INPUT_LIMIT)  # Step Functions refuses larger inputs
        event(check_start(world, execution_input))
    finally:
        world.remove()


# ---- a corpus: each field alone, made hostile -----------------------------------------------

CORPUS: list[tuple[str, Any]] = (
    [("dir", path) for path in PATHS]
    + [("workflow", path) for path in PATHS]
    + [("inputs", {"w.f": path}) for path in PATHS]
    + [("inputs", {"w.fs": [path, "{efs}/data/in.txt"]}) for path in PATHS]
    + [(name, text) for name in ("task", "name", "task_queue", "s3upload") for text in SPECIAL_TEXT]
    + [("inputs", {"w.s": text}) for text in SPECIAL_TEXT]
    + [("tags", {text: "v"}) for text in SPECIAL_TEXT]
    + [
        ("config", {"TASK_RUNTIME__DEFAULTS": json.dumps({"docker": text})})
        for text in SPECIAL_TEXT
    ]
    + [("workflow_source", text) for text in SPECIAL_TEXT]
)


@pytest.mark.parametrize("name, value", CORPUS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CORPUS)])
def test_execution_input_corpus(tmp_path, name, value):
    world = Confined.make(tmp_path)
    execution_input = fill({**BASE, name: value}, str(world.efs), str(world.outside))
    if name == "workflow":
        del execution_input["workflow_source"]
    try:
        check_start(world, execution_input)
    finally:
        world.remove()


def test_found_1_an_error_quoting_a_huge_input_fits_in_a_store_item(tmp_path):
    """Before: the InputError listing 1,000 missing inputs (236 KB of execution input) made a
    run item of 470 KB — DynamoDB refuses it, and the start failed with no error recorded."""
    world = Confined.make(tmp_path)
    missing = [f"{world.efs}/missing/{'x' * 200}{i}" for i in range(1000)]
    inputs = {"workflow_source": WDL, "dir": str(world.efs / "runs"), "inputs": {"w.fs": missing}}
    harness, store, result = start_hostile(world, inputs)
    assert result["failed"] == "InputError" and harness.batch.jobs == {}
    _, info = assert_clear_failure(harness)
    assert info["message"].startswith("input file or directory not found: ")
    assert "more characters)" in info["message"]
    assert store.largest <= DYNAMODB_ITEM_LIMIT, (store.largest, store.where)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("field", ["inputs", "tags", "config", "unknown"])
def test_found_5_json_nested_too_deeply_fails_the_start_clearly(tmp_path, field):
    """Before: 900 levels of lists raised RecursionError out of start_run (the schema's
    validator, then json.dumps of the input into the run record)."""
    world = Confined.make(tmp_path)
    execution_input = {**fill(BASE, str(world.efs), ""), field: {"A__B": nested(900)}}
    harness, _, result = start_hostile(world, execution_input)
    assert result["failed"] == "InvalidSubmission" and harness.batch.jobs == {}
    _, info = assert_clear_failure(harness)
    assert "more than 100 levels deep" in info["message"]
    check_start(Confined.make(tmp_path / "again"), {**BASE, "inputs": {"w.xs": nested(99)}})
