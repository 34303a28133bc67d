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

from .strategies import fill, hostile_text, json_values, path_or_hostile, path_templates
from .world import DYNAMODB_ITEM_LIMIT, SECRET, Confined, assert_clear_failure, measured

pytestmark = pytest.mark.xdist_group("hostile")

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
    return harness, store, result


def check_start(world: Confined, execution_input: Any) -> None:
    harness, store, result = start_hostile(world, execution_input)
    assert isinstance(result, dict) and result.get("run_id") == harness.run_id
    run = harness.store.get_run(harness.run_id)
    assert run is not None
    if result.get("failed"):
        assert harness.batch.jobs == {}, "a job was submitted for a run that failed to plan"
    else:
        assert run.run_dir and Path(run.run_dir).resolve().is_relative_to(world.efs.resolve())
        harness.play()
    if harness.run().status == RUN_FAILED:
        event("failed: " + assert_clear_failure(harness)[0])
    else:
        event("run " + str(harness.run().status))
    state: dict[str, Any] = {"result": {"run_id": harness.run_id}}
    if harness.answer() is not None and harness.answer()[0] == "failure":
        name, cause = harness.answer()[1]
        state = {"error": {"Error": name, "Cause": cause}}
    finished = finish_run(state, harness.run_id, harness.ports)
    assert finished["status"] in ("succeeded", "failed"), finished
    assert SECRET not in json.dumps(finished, default=str)
    assert world.untouched(), "something outside the EFS root changed"
    assert store.largest <= DYNAMODB_ITEM_LIMIT, (store.largest, store.where)


@given(execution_inputs())
def test_hostile_execution_inputs(execution_input):
    with tempfile.TemporaryDirectory(prefix="hostile-") as base:
        world = Confined.make(Path(base))
        execution_input = fill(execution_input, str(world.efs), str(world.outside))
        size = len(json.dumps(execution_input, default=str).encode("utf-8", "surrogatepass"))
        assume(size <= STEP_FUNCTIONS_INPUT_LIMIT)  # Step Functions refuses larger inputs
        check_start(world, execution_input)
