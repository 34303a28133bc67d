"""Issue 9, defect 7: the jobs table's TTL deleted nothing, since job items never got
``expires_at``. Every job item now gets it when it is created: its creation time, plus the
run's timeout (by which the run ends), plus the finished-run retention of the run's item."""

from __future__ import annotations

import time

from miniwdl_serverless.core.records import RUN_FAILED
from miniwdl_serverless.core.store_rules import FINISHED_RUN_TTL_SECONDS

from .harness import Harness

SCATTER = """
version 1.0
workflow fan {
  input { Int n = 3 }
  scatter (i in range(n)) { call t { input: i = i } }
  output { Array[Int] out = t.o }
}
task t {
  input { Int i }
  command {}
  output { Int o = i }
}
"""


def test_defect_07_every_job_item_expires_after_its_run_item_would():
    harness = Harness()
    timeout = 3600
    before = int(time.time())
    harness.start(SCATTER, {"n": 3}, timeout_seconds=timeout)
    harness.play()  # shards and the gather are created by later invocations
    after = int(time.time())
    run = harness.run()
    jobs = list(harness.store.query_jobs(harness.run_id))
    assert len(jobs) >= 6 and {j.job_id for j in jobs} >= {"call-t-0", "call-t-2", "outputs"}
    for job in jobs:
        assert job.expires_at is not None, job.job_id
        # no sooner than the run's own item goes: it ends by its timeout (plus Finish)...
        assert job.expires_at >= before + timeout + FINISHED_RUN_TTL_SECONDS, job.job_id
        # ...and not much later either
        assert job.expires_at <= after + timeout + FINISHED_RUN_TTL_SECONDS + 3600, job.job_id
    assert run.expires_at is not None
    assert all(job.expires_at >= run.expires_at for job in jobs)  # type: ignore[operator]


def test_defect_07_jobs_of_a_failed_run_expire_without_the_ending_lambda_writing_them():
    harness = Harness()
    harness.start(SCATTER, {"n": 4})
    writes = harness.store.writes
    harness.stop()  # the cancel function: fails the run, terminates its jobs
    assert harness.run().status == RUN_FAILED
    assert harness.store.writes - writes == 1  # the run item only, not one write per job
    assert all(job.expires_at for job in harness.store.query_jobs(harness.run_id))


def test_defect_07_a_run_refused_before_any_job_expires_too():
    """Bad input (and the control-prefix refusals) record the run as failed with put_run,
    not set_run_status: its item must get the finished-run TTL all the same."""
    harness = Harness()
    result = harness.start(SCATTER, {"n": "three"})
    assert result["failed"] == "InputError"
    run = harness.run()
    assert run.status == RUN_FAILED and run.finished_at
    assert run.expires_at == int(run.finished_at) + FINISHED_RUN_TTL_SECONDS
