"""What every hostile case shares: a confined world on real files (an EFS root with a sentinel
tree outside it that nothing may touch), the checks that an error is a clear one, and a store
that measures every item it holds by DynamoDB's size rules after every write."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from miniwdl_serverless.adapters.dynamodb import DynamoStore
from miniwdl_serverless.adapters.memory import MemoryStore
from miniwdl_serverless.controller.end import AnswerNotSent
from miniwdl_serverless.controller.ports import TransientError
from miniwdl_serverless.core.records import Job, Run

from ..unit.fake_s3 import RecordingS3
from ..unit.harness import Harness

SECRET = "AWS_SECRET_ACCESS_KEY=hostile-suite-must-never-see-this"
DYNAMODB_ITEM_LIMIT = 400 * 1024
ERROR_NAME = r"^[A-Z][A-Za-z0-9]+$"
# What the handlers are designed to let out of the controller (handlers/, controller/drive.py)
ALLOWED_TO_PROPAGATE = (TransientError, AnswerNotSent)


# ---- nothing outside changes ------------------------------------------------------------


def snapshot(top: Path, skip: Path | None = None) -> dict[str, Any]:
    """Every entry under ``top`` (no link followed): its kind, size, mode and, for regular
    files, a digest of the content; the entries under ``skip`` are left out."""
    found: dict[str, Any] = {}
    for here, dirs, names in os.walk(top, followlinks=False):
        if skip is not None and Path(here) == skip:
            dirs[:] = []
            continue
        for name in dirs + names:
            path = Path(here) / name
            if skip is not None and path == skip:
                found[str(path)] = "skipped"
                continue
            info = os.lstat(path)
            entry: tuple[Any, ...] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                entry += (os.readlink(path),)
            elif stat.S_ISREG(info.st_mode):
                entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
            found[str(path)] = entry
    return found


@dataclass
class Confined:
    """``base/efs`` is the EFS root the controller is confined to; ``base/outside`` holds what
    no run may read, change or delete, and links inside the root point there."""

    base: Path

    @property
    def efs(self) -> Path:
        return self.base / "efs"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    @classmethod
    def make(cls, base: Path) -> Confined:
        world = cls(base)
        (world.efs / "data").mkdir(parents=True)
        (world.efs / "data" / "in.txt").write_text("input data\n")
        (world.outside / "dir").mkdir(parents=True)
        (world.outside / "victim.txt").write_text(SECRET + "\n")
        (world.outside / "dir" / "keep.txt").write_text("keep\n")
        os.symlink(world.outside, world.efs / "link-out")
        os.symlink(world.outside / "victim.txt", world.efs / "data" / "secret.txt")
        os.symlink("/proc/self/environ", world.efs / "data" / "environ")
        world.before = snapshot(base, skip=world.efs)
        return world

    before: dict[str, Any] | None = None

    def harness(self) -> Harness:
        return Harness(self.efs, efs_root=self.efs)

    def untouched(self) -> bool:
        return snapshot(self.base, skip=self.efs) == self.before

    def remove(self) -> None:
        """Delete the world with ``rm -rf``: a case may have nested directories deeper than
        Python's recursive ``shutil.rmtree`` (pytest's and tempfile's clean-up) can remove."""
        subprocess.run(["rm", "-rf", str(self.base)], check=False)


# ---- clear errors -------------------------------------------------------------------------


def assert_clear_failure(harness: Harness) -> tuple[str, dict[str, Any]]:
    """The run failed with a named error whose cause is miniwdl's error JSON with a message,
    told to Step Functions and kept in the run record; no traceback, no secret."""
    import re

    answer = harness.answer()
    assert answer is not None and answer[0] == "failure", answer
    name, cause = answer[1]
    assert re.match(ERROR_NAME, name), name
    info = json.loads(cause)
    assert isinstance(info.get("message"), str) and info["message"], info
    for text in (name, cause):
        assert "Traceback" not in text and SECRET not in text
    run = harness.store.get_run(harness.run_id)
    assert run is not None and run.status == "failed" and run.error, run
    return name, info


def finishes_within(call: Callable[[], Any], seconds: float) -> Any:
    """``call()``'s result (or its exception), failing if it has not returned in time."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exn:  # handed to the test's thread
            outcome["error"] = exn

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (a hang)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


# ---- DynamoDB's item size ----------------------------------------------------------------

_MODELS = DynamoStore("hostile-runs", "hostile-jobs")  # models only: never connects


def attribute_size(value: dict[str, Any]) -> int:
    """The size of one serialized attribute value by DynamoDB's rules (names not included)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode("utf-8", "surrogatepass"))
    if kind == "N":
        digits = Decimal(inner).normalize().as_tuple().digits
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8", "surrogatepass")) for s in inner)
    if kind == "NS":
        return sum(attribute_size({"N": n}) for n in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in inner.items())
    raise AssertionError(f"unknown attribute type {kind}")


def item_size(serialized: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(v) for name, v in serialized.items())


def run_item_size(run: Run) -> int:
    return item_size(_MODELS._run_item(run).serialize())


def job_item_size(job: Job) -> int:
    values = {k: v for k, v in job.as_dict().items() if v is not None}
    if job.awaiting:
        values["awaiting"] = set(job.awaiting)
    elif "awaiting" in values:
        del values["awaiting"]
    return item_size(_MODELS.jobs(**values).serialize())


_WRITES = (
    "create_run",
    "put_run",
    "set_run_status",
    "record_upload",
    "mark_answered",
    "count",
    "put_new_jobs",
    "register_waiter",
    "claim",
    "mark_running",
    "renew_lease",
    "stop_awaiting",
    "record_batch_job",
    "note_started",
    "take_leases",
    "record_batch_jobs",
    "update_job",
    "complete",
    "fail_job",
)


class MeasuredStore(MemoryStore):
    """The in-memory store, measuring every item (as its DynamoDB item) after every write:
    ``largest`` is the biggest seen, ``where`` names it."""

    def __init__(self) -> None:
        super().__init__()
        self.largest, self.where = 0, ""

    def measure(self) -> None:
        with self._lock:
            for run in self._runs.values():
                self._note(run_item_size(run), f"run {run.run_id}")
            for (run_id, job_id), job in self._jobs.items():
                self._note(job_item_size(job), f"job {run_id}/{job_id}")

    def _note(self, size: int, where: str) -> None:
        if size > self.largest:
            self.largest, self.where = size, where


def _measured(name: str) -> Callable[..., Any]:
    method = getattr(MemoryStore, name)

    def write(self: MeasuredStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.measure()

    write.__name__ = name
    return write


for _name in _WRITES:
    setattr(MeasuredStore, _name, _measured(_name))


def measured(harness: Harness) -> MeasuredStore:
    """Give the harness a store that measures its items."""
    store = MeasuredStore()
    harness.store = store
    harness.ports.store = store
    return store


def with_uploads(harness: Harness, root: Path) -> RecordingS3:
    """The real S3 uploads (guarded reads from the EFS root) on a recording client."""
    from miniwdl_serverless.adapters.s3 import S3Uploads

    client = RecordingS3(read_limit=1 << 20)  # enough to see a secret
    harness.ports.uploads = S3Uploads(client, root=str(root))
    return client
