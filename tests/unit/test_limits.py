"""A scatter wider than the run allows fails with a clear error before anything is expanded,
instead of the Lambda running out of memory (issue 9, defect 16)."""

from __future__ import annotations

import pytest

from miniwdl_serverless.core.records import RUN_FAILED

from .harness import Harness

HUGE = """
version 1.0
workflow huge {
  scatter (i in range(100000000)) { call t { input: x = i } }
}
task t { input { Int x } command {} output { Int y = x } }
"""

FROM_INPUT = """
version 1.0
workflow wide {
  input { Array[Int] xs }
  scatter (x in xs) { call t { input: x = x } }
  output { Array[Int] ys = t.y }
}
task t { input { Int x } command {} output { Int y = x } }
"""


def test_defect_16_a_huge_scatter_fails_with_a_clear_error():
    harness = Harness()
    harness.start(HUGE)
    run = harness.run()
    assert run.status == RUN_FAILED
    assert "scatter over 100000000 items exceeds the largest this run allows (100000" in str(
        run.error
    )
    assert "MINIWDL__SERVERLESS__MAX_SCATTER_WIDTH" in run.error["message"]
    assert harness.batch.jobs == {}
    kind, (_, cause) = harness.answer()
    assert kind == "failure" and "exceeds the largest" in cause


@pytest.mark.parametrize("width, fails", [(5, False), (6, True)])
def test_the_maximum_is_a_setting_and_holds_for_any_array(width, fails):
    harness = Harness()
    config = {"SERVERLESS__MAX_SCATTER_WIDTH": "5"}
    harness.start(FROM_INPUT, {"xs": list(range(width))}, config=config)
    if fails:
        run = harness.run()
        assert run.status == RUN_FAILED and "scatter over 6 items" in run.error["message"]
        assert harness.batch.jobs == {}
    else:
        harness.play()
        assert harness.outputs() == {"wide.ys": list(range(5))}


@pytest.mark.parametrize("key", ["SERVERLESS__MAX_SCATTER_WIDTH", "SERVERLESS__READ_LIMIT"])
def test_a_setting_that_is_not_a_number_fails_planning_naming_it(key):
    harness = Harness()
    result = harness.start(FROM_INPUT, {"xs": [1]}, config={key: "lots"})
    assert result["failed"]
    run = harness.run()
    section, option = key.lower().split("__")
    assert run.status == RUN_FAILED
    assert f"configuration option [{section}] {option} should be int" in run.error["message"]
    assert harness.batch.jobs == {}
    assert list(harness.store.query_jobs(harness.run_id)) == []  # not even planned


def test_a_call_whose_id_no_batch_tag_holds_fails_the_run_clearly_with_nothing_submitted():
    harness = Harness()
    name = "t" * 300
    harness.start(
        f"version 1.0\nworkflow w {{ call {name} }}\ntask {name} {{ command <<< true >>> }}"
    )
    assert harness.batch.jobs == {}
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure"
    assert "305 characters; AWS Batch tag values hold 256" in answer[1][1]
