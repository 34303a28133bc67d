"""`submit`'s local inputs: File and Directory values naming files on this machine rather than
on the stack's file system are staged to the stack's bucket, content-addressed, and replaced by
their s3:// URIs (imperative shell over core/input_staging.py, which decides; the uploads are
cli/stack.py's).

Links: a File input that is a link is followed, as miniwdl follows it (the content is the
target's, the name the link's). Inside a Directory, a link is followed only to a file or
directory inside that Directory (its target's content is staged at the link's path: S3 has no
links); a link out of it, to nothing, or round in a loop is refused, naming it."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from miniwdl_serverless.cli.stack import Clients, Stack, already_staged, upload_file
from miniwdl_serverless.cli.submit import UsageError
from miniwdl_serverless.core.input_staging import (
    LOCAL,
    MULTIPART_THRESHOLD,
    ContentDigest,
    FileDigest,
    InputPath,
    directory_digest,
    directory_key,
    file_key,
    human_size,
    key_problem,
    locate_all,
    refusal,
    size_problem,
    staged_name,
    staging_summary,
)
from miniwdl_serverless.core.options import EFS_MOUNT

READ_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class LocalObject:
    """One file to stage: what is read, where it goes, its digests, how progress names it."""

    source: str
    key: str
    digest: FileDigest
    label: str


class Progress:
    """Staging on stderr: on a terminal a line per large file read and per file uploaded (with
    a percentage for multipart uploads); always the summary."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty

    def reading(self, label: str, size: int) -> None:
        if self.tty and size >= MULTIPART_THRESHOLD:
            self._line(f"reading {label} ({human_size(size)})")

    def uploading(self, label: str, size: int) -> Callable[[int], None] | None:
        if not self.tty:
            return None
        self._line(f"staging {label} ({human_size(size)})")
        return _Meter(self.stream, size) if size >= MULTIPART_THRESHOLD else None

    def summary(self, staged: int, staged_bytes: int, already_there: int) -> None:
        self._line(staging_summary(staged, staged_bytes, already_there))

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class _Meter:
    """boto3's transfer callback (bytes sent, from its threads) as a percentage line."""

    def __init__(self, stream: TextIO, size: int):
        self.stream, self.size, self.sent, self.shown = stream, max(size, 1), 0, -1
        self.lock = threading.Lock()

    def __call__(self, sent: int) -> None:
        with self.lock:
            self.sent += sent
            percent = min(100, self.sent * 100 // self.size)
            if percent != self.shown:
                self.shown = percent
                end = "\n" if percent == 100 else ""
                self.stream.write(f"\r  {percent:3d}% of {human_size(self.size)}{end}")
                self.stream.flush()


def stage_local_inputs(
    clients: Clients, stack: Stack, env: Any, stage: bool, progress: Progress
) -> Any:
    """The inputs (a miniwdl value environment) with every File/Directory on this machine, and
    not on the stack's file system, staged and replaced by its s3:// URI; paths on the stack's
    file system made absolute; URIs as they are. ``stage`` False (--no-stage) refuses local
    files instead, naming them."""
    efs_root = stack.function_env(clients).get("MSLS_EFS_ROOT") or EFS_MOUNT
    located = locate_all(input_paths(env), efs_root, os.getcwd())
    local = [p for p in located.values() if p.where == LOCAL]
    if local and not stage:
        raise UsageError(refusal(local, efs_root))
    rewrites = {key: p.path for key, p in located.items()}
    if local:
        bucket = stack.require("bucket", "bucket (BucketName output) to stage local inputs in")
        objects: dict[str, LocalObject] = {}
        prefixes: dict[str, str] = {}
        for path in local:
            if path.path not in prefixes:
                prefixes[path.path], found = scan(path, efs_root, progress)
                objects.update((o.key, o) for o in found)
            rewrites[(path.given, path.directory)] = f"s3://{bucket}/{prefixes[path.path]}"
        upload(clients, bucket, list(objects.values()), progress)
    return rewrite(env, rewrites)


def input_paths(env: Any) -> list[tuple[str, bool]]:
    """Every File/Directory value of the inputs, at any depth: (path, is a Directory)."""
    import WDL

    found: list[tuple[str, bool]] = []

    def collect(value: Any) -> str:
        found.append((str(value.value), isinstance(value, WDL.Value.Directory)))
        return str(value.value)

    WDL.Value.rewrite_env_paths(env, collect)
    return found


def rewrite(env: Any, rewrites: dict[tuple[str, bool], str]) -> Any:
    """The inputs with these paths replaced (a copy). A staged Directory's URI keeps its
    trailing '/' (it names a prefix), which miniwdl's Directory value would strip."""
    import WDL

    def replace(value: Any) -> str:
        path = str(value.value)
        return rewrites.get((path, isinstance(value, WDL.Value.Directory)), path)

    env = WDL.Value.rewrite_env_paths(env, replace)
    prefixes = {uri for (_, directory), uri in rewrites.items() if directory and uri[-1:] == "/"}
    pending = [binding.value for binding in env]
    while pending:  # the copies rewrite_env_paths made, at any depth
        value = pending.pop()
        if isinstance(value, WDL.Value.Directory) and value.value + "/" in prefixes:
            value.value += "/"
        pending.extend(value.children)
    return env


# ---- reading what is staged -----------------------------------------------------------------


def scan(path: InputPath, efs_root: str, progress: Progress) -> tuple[str, list[LocalObject]]:
    """A local input's key (a Directory's: its prefix, ending in '/') and its files."""
    checks = os.path.isdir if path.directory else os.path.isfile
    if not checks(path.path):
        what = "no such" if not os.path.exists(path.path) else "not a"
        thing = "directory" if path.directory else "file"
        raise UsageError(
            f"{path.kind} input {path.given}: {what} {thing} on this machine (and not on the "
            f"stack's file system, under {efs_root})"
        )
    name = staged_name(path.path)
    if not path.directory:
        digest = hash_file(path.path, path.given, progress)
        key = _checked(file_key(digest, name), path.given)
        return key, [LocalObject(path.path, key, digest, path.given)]
    top = os.path.realpath(path.path)
    files = [
        (relative, source, hash_file(source, f"{path.given}/{relative}", progress))
        for relative, source in walk_directory(top, path.given)
    ]
    listing = directory_digest((relative, d.sha256) for relative, _, d in files)
    objects = [
        LocalObject(
            source,
            _checked(directory_key(listing, name, relative), f"{path.given}/{relative}"),
            file_digest,
            f"{path.given}/{relative}",
        )
        for relative, source, file_digest in files
    ]
    return _checked(directory_key(listing, name), path.given), objects


def _checked(key: str, label: str) -> str:
    problem = key_problem(key)
    if problem:
        raise UsageError(f"cannot stage {label}: {problem}")
    return key


def hash_file(path: str, label: str, progress: Progress) -> FileDigest:
    """One pass over a file: its SHA-256 and the checksum S3 will keep of its upload."""
    try:
        with open(path, "rb") as infile:
            size = os.fstat(infile.fileno()).st_size
            problem = size_problem(size)
            if problem:
                raise UsageError(f"cannot stage {label}: {problem}")
            progress.reading(label, size)
            digest = ContentDigest(size)
            while chunk := infile.read(READ_CHUNK):
                digest.update(chunk)
    except OSError as exn:
        raise UsageError(f"cannot read {label}: {exn.strerror or exn}") from exn
    found = digest.finish()
    if found is None:
        raise UsageError(f"{label} changed while it was read; submit again once it is complete")
    return found


def walk_directory(top: str, label: str) -> list[tuple[str, str]]:
    """A Directory's files, (relative path with '/' separators, the file to read), without
    recursion (trees may nest deeper than Python's stack). Links are followed only to what lies
    inside ``top`` (a real path); anything else stops the submission, naming it."""
    files: list[tuple[str, str]] = []
    pending: list[tuple[str, str, tuple[str, ...]]] = [("", top, (top,))]
    while pending:
        relative, directory, chain = pending.pop()
        for entry in _entries(directory, label):
            path = relative + entry.name
            kind, target = _entry_kind(entry, top)
            if kind == "directory" and target in chain:
                kind = "is a link to a directory that contains it (a loop)"
            if kind == "directory":
                pending.append((path + "/", target, (*chain, target)))
            elif kind == "file":
                files.append((path, target))
            else:
                raise UsageError(f"Directory input {label}: {path} {kind}; it cannot be staged")
    return files


def _entries(directory: str, label: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exn:
        raise UsageError(f"cannot read Directory input {label}: {exn}") from exn


def _entry_kind(entry: os.DirEntry[str], top: str) -> tuple[str, str]:
    """('file' | 'directory', the path to read) or (why not, '')."""
    if not entry.is_symlink():
        if entry.is_dir(follow_symlinks=False):
            return "directory", entry.path
        if entry.is_file(follow_symlinks=False):
            return "file", entry.path
        return "is not a regular file or directory", ""
    target = os.path.realpath(entry.path)
    if target != top and not target.startswith(top.rstrip("/") + "/"):
        return "is a link out of the Directory (staged Directories do not follow those)", ""
    if os.path.isdir(target):
        return "directory", target
    if os.path.isfile(target):
        return "file", target
    return "is a link to nothing (or to no regular file)", ""


# ---- uploading -------------------------------------------------------------------------------


def upload(clients: Clients, bucket: str, objects: list[LocalObject], progress: Progress) -> None:
    """Upload what is not already there (S3's own SHA-256 of the object at the key says);
    then the summary."""
    staged = staged_bytes = already_there = 0
    for obj in objects:
        checksum = obj.digest.checksum
        if already_staged(clients, bucket, obj.key, checksum):
            already_there += 1
            continue
        meter = progress.uploading(obj.label, checksum.size)
        upload_file(clients, bucket, obj.key, obj.source, checksum, meter)
        staged += 1
        staged_bytes += checksum.size
    progress.summary(staged, staged_bytes, already_there)
