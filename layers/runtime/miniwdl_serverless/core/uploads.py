"""Uploads that scale (``s3upload``), the pure part: the transfer settings, when an object is
already uploaded identically, what Finish counts, when it stops for a further invocation and
how that invocation picks up where it stopped.

Finish uploads a run's files in one fixed order (its *plan*: each output's files, then the
logs). An upload stores the file's SHA-256 and a stamp of the file (inode, size, change
times) as object metadata; an object whose metadata names the file's stamp, or its size and
SHA-256, is not uploaded again (``skip``). When the deadline comes near, Finish stops before
the next file and returns its ``Progress``: how many files of the plan are done, a digest of
them (a changed plan is noticed and checked file by file again) and which could not be
uploaded. The state machine invokes Finish again with it."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

MiB = 1024 * 1024
# S3's limits on a multipart upload's parts (all but the last at least 5 MiB, at most 5 GiB)
MIN_PART_SIZE, MAX_PART_SIZE = 5 * MiB, 5 * 1024 * MiB
MAX_CONCURRENCY = 64
# Object metadata (x-amz-meta-*) an upload stores, lowercase as S3 returns it
SHA256_KEY = "sha256"
STAMP_KEY = "source-stamp"
# How fast uploads are assumed to go until this invocation has measured it (bytes/second):
# low, so that a large file is left for a fresh invocation rather than cut off by the timeout.
ASSUMED_RATE = 25 * MiB
MEASURED_AFTER_SECONDS = 1.0  # a rate measured over less than this is noise
MAX_FAILED = 1000  # failed files a Progress names; past it a continuation checks every file


@dataclass(frozen=True)
class UploadSettings:
    """How the finish function transfers files (its environment, template.yaml): files from
    ``multipart_threshold`` bytes up are sent as a multipart upload of ``part_size`` parts,
    ``concurrency`` at a time (each held in memory: part size × concurrency bytes); Finish stops
    uploading ``reserve_seconds`` before the Lambda's timeout, for what it does after."""

    multipart_threshold: int = 64 * MiB
    part_size: int = 64 * MiB
    concurrency: int = 10
    reserve_seconds: float = 120.0

    ENVIRONMENT = {
        "multipart_threshold": "UPLOAD_MULTIPART_THRESHOLD_MIB",
        "part_size": "UPLOAD_PART_SIZE_MIB",
        "concurrency": "UPLOAD_CONCURRENCY",
        "reserve_seconds": "FINISH_RESERVE_SECONDS",
    }

    @classmethod
    def from_environment(cls, env: Mapping[str, str], check_memory: bool = False) -> UploadSettings:
        """The settings the environment gives (MiB for sizes), the defaults for the others.
        ValueError names the variable of a value S3 cannot take, or with ``check_memory``
        that the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE) cannot hold."""
        values: dict[str, Any] = {}
        for name, variable in cls.ENVIRONMENT.items():
            text = env.get(variable)
            if not text:
                continue
            try:
                number = float(text) if name == "reserve_seconds" else int(text)
            except ValueError:
                raise ValueError(f"{variable}: not a number: {text!r}") from None
            values[name] = number * MiB if name in ("multipart_threshold", "part_size") else number
        settings = cls(**values)
        problem = settings.problem(_memory_bytes(env) if check_memory else None)
        if problem:
            raise ValueError(problem)
        return settings

    def problem(self, memory: int | None = None) -> str | None:
        """What is wrong with these settings (None: nothing); ``memory``: the function's."""
        names = self.ENVIRONMENT
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            return f"{names['part_size']}: parts must be 5 to 5120 MiB (S3's limits)"
        if self.multipart_threshold < MIN_PART_SIZE:
            return f"{names['multipart_threshold']}: at least 5 MiB (S3's smallest part)"
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            return f"{names['concurrency']}: 1 to {MAX_CONCURRENCY}"
        if self.reserve_seconds < 0:
            return f"{names['reserve_seconds']}: not negative"
        if memory is not None and self.part_size * self.concurrency > memory * 3 // 4:
            return (
                f"{names['part_size']} × {names['concurrency']} "
                f"({self.part_size * self.concurrency // MiB} MiB in memory) is more than "
                f"3/4 of the function's {memory // MiB} MiB"
            )
        return None


def _memory_bytes(env: Mapping[str, str]) -> int | None:
    text = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")  # set by Lambda, in MB
    return int(text) * MiB if text and text.isdigit() else None


# ---- one file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """What uploading one file (or JSON object) did: ``size`` bytes, sent or ``skipped``
    (an identical object was there)."""

    size: int
    skipped: bool = False


@dataclass(frozen=True)
class Remote:
    """An object already at the target key, as HeadObject describes it."""

    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)


def stamp(st: os.stat_result) -> str:
    """Which file, in which state: inode, size, modification and change time. Any write
    moves the change time (which no task can set back), so an equal stamp is an unchanged
    file."""
    text = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def metadata(sha256: str, file_stamp: str | None = None) -> dict[str, str]:
    """The object metadata an upload stores."""
    stored = {SHA256_KEY: sha256}
    if file_stamp:
        stored[STAMP_KEY] = file_stamp
    return stored


def unchanged(remote: Remote | None, size: int, file_stamp: str) -> bool:
    """The object was uploaded from this file as it is now (its stamp): skip without reading."""
    return (
        remote is not None
        and remote.size == size
        and SHA256_KEY in remote.metadata
        and remote.metadata.get(STAMP_KEY) == file_stamp
    )


def identical(remote: Remote | None, size: int, sha256: str) -> bool:
    """The object has this content (size and SHA-256): skip."""
    return remote is not None and remote.size == size and remote.metadata.get(SHA256_KEY) == sha256


# ---- what Finish counts ------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    files: int = 0
    bytes: int = 0
    skipped_files: int = 0
    skipped_bytes: int = 0

    def add(self, transfer: Transfer) -> Tally:
        if transfer.skipped:
            return replace(
                self,
                skipped_files=self.skipped_files + 1,
                skipped_bytes=self.skipped_bytes + transfer.size,
            )
        return replace(self, files=self.files + 1, bytes=self.bytes + transfer.size)

    def plus(self, other: Tally) -> Tally:
        return Tally(
            self.files + other.files,
            self.bytes + other.bytes,
            self.skipped_files + other.skipped_files,
            self.skipped_bytes + other.skipped_bytes,
        )

    def line(self) -> str:
        """workflow.log's line."""
        return (
            f"uploaded {self.files} files ({self.bytes} bytes), "
            f"skipped {self.skipped_files} already uploaded ({self.skipped_bytes} bytes)"
        )

    def metrics(self) -> dict[str, int]:
        return {
            "UploadedFiles": self.files,
            "UploadedBytes": self.bytes,
            "UploadSkippedFiles": self.skipped_files,
            "UploadSkippedBytes": self.skipped_bytes,
        }

    def as_json(self) -> list[int]:
        return [self.files, self.bytes, self.skipped_files, self.skipped_bytes]

    @classmethod
    def from_json(cls, value: Any) -> Tally:
        if isinstance(value, list) and len(value) == 4 and all(_count(v) for v in value):
            return cls(*value)
        return cls()


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---- the deadline ------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """When Finish must have stopped uploading, on ``clock``'s scale (the Lambda's remaining
    time less the reserve)."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def within(
        cls, seconds: float, reserve: float, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        return cls(clock() + seconds - reserve, clock)

    def left(self) -> float:
        return self.at - self.clock()


@dataclass(frozen=True)
class Throughput:
    """Bytes sent and the seconds they took, in this invocation."""

    bytes: int = 0
    seconds: float = 0.0

    def add(self, size: int, seconds: float) -> Throughput:
        return Throughput(self.bytes + size, self.seconds + seconds)

    def rate(self) -> float:
        """Bytes per second: measured once there is enough to measure, else ASSUMED_RATE."""
        if self.seconds < MEASURED_AFTER_SECONDS or self.bytes <= 0:
            return float(ASSUMED_RATE)
        return self.bytes / self.seconds


def stop_before(size: int, left: float, rate: float, started: bool) -> bool:
    """Whether to stop before a file of ``size`` bytes, ``left`` seconds before the deadline:
    when it would not be sent in time. Never before the invocation's first file, so that every
    invocation gets on (a file too large for any invocation is still tried)."""
    if not started:
        return False
    return left <= 0 or size > left * rate


# ---- continuing in a further invocation --------------------------------------------------


def plan_digest(keys: Sequence[tuple[str, str]]) -> str:
    """A digest of (path, URI) pairs, in order."""
    digest = hashlib.sha256()
    for path, uri in keys:
        digest.update(f"{len(path)}:{path}{len(uri)}:{uri}".encode(errors="surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True)
class Progress:
    """How far Finish got with its plan, handed to the next invocation: the first ``done``
    files (whose pairs have ``digest``) were uploaded or skipped, except ``failed`` (indices);
    ``tally`` counts every invocation so far, ``invocations`` of them."""

    done: int = 0
    digest: str = ""
    failed: tuple[int, ...] = ()
    tally: Tally = Tally()
    invocations: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "digest": self.digest,
            "failed": list(self.failed),
            "tally": self.tally.as_json(),
            "invocations": self.invocations,
        }

    @classmethod
    def from_json(cls, value: Any) -> Progress:
        """Anything that is not a Progress's JSON is none: start from the first file."""
        if not isinstance(value, dict):
            return cls()
        done, failed = value.get("done"), value.get("failed")
        invocations = value.get("invocations")
        if not (isinstance(done, int) and isinstance(invocations, int)):
            return cls()
        if not (_count(done) and _count(invocations) and isinstance(failed, list)):
            return cls()
        if not all(_count(i) and i < done for i in failed):
            return cls()
        digest = value.get("digest")
        return cls(
            done,
            digest if isinstance(digest, str) else "",
            tuple(failed),
            Tally.from_json(value.get("tally")),
            invocations,
        )

    def resumed(self, keys: Sequence[tuple[str, str]]) -> Progress:
        """Where this invocation starts in its plan ``keys``: after the files done, if they
        are the same files (else from the first, each checked against its object)."""
        if self.done <= len(keys) and plan_digest(keys[: self.done]) == self.digest:
            return self
        return Progress(tally=self.tally, invocations=self.invocations)

    def stopped_at(
        self, keys: Sequence[tuple[str, str]], done: int, failed: Sequence[int], tally: Tally
    ) -> Progress:
        """The progress to hand on after the first ``done`` files of ``keys``."""
        if len(failed) > MAX_FAILED:  # too many to hand on: check them all again
            return Progress(tally=tally, invocations=self.invocations + 1)
        return Progress(done, plan_digest(keys[:done]), tuple(failed), tally, self.invocations + 1)
