"""Hostile names (issue 9): execution (run) names, job ids, images and submission keys of any
text, length and script. Every name the controller derives must be one AWS takes: Batch job
and job definition names (1-128 of [A-Za-z0-9_-], the first alphanumeric), Step Functions
execution names (1-80 of [A-Za-z0-9_-]), Batch tags (keys <= 128, values <= 256 characters).
Distinct ids keep distinct names (Batch job names are how a repeated submission is found)."""

from __future__ import annotations

import re

from hypothesis import assume, given
from hypothesis import strategies as st

from miniwdl_serverless.adapters.batch import job_definition_name
from miniwdl_serverless.controller.start import start_run
from miniwdl_serverless.controller.submit import execution_name
from miniwdl_serverless.core.ids import batch_job_name
from miniwdl_serverless.core.records import RUN_SUCCEEDED
from miniwdl_serverless.core.resources import Resources

from ..unit.harness import Harness
from .strategies import SPECIAL_TEXT

BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
names = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(max_size=300))
# What Step Functions takes as an execution name: 1-80 characters, no whitespace, none of
# <>{}[]?*"#%\^|~`$&,;:/ and no control characters (non-ASCII letters are allowed)
execution_names = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
        blacklist_characters='<>{}[]?*"#%\\^|~`$&,;:/',
    ),
    min_size=1,
    max_size=80,
)


@given(names, names, st.integers(min_value=0, max_value=10**9))
def test_batch_job_names_are_always_valid(run_id, job_id, attempt):
    assert BATCH_NAME.match(batch_job_name(run_id, job_id, attempt))


@given(names, names, st.integers(0, 5), names, names, st.integers(0, 5))
def test_distinct_ids_keep_distinct_batch_job_names(run_a, job_a, try_a, run_b, job_b, try_b):
    assume((run_a, job_a, try_a) != (run_b, job_b, try_b))
    assert batch_job_name(run_a, job_a, try_a) != batch_job_name(run_b, job_b, try_b)


@given(names, st.integers(0, 8))
def test_job_definition_names_are_always_valid(image, gpus):
    name = job_definition_name("miniwdl-serverless-tasks", image, Resources(gpus=gpus), "cfg")
    assert BATCH_NAME.match(name), name


@given(names, names, st.one_of(st.none(), names), st.one_of(st.none(), names))
def test_execution_names_of_any_submission_key_are_valid(bucket, key, version, etag):
    assert EXECUTION_NAME.match(execution_name(bucket, key, version, etag))


TWO_CALLS = """
version 1.0
workflow w {
  scatter (i in [1, 2]) { call t { input: i = i } }
  output { Array[Int] out = t.out }
}
task t { input { Int i } command <<< echo ~{i} >>> output { Int out = i } }
"""


@given(execution_names)
def test_runs_of_any_execution_name_submit_valid_batch_jobs(name):
    harness = Harness()
    harness.run_id = name
    arn = f"arn:aws:states:us-east-1:123456789012:execution:RunWorkflow:{name}"
    inputs = {"workflow_source": TWO_CALLS, "dir": "/efs/runs"}
    start_run(inputs, harness.token, arn, "2026-12-01T10:00:00Z", harness.ports)
    harness.play()
    assert harness.run().status == RUN_SUCCEEDED
    assert harness.outputs() == {"w.out": [1, 2]}
    for job in harness.batch.jobs.values():
        assert BATCH_NAME.match(job.submission.name), job.submission.name
        for key, value in job.submission.tags.items():
            assert 1 <= len(key) <= 128 and len(value) <= 256, (key, value)
