"""Local File and Directory inputs that ``submit`` stages to the stack's bucket. Pure: which
input paths are staged, their content-addressed keys, a Directory's digest, and the checksum S3
keeps of an upload (to tell an object already there from another one under the same key). The
CLI's shell reads and walks the files (``cli/staging.py``) and uploads them (``cli/stack.py``).

* A File goes to ``inputs/<SHA-256 of its content>/<its name>``;
* a Directory's files to ``inputs/<directory digest>/<its name>/<relative path>``, the digest
  being the SHA-256 of a canonical listing of its files (``directory_digest``); the input then
  names the prefix, ending in ``/``.

An object already at its key is reused only if S3's own SHA-256 checksum of it is the one
this content gets (``ObjectChecksum.matches``): the key alone proves nothing, as anyone who may
write the bucket may write any key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from miniwdl_serverless.core.stack_bucket import staged_input_key

MiB = 1024 * 1024
# Files from this size go up in parts (boto3's transfer manager; its default threshold and
# part size). The part size is doubled until a file fits in S3's 10,000 parts, as the transfer
# manager would adjust it, so the composite checksum computed here is the one S3 computes.
MULTIPART_THRESHOLD = 8 * MiB
BASE_PART_SIZE = 8 * MiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB  # S3's limit: 5 TiB
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8
DIRECTORY_LISTING_VERSION = 1

URI, ON_EFS, LOCAL = "uri", "efs", "local"


# ---- which inputs are staged ---------------------------------------------------------------


@dataclass(frozen=True)
class InputPath:
    """One File or Directory value of the inputs, as given, and where it is."""

    given: str  # the path or URI as the inputs give it
    directory: bool
    where: str  # URI, ON_EFS or LOCAL
    path: str  # the URI, the absolute EFS path the run gets, or the local path to stage

    @property
    def kind(self) -> str:
        return "Directory" if self.directory else "File"


def locate(given: str, directory: bool, efs_root: str, cwd: str) -> InputPath:
    """Where an input path is: a URI (passed through), a path on the stack's file system (under
    its mount, ``efs_root``; passed through, made absolute), or a file on this machine, to be
    staged. Relative paths are relative to ``cwd``, as ``miniwdl run`` takes them; ``..`` is
    resolved before deciding, so ``/mnt/efs/../home/x`` is a local path."""
    if "://" in given:
        return InputPath(given, directory, URI, given)
    path = posixpath.normpath(posixpath.join(cwd, given))
    if path.startswith("//"):  # normpath keeps a leading "//"
        path = "/" + path.lstrip("/")
    root = posixpath.normpath(efs_root)
    on_efs = root == "/" or path == root or path.startswith(root + "/")
    if on_efs:
        return InputPath(given, directory, ON_EFS, given if given.startswith("/") else path)
    return InputPath(given, directory, LOCAL, path)


def locate_all(
    given: Iterable[tuple[str, bool]], efs_root: str, cwd: str
) -> dict[tuple[str, bool], InputPath]:
    """``locate`` for every (path, is a Directory) of the inputs, each once."""
    return {(path, directory): locate(path, directory, efs_root, cwd) for path, directory in given}


def staged_name(path: str) -> str:
    """The name a staged input keeps: the base name of the path as given (a link's own name, as
    miniwdl localizes it), so that tasks see the same file name."""
    return posixpath.basename(path.rstrip("/")) or "root"


# ---- content digests and S3's checksums ----------------------------------------------------


def part_size(size: int) -> int | None:
    """The part size a file of ``size`` bytes is uploaded with; None: in one PutObject."""
    if size < MULTIPART_THRESHOLD:
        return None
    part = BASE_PART_SIZE
    while -(-size // part) > MAX_PARTS:
        part *= 2
    return part


@dataclass(frozen=True)
class ObjectChecksum:
    """S3's ``ChecksumSHA256`` of an object uploaded with that checksum: the SHA-256 of its
    content (one PutObject), or for a multipart upload the SHA-256 of its parts' SHA-256
    digests (S3's composite checksum, which it may show with ``-<parts>``)."""

    value: str  # base64
    size: int
    parts: int | None = None  # None: one PutObject

    @classmethod
    def of_bytes(cls, data: bytes) -> ObjectChecksum:
        """An object put whole (as staged workflows are)."""
        return cls.whole(hashlib.sha256(data).digest(), len(data))

    @classmethod
    def whole(cls, sha256: bytes, size: int) -> ObjectChecksum:
        """An object put whole, of this SHA-256 (raw digest) and size."""
        return cls(_b64(sha256), size)

    @classmethod
    def composite(cls, part_digests: Sequence[bytes], size: int) -> ObjectChecksum:
        """A multipart upload of parts of these SHA-256 (raw) digests, in order."""
        return cls(_b64(hashlib.sha256(b"".join(part_digests)).digest()), size, len(part_digests))

    def matches(self, head: Mapping[str, Any]) -> bool:
        """Whether a HeadObject answer (with ``ChecksumMode=ENABLED``) is this content.

        A composite checksum is the SHA-256 of the parts' digests, which is also the plain
        SHA-256 of a small object holding those digests; the size tells them apart."""
        value, _, parts = str(head.get("ChecksumSHA256") or "").partition("-")
        if value != self.value or ("ContentLength" in head and head["ContentLength"] != self.size):
            return False
        if self.parts is None:
            return not parts
        return "ContentLength" in head and parts in ("", str(self.parts))


@dataclass
class ContentDigest:
    """The SHA-256 of a file's content and the checksum S3 will keep of its upload, from one
    pass over its bytes (fed in chunks of any size)."""

    size: int
    part: int | None = field(init=False)
    _whole: Any = field(init=False, default_factory=hashlib.sha256)
    _current: Any = field(init=False, default_factory=hashlib.sha256)
    _in_part: int = field(init=False, default=0)
    _parts: list[bytes] = field(init=False, default_factory=list)
    _seen: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.part = part_size(self.size)

    def update(self, data: bytes) -> None:
        self._whole.update(data)
        self._seen += len(data)
        if self.part is None:
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self.part - self._in_part)
            self._current.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self.part:
                self._end_part()

    def _end_part(self) -> None:
        self._parts.append(self._current.digest())
        self._current = hashlib.sha256()
        self._in_part = 0

    def finish(self) -> FileDigest | None:
        """The digests; None if the bytes fed are not ``size`` (the file changed meanwhile)."""
        if self._seen != self.size:
            return None
        if self.part is None:
            checksum = ObjectChecksum.whole(self._whole.digest(), self.size)
        else:
            if self._in_part:
                self._end_part()
            checksum = ObjectChecksum.composite(self._parts, self.size)
        return FileDigest(self._whole.hexdigest(), checksum)


@dataclass(frozen=True)
class FileDigest:
    sha256: str  # hex, of the content: the key's digest
    checksum: ObjectChecksum  # what S3 will keep of its upload


def directory_digest(files: Iterable[tuple[str, str]]) -> str:
    """The SHA-256 (hex) of a Directory: of the canonical JSON listing of its files, each as
    [relative path with '/' separators, SHA-256 hex of its content], sorted by path. Only
    files are listed (S3 holds objects, not directories: an empty subdirectory is not staged)."""
    listing = {
        "miniwdl_serverless_directory": DIRECTORY_LISTING_VERSION,
        "files": [[path, digest] for path, digest in sorted(files)],
    }
    text = json.dumps(listing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_key(digest: FileDigest, name: str) -> str:
    return staged_input_key(digest.sha256, name)


def directory_key(dir_digest: str, name: str, relative: str = "") -> str:
    """The key of a staged Directory's file (or, with no relative path, its prefix, ending in
    '/')."""
    return staged_input_key(dir_digest, f"{name}/{relative}")


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an S3 key (not UTF-8, as a file name of undecodable bytes; longer
    than S3's 1024 bytes); None if it can."""
    try:
        length = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "its name is not valid UTF-8, which S3 keys must be"
    if length > MAX_KEY_BYTES:
        return f"its key would be {length} bytes, more than S3's {MAX_KEY_BYTES}"
    return None


def size_problem(size: int) -> str | None:
    if size > MAX_OBJECT_SIZE:
        largest = human_size(MAX_OBJECT_SIZE)
        return f"it is {human_size(size)}, more than S3's largest object ({largest})"
    return None


# ---- reporting -----------------------------------------------------------------------------


def human_size(size: float) -> str:
    """1234567 → '1.2 MB' (decimal units, as S3's console shows them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def staging_summary(staged: int, staged_bytes: int, already_there: int) -> str:
    """'staged 3 files (1.2 GB), 2 already there'."""
    files = "file" if staged == 1 else "files"
    text = f"staged {staged} {files}"
    if staged:
        text += f" ({human_size(staged_bytes)})"
    return f"{text}, {already_there} already there"


def refusal(local: Sequence[InputPath], efs_root: str) -> str:
    """--no-stage: what it refuses, naming the local inputs."""
    shown = ", ".join(f"{p.kind} {p.path}" for p in local[:5])
    more = f" and {len(local) - 5} more" if len(local) > 5 else ""
    one = len(local) == 1
    return (
        f"--no-stage: {shown}{more} {'is' if one else 'are'} on this machine, not on the "
        f"stack's file system (under {efs_root}): copy {'it' if one else 'them'} there or give "
        "an s3:// URI, or leave out --no-stage to stage to the stack's bucket"
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
