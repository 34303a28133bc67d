"""The pure decisions behind miniwdl parity (issue 12): input path spelling, the run's target,
--env into [task_runtime] env, and miniwdl's `_mock_interruptions` rule."""

from __future__ import annotations

import json

import pytest
import WDL

from miniwdl_serverless.controller.context import run_target
from miniwdl_serverless.controller.planning import normal_path
from miniwdl_serverless.core.decisions import (
    MOCK_INTERRUPTION_TAG,
    TaskSettings,
    mock_interruption_tags,
)
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.options import schema_problem, with_task_env


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/d/x", "/d/x"),
        ("/d/x/", "/d/x"),
        ("/d/./x", "/d/x"),
        ("/d//x", "/d/x"),
        ("/e/../d/x", "/d/x"),
        ("//d/x", "/d/x"),
        ("///d/x", "/d/x"),
        ("/../d", "/d"),
    ],
)
def test_normal_path(given, kept):
    assert normal_path(given) == kept


TASK = "task {name} {{ command <<< true >>> }}\n"


def doc(text: str) -> WDL.Document:
    return WDL.parse_document("version 1.0\n" + text)


def test_run_target_as_miniwdl_runner_exe():
    lone = doc(TASK.format(name="a"))
    assert run_target(lone, None).name == "a"
    two = doc(TASK.format(name="a") + TASK.format(name="b"))
    assert run_target(two, "b").name == "b"
    with pytest.raises(RunError, match="several tasks and no workflow"):
        run_target(two, None)
    with pytest.raises(RunError, match="no task named c"):
        run_target(two, "c")
    with pytest.raises(RunError, match="empty WDL document"):
        run_target(doc(""), None)
    wf = doc(TASK.format(name="a") + "workflow w { call a }\n")
    wf.typecheck()
    assert isinstance(run_target(wf, None), WDL.Tree.Workflow)
    assert run_target(wf, "a").name == "a"


def test_env_flags_set_and_pass_through_from_the_given_environment():
    config, skipped = with_task_env(
        {"--cfg": "x"}, ["A=1", "B", "C", "D=x=y"], {"B": "from-here"}, None
    )
    assert json.loads(config["MINIWDL__TASK_RUNTIME__ENV"]) == {
        "A": "1",
        "B": "from-here",
        "D": "x=y",
    }
    assert skipped == ["C"]


def test_env_flags_merge_over_the_configured_env():
    current = json.dumps({"KEEP": 1, "PASS": None, "GONE": None, "A": "old"})
    config, skipped = with_task_env({}, ["A=new"], {"PASS": "p"}, current)
    env = json.loads(config["MINIWDL__TASK_RUNTIME__ENV"])
    assert env == {"KEEP": "1", "PASS": "p", "A": "new"}
    assert skipped == ["GONE"]
    # a --cfg setting of its own wins over the environment's, under its own key
    config, _ = with_task_env({"TASK_RUNTIME__ENV": '{"X": "1"}'}, ["Y=2"], {}, current)
    assert json.loads(config["TASK_RUNTIME__ENV"]) == {"X": "1", "Y": "2"}
    assert "MINIWDL__TASK_RUNTIME__ENV" not in config


def test_env_flag_without_a_name_is_refused():
    with pytest.raises(ValueError, match="invalid --env argument: =x"):
        with_task_env({}, ["=x"], {}, None)


@pytest.mark.parametrize(
    "value", ['{"AWS_SECRET_ACCESS_KEY": null}', '{"A": "1", "B": null}', "[1]"]
)
def test_a_submission_cannot_pass_the_controllers_environment_through(value):
    for key in ("TASK_RUNTIME__ENV", "MINIWDL__TASK_RUNTIME__ENV"):
        problem = schema_problem({"workflow_source": "version 1.0", "config": {key: value}})
        assert problem is not None and "controller's own environment" in problem


def test_a_submission_may_set_task_environment_values():
    config = {"TASK_RUNTIME__ENV": '{"A": "1", "B": 2}'}
    assert schema_problem({"workflow_source": "version 1.0", "config": config}) is None


@pytest.mark.parametrize(
    ("mock", "runtime", "interruptions", "tagged"),
    [
        (None, {"preemptible": 2}, 0, False),  # the hook is off
        (2, {"preemptible": 2}, 0, True),
        (2, {"preemptible": 2}, 1, True),
        (2, {"preemptible": 2}, 2, False),  # as many as the hook says: no more
        (2, {"preemptible": 0}, 0, True),  # miniwdl asks whether the key is there
        (2, {}, 0, False),  # not preemptible at all
    ],
)
def test_mock_interruption_rule(mock, runtime, interruptions, tagged):
    tags = mock_interruption_tags(TaskSettings(mock_interruptions=mock), runtime, interruptions)
    assert (MOCK_INTERRUPTION_TAG in tags) is tagged


def test_mock_interruptions_read_from_miniwdl_config():
    import logging

    cfg = WDL.runtime.config.Loader(
        logging.getLogger("t"), overrides={"task_runtime": {"_mock_interruptions": "3"}}
    )
    assert TaskSettings.from_config(cfg).mock_interruptions == 3
    plain = WDL.runtime.config.Loader(logging.getLogger("t"))
    assert TaskSettings.from_config(plain).mock_interruptions is None
