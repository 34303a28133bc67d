"""The local Batch executor runs an array job's children (each with its
AWS_BATCH_JOB_ARRAY_INDEX, through core/arrays.py's prologue) and emits the child and parent
events in AWS's shape (tests/events/batch_array_*.json)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from miniwdl_serverless.adapters import clients
from miniwdl_serverless.adapters.batch import BatchAdapter, EfsVolume
from miniwdl_serverless.core.arrays import (
    CHILD_MARKER,
    ShardArray,
    array_submission,
    child_ran,
    child_ref,
    classify_array_event,
)
from miniwdl_serverless.core.decisions import EventKind
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.resources import Resources, TaskSubmission
from miniwdl_serverless.local.resources import LOCAL_QUEUE

SHARDS = ("call-t-0", "call-t-1", "call-t-2")


def events_of(embedded: Any, parent: str) -> list[BatchJobDetail]:
    details = [
        BatchJobDetail.model_validate(e["detail"])
        for e in list(embedded.events.sent)
        if e.get("detail-type") == "Batch Job State Change"
    ]
    return [d for d in details if d.jobId == parent or d.jobId.startswith(parent + ":")]


def test_an_array_job_runs_each_child_in_its_call_directory(embedded: Any, tmp_path: Path) -> None:
    run_id = f"local-array-{uuid.uuid4().hex[:8]}"
    run = tmp_path / "run"
    for n, job_id in enumerate(SHARDS):
        (run / job_id / "work").mkdir(parents=True)
        (run / job_id / "command").write_text(f"echo $AWS_BATCH_JOB_ARRAY_INDEX\nexit {n % 2}\n")
    array = ShardArray(SHARDS)
    index = Path(array.index_path(run_id, str(run)))
    index.parent.mkdir()
    index.write_bytes(array.index_bytes())
    first = TaskSubmission(
        name="unused",
        queue=LOCAL_QUEUE,
        image="ubuntu:22.04",
        resources=Resources(vcpus=1, memory_mib=512),
        script="exit 9",
        timeout_seconds=600,
    )
    adapter = BatchAdapter(client=clients.client("batch"), efs=EfsVolume(mount_path=str(tmp_path)))
    parent = adapter.submit(array_submission(array, first, run_id, str(run), {"project": "p"}))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = events_of(embedded, parent)
        if any(d.is_array_parent and d.status in ("SUCCEEDED", "FAILED") for d in seen):
            break
        time.sleep(0.05)
    seen = events_of(embedded, parent)
    parents = [d for d in seen if d.is_array_parent]
    assert [d.status for d in parents] == ["PENDING", "FAILED"]  # child 1 exited 1
    assert parents[-1].status_summary["SUCCEEDED"] == 2
    assert parents[-1].status_summary["FAILED"] == 1
    assert parents[-1].arrayProperties is not None and parents[-1].arrayProperties.size == 3
    ended = {}
    for child in seen:
        ref = child_ref(child)
        if child.is_array_parent:
            continue
        assert ref is not None and ref.run_id == run_id and ref.parent_batch_id == parent
        data = index.read_bytes()[ref.offset : ref.offset + ref.record]
        job_id = ref.shard(data)
        assert job_id == SHARDS[ref.index]
        assert child.jobName == array.name(run_id) and child.tags["project"] == "p"
        if child.status in ("SUCCEEDED", "FAILED"):
            marker = (run / job_id / CHILD_MARKER).read_text()
            ended[job_id] = classify_array_event(child, child_ran(marker, ref.index))
    assert ended == {
        "call-t-0": EventKind.SUCCEEDED,
        "call-t-1": EventKind.FAILED_WITH_EXIT,
        "call-t-2": EventKind.SUCCEEDED,
    }
    for n, job_id in enumerate(SHARDS):
        assert (run / job_id / "stdout.txt").read_text() == f"{n}\n"
    # the parent's end comes after every child's
    order = [d.jobId for d in seen if d.status in ("SUCCEEDED", "FAILED")]
    assert order[-1] == parent and len(order) == 4
