"""The reconciler's decisions (core/reconciling.py) as pure functions."""

from __future__ import annotations

import json
from dataclasses import replace

from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import TAG_ATTEMPT, TAG_JOB, TAG_RUN
from miniwdl_serverless.core.reconciling import (
    RECONCILER,
    DeadLetter,
    Letter,
    Move,
    Rules,
    call_verdict,
    classify_letter,
    describe_batches,
    replay_detail,
    resumable,
    stuck_error,
)
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUNNING,
    WAITING,
    Job,
    Run,
)

NOW = 1_800_000_000.0
RULES = Rules()


def call(**fields) -> Job:
    values = dict(
        run_id="r",
        job_id="call-x",
        status=RUNNING,
        batch_job_name="r-call-x-try1",
        batch_job_id="b-1",
        submitted_at=NOW - 4000,
    )
    values.update(fields)
    return Job(**values)


def described(status: str, ago: float = 600.0, **fields) -> BatchJobDetail:
    moment = int((NOW - ago) * 1000)
    values = dict(jobName="r-call-x-try1", jobId="b-1", status=status, startedAt=moment)
    if status in ("SUCCEEDED", "FAILED"):
        values["stoppedAt"] = moment
    values.update(fields)
    return BatchJobDetail(**values)


# ---- a running call against Batch -----------------------------------------------------------


def test_describe_batches_are_at_most_100_distinct_ids():
    ids = [f"b-{i}" for i in range(250)] + ["b-0", ""]
    batches = describe_batches(ids)
    assert [len(b) for b in batches] == [100, 100, 50]
    assert sum(batches, []) == [f"b-{i}" for i in range(250)]
    assert describe_batches([]) == []


def test_a_terminal_batch_job_is_replayed_once_its_event_had_time_to_arrive():
    for status in ("SUCCEEDED", "FAILED"):
        verdict = call_verdict(call(started_at=NOW - 700), described(status), NOW, RULES)
        assert verdict.move is Move.REPLAY and verdict.detail is not None
        assert verdict.detail.status == status and verdict.in_motion
        recent = call_verdict(call(), described(status, ago=30), NOW, RULES)
        assert recent.move is Move.NONE


def test_a_running_batch_job_is_replayed_only_if_we_never_noted_it():
    assert call_verdict(call(), described("RUNNING"), NOW, RULES).move is Move.REPLAY
    noted = call(started_at=NOW - 500)
    assert call_verdict(noted, described("RUNNING"), NOW, RULES).move is Move.NONE
    for status in ("SUBMITTED", "RUNNABLE"):
        verdict = call_verdict(call(), described(status, startedAt=None), NOW, RULES)
        assert verdict.move is Move.NONE and verdict.in_motion


def test_the_replayed_detail_names_our_job_even_if_batch_lost_the_tags():
    detail = replay_detail(call(attempt=2), described("SUCCEEDED", tags={"other": "tag"}))
    assert detail.tags == {"other": "tag", TAG_RUN: "r", TAG_JOB: "call-x", TAG_ATTEMPT: "2"}
    assert (detail.run_id, detail.job_id, detail.attempt) == ("r", "call-x", 2)


def test_a_job_batch_does_not_know_is_lost_only_long_after_its_submission():
    assert call_verdict(call(), None, NOW, RULES).move is Move.LOST
    fresh = call(submitted_at=NOW - 60)
    assert call_verdict(fresh, None, NOW, RULES).move is Move.NONE
    assert not call_verdict(call(), None, NOW, RULES).in_motion


def test_a_submission_without_a_batch_job_is_resubmitted_well_after_its_lease():
    lost = call(batch_job_id=None, lease_until=NOW - RULES.resubmit_after)
    assert call_verdict(lost, None, NOW, RULES).move is Move.RESUBMIT
    held = call(batch_job_id=None, lease_until=NOW - 60)
    assert call_verdict(held, None, NOW, RULES).move is Move.NONE


# ---- quiet runs -----------------------------------------------------------------------------


def run(**fields) -> Run:
    return Run(**{"run_id": "r", "status": RUN_RUNNING, "created_at": NOW - 7200, **fields})


def test_a_quiet_run_with_jobs_left_is_stuck_and_the_error_names_them():
    jobs = [
        Job("r", "call-a", status=DONE, finished_at=NOW - 3600),
        Job("r", "call-b", deps=["call-a"], pending=1),
        Job("r", "call-c", deps=["call-b"], pending=1),
        Job("r", "outputs", deps=["call-c"], pending=1),
    ]
    error = stuck_error(run(), jobs, NOW)
    assert error is not None and error.name == "RunStuck"
    message = error.info["message"]
    assert message.startswith("no call is running or ready and nothing has happened for 60 min")
    assert "call-b waits for 1 completion(s) never counted" in message
    assert "call-c waits for call-b" in message and "outputs waits for call-c" in message
    assert error.info["left"][0] == "call-b waits for 1 completion(s) never counted"


def test_a_stuck_gather_says_how_many_of_its_shards_it_waits_for():
    shards = {"of": "scatter-s", "node": "call-t", "prefix": "call-t-", "count": 3}
    jobs = [
        Job("r", "call-t-0", status=DONE, finished_at=NOW - 3600),
        Job("r", "gather-call-t", shards=shards, pending=2),
    ]
    error = stuck_error(run(), jobs, NOW)
    assert error is not None
    assert error.info["left"] == ["gather-call-t waits for 2 of its 3 shards (call-t-*)"]


def test_a_run_is_not_stuck_while_recent_or_not_running():
    jobs = [Job("r", "call-b", pending=1, finished_at=NOW - 60)]
    assert stuck_error(run(), jobs, NOW) is None
    assert stuck_error(run(status=RUN_SUCCEEDED), [Job("r", "x", pending=1)], NOW) is None


def test_the_stuck_message_is_bounded():
    jobs = [Job("r", f"call-{i}", pending=0) for i in range(25)]
    error = stuck_error(run(), jobs, NOW)
    assert error is not None and error.info["message"].endswith("; ...")
    assert len(error.info["left"]) == 10


def test_what_a_dead_invocation_left_is_resumed_with_the_claimant_it_had():
    jobs = [
        Job("r", "decl-a", status="completing-1"),
        Job("r", "call-b", status=CLAIMED, claimed_by="decl-a"),
        Job("r", "call-c", status=WAITING, pending=0),
        Job("r", "call-d", status=WAITING, pending=1),
        Job("r", "call-sub", status=RUNNING, claimed_by="decl-a"),  # no child graph
        Job("r", "call-sub2", status=RUNNING),
        Job("r", "call-sub2/outputs", scope="call-sub2", status=DONE),
        Job("r", "call-t", status=RUNNING, batch_job_name="n", batch_job_id="b"),
        Job("r", "outputs", status=DONE),
    ]
    found = [(job.job_id, claimant) for job, claimant in resumable(jobs)]
    assert found == [
        ("decl-a", "decl-a"),
        ("call-b", "decl-a"),
        ("call-c", RECONCILER),
        ("call-sub", "decl-a"),
        ("call-sub2/outputs", "call-sub2/outputs"),
        ("outputs", "outputs"),
    ]


def test_done_shards_whose_bucket_the_gather_never_counted_are_resumed():
    """A shard's tally is cut short only by a dead invocation; if its event is lost for good
    too, a quiet run resumes the done shards of a bucket the waiting gather has not counted
    (resumed, each repeats its tally: idempotent), not those of a counted bucket."""
    shards = {"of": "scatter-s", "node": "call-t", "prefix": "call-t-", "count": 300}
    gather = Job("r", "gather-call-t", status=WAITING, pending=100, shards=shards, tallied=[0])

    def shard(index: int, status: str = DONE) -> Job:
        tally = {"gather": gather.job_id, "index": index, "bucket": index // 200, "size": 200}
        return Job("r", f"call-t-{index}", status=status, tally=tally, batch_job_name="n")

    jobs = [gather, shard(0), shard(1), shard(200), shard(201), shard(202, RUNNING)]
    found = [(job.job_id, claimant) for job, claimant in resumable(jobs)]
    assert found == [("call-t-200", "call-t-200"), ("call-t-201", "call-t-201")]
    counted = replace(gather, status=DONE, pending=0, tallied=[0, 1])
    assert resumable([counted, shard(200)]) == []


# ---- dead letters ---------------------------------------------------------------------------


def letter(body: object, **attributes: str) -> DeadLetter:
    text = body if isinstance(body, str) else json.dumps(body)
    return DeadLetter("m-1", text, "receipt", attributes)


def test_dead_letters_are_classified_by_their_event():
    batch = {"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {}}
    assert classify_letter(letter(batch)).kind is Letter.BATCH_EVENT
    assert classify_letter(letter(batch)).replayable
    ended = {"source": "aws.states", "detail-type": "Step Functions Execution Status Change"}
    assert classify_letter(letter({**ended, "detail": {}})).kind is Letter.EXECUTION_ENDED
    s3 = {"source": "aws.s3", "detail-type": "Object Created", "detail": {}}
    assert not classify_letter(letter(s3)).replayable
    assert classify_letter(letter("{")).problem == "the body is not JSON"
    assert classify_letter(letter([1])).problem == "not an EventBridge event"
    other = classify_letter(letter({"source": "x", "detail-type": "y", "detail": {}}))
    assert other.kind is Letter.UNKNOWN and "(x / y)" in other.problem


def test_a_dead_letter_says_why_it_failed_in_either_dialect():
    assert letter("{}", ERROR_CODE="SDK_CLIENT_ERROR", ERROR_MESSAGE="x").failure == (
        "SDK_CLIENT_ERROR: x"
    )
    assert letter("{}", RequestID="r", ErrorCode="200", ErrorMessage="boom").failure == (
        "200: boom"
    )
    assert letter("{}").failure == ""
