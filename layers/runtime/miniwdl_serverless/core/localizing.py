"""Input localization's decisions: which File and Directory values are URIs to download, where
the download cache keeps each version of one, whether the Lambda downloads it or a Batch
download job does, and what that job runs. Pure: the controller (controller/localize.py) does
the I/O through the Remotes and CacheStore ports."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from miniwdl_serverless.core.resources import Resources, TaskSubmission

SCHEMES = ("s3", "http", "https", "ftp", "gs")
DOWNLOAD_TAG = "miniwdl-serverless:download"  # a download job's cache entry key
DEFAULT_LAMBDA_LIMIT = 1 << 30  # bytes a call's Lambda downloads itself; more: a Batch job
DEFAULT_S3_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.22.35"  # entrypoint: aws
DEFAULT_HTTP_IMAGE = "public.ecr.aws/docker/library/buildpack-deps:bookworm-curl"
DEFAULT_CACHE_DIR = "_CACHE/download"  # under the EFS root, beside miniwdl-aws's miniwdl_run
MINIWDL_DEFAULT_DIR = "/tmp/miniwdl_download_cache"  # a Lambda's /tmp is not shared: not used
LEASE_SECONDS = 900  # a Lambda download holds its entry at most one invocation
JOB_LEASE_SECONDS = 86400  # a Batch download job holds it for its timeout (job_timeout_seconds)
GS_HTTP = "https://storage.googleapis.com/"


class DownloadError(Exception):
    """A URI that cannot be downloaded: says which and why (the run's error names both)."""

    def __init__(self, uri: str, reason: str):
        super().__init__(f"cannot download {uri}: {reason}")
        self.uri, self.reason = uri, reason


def is_downloadable(value: str) -> bool:
    """A URI of a scheme we download (miniwdl's built-in downloaders: http, https, ftp, s3, gs)."""
    parts = urlparse(value)
    return parts.scheme in SCHEMES and bool(parts.netloc)


def http_url(uri: str) -> str:
    """The URL a non-S3 URI is fetched from: ``gs://b/k`` is Google Cloud Storage's public
    https endpoint (objects readable without credentials, as miniwdl's gsutil task reads)."""
    if uri.startswith("gs://"):
        return GS_HTTP + uri[len("gs://") :]
    return uri


def split_s3(uri: str) -> tuple[str, str]:
    parts = urlparse(uri)
    return parts.netloc, parts.path.lstrip("/")


@dataclass(frozen=True)
class RemoteFile:
    """One object of a remote Directory (an ``s3://…/`` prefix): its path inside the directory."""

    relative: str
    size: int
    etag: str


@dataclass(frozen=True)
class Remote:
    """What a probe learned of a URI: the version that identifies its content (ETag, version
    id, or Last-Modified), its size and, for a Directory, its objects."""

    uri: str
    version: str
    size: int
    directory: bool = False
    files: tuple[RemoteFile, ...] = ()
    region: str | None = None
    unsigned: bool = False  # a public bucket the role may not read: fetched without signing
    reachable: bool = True  # the functions can fetch it (False: only a Batch download job can)

    def to_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "version": self.version,
            "size": self.size,
            "directory": self.directory,
            "files": [[f.relative, f.size, f.etag] for f in self.files],
            "region": self.region,
            "unsigned": self.unsigned,
            "reachable": self.reachable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Remote:
        files = tuple(RemoteFile(str(r), int(n), str(e)) for r, n, e in data.get("files") or [])
        return cls(
            str(data["uri"]),
            str(data["version"]),
            int(data["size"]),
            bool(data.get("directory")),
            files,
            data.get("region"),
            bool(data.get("unsigned")),
            bool(data.get("reachable", True)),
        )


def directory_version(files: list[RemoteFile]) -> str:
    """A prefix's version: every object's path, size and ETag (any change is a new version)."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.relative):
        digest.update(f"{item.relative}\0{item.size}\0{item.etag}\n".encode())
    return digest.hexdigest()


_SAFE_PART = re.compile(r"^[^/\0]+$")


def relative_problem(relative: str) -> str | None:
    """Why an object key below a prefix cannot be a path inside the downloaded directory."""
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") or not _SAFE_PART.match(p) for p in parts):
        return f"object key part {relative!r} is not a safe relative path"
    return None


@dataclass(frozen=True)
class Settings:
    """``[download_cache]`` as miniwdl names it, plus ``[serverless]`` download settings."""

    cache_dir: str  # absolute, under the file system's root
    use_cache: bool  # [download_cache] get and put: else a run downloads into its own directory
    lambda_limit: int = DEFAULT_LAMBDA_LIMIT
    s3_image: str = DEFAULT_S3_IMAGE
    http_image: str = DEFAULT_HTTP_IMAGE
    requester_pays: bool = False
    job_timeout_seconds: int = JOB_LEASE_SECONDS
    job_resources: Resources = field(default_factory=lambda: Resources(vcpus=2, memory_mib=4096))

    @classmethod
    def from_config(cls, cfg: Any, root: str) -> Settings:
        def text(section: str, key: str, default: str) -> str:
            return str(cfg.get(section, key)) if cfg.has_option(section, key) else default

        directory = text("download_cache", "dir", MINIWDL_DEFAULT_DIR)
        if directory == MINIWDL_DEFAULT_DIR and root != "/":
            directory = DEFAULT_CACHE_DIR  # miniwdl's default is a local /tmp: EFS instead
        use_cache = all(
            not cfg.has_option("download_cache", key) or cfg["download_cache"].get_bool(key)
            for key in ("get", "put")
        )
        limit = DEFAULT_LAMBDA_LIMIT
        if cfg.has_option("serverless", "lambda_download_limit"):
            limit = int(cfg.get_int("serverless", "lambda_download_limit"))
        return cls(
            cache_dir=os.path.normpath(os.path.join(root, directory)),
            use_cache=use_cache,
            lambda_limit=limit,
            s3_image=text("serverless", "download_image_s3", DEFAULT_S3_IMAGE),
            http_image=text("serverless", "download_image_http", DEFAULT_HTTP_IMAGE),
            requester_pays=text("download_s3", "requester_pays", "false").lower() == "true",
        )


def cache_root(settings: Settings, run_dir: str) -> str:
    """The cache a run downloads into: the shared one, or (cache off) its own directory."""
    return settings.cache_dir if settings.use_cache else os.path.join(run_dir, "download")


def entry_key(root: str, remote: Remote) -> str:
    """The cache entry of one version of a URI in one cache (the store's item key)."""
    text = f"{root}\0{remote.uri}\0{remote.directory}\0{remote.version}"
    return "download:" + hashlib.sha256(text.encode()).hexdigest()


def cache_path(root: str, remote: Remote) -> str:
    """Where one version of a URI lies in a cache: miniwdl's layout (``files|dirs/scheme/host/
    _dir_parts/name``) with a directory per version before the name, so an object that changed
    is kept beside the old one, and the path itself says where it came from."""
    parts = urlparse(remote.uri.rstrip("/") if remote.directory else remote.uri)
    head, name = os.path.split(parts.path)
    name = _component(name) or "download"
    folder = "_" + head.strip("/").replace("_", "__").replace("/", "_")
    version = entry_key(root, remote).split(":", 1)[1][:16]
    kind = "dirs" if remote.directory else "files"
    return os.path.join(
        root, kind, parts.scheme, _component(parts.netloc), _component(folder), version, name
    )


def _component(text: str) -> str:
    """One path component made of a URI's part: never empty, '.', '..' or holding '/'."""
    cleaned = re.sub(r"[^A-Za-z0-9._=+@,-]", "_", text)[:200]
    return "_" + cleaned if cleaned in ("", ".", "..") else cleaned


def partial_path(path: str, claimant: str) -> str:
    """Where a download is written before it is renamed into place (one per claimant)."""
    digest = hashlib.sha256(claimant.encode()).hexdigest()[:12]
    return os.path.join(os.path.dirname(path), f".partial-{digest}", os.path.basename(path))


LAMBDA_FILE_COUNT = 1000  # a prefix of more objects is downloaded by a Batch job


def in_lambda(remote: Remote, settings: Settings) -> bool:
    """Small enough for the Lambda (unknown sizes too: a server that does not say), and
    reachable from it."""
    small = remote.size <= settings.lambda_limit and len(remote.files) <= LAMBDA_FILE_COUNT
    return remote.reachable and small


def stamp_matches(stamp: Stamp | None, expected: Stamp | None) -> bool:
    """A cached download is intact: as it was when it settled (nothing changed or removed)."""
    return stamp is not None and expected is not None and stamp == expected


def complete_download(remote: Remote, stamp: Stamp | None) -> str | None:
    """Why a finished download is not the object probed (None: it is)."""
    if stamp is None:
        return "nothing was written"
    if remote.directory and stamp.count != len(remote.files):
        return f"{stamp.count} files written, {len(remote.files)} expected"
    if remote.size >= 0 and stamp.size != remote.size:
        return f"{stamp.size} bytes written, {remote.size} expected"
    return None


def download_submission(  # noqa: PLR0913 - the job's name, queue, target and routing
    remote: Remote, settings: Settings, name: str, queue: str, target: str, tags: dict[str, str]
) -> TaskSubmission:
    """The Batch download job: ``aws s3 cp`` in the AWS CLI image (whose entrypoint is ``aws``)
    with the task jobs' role, or curl for http, https, ftp and gs. It writes ``target`` (the
    entry's partial path); the controller renames it into place when the job succeeded."""
    if remote.uri.startswith("s3://"):
        command = ["s3", "cp", "--only-show-errors", "--no-progress"]
        if remote.directory:
            command.append("--recursive")
        if settings.requester_pays:
            command += ["--request-payer", "requester"]
        if remote.region:
            command += ["--region", remote.region]
        if remote.unsigned:
            command.append("--no-sign-request")
        command += [remote.uri, target + ("/" if remote.directory else "")]
        image = settings.s3_image
    else:
        script = (
            'mkdir -p "$(dirname "$1")" && '
            'curl -fsSL --retry 5 --retry-delay 10 --connect-timeout 60 -o "$1" "$2"'
        )
        command = ["bash", "-c", script, "download", target, http_url(remote.uri)]
        image = settings.http_image
    return TaskSubmission(
        name=name,
        queue=queue,
        image=image,
        resources=settings.job_resources,
        script=" ".join(shlex.quote(c) for c in command),
        tags=tags,
        timeout_seconds=settings.job_timeout_seconds,
        command=command,
    )


def download_job_name(run_id: str, key: str) -> str:
    """Deterministic per (run, cache entry): a redelivery finds the job instead of doubling it."""
    digest = hashlib.sha256(f"{run_id}\0{key}".encode()).hexdigest()[:24]
    return f"download-{digest}"


@dataclass(frozen=True)
class Stamp:
    """What a finished download looked like on disk: a later change (a task writing into the
    cache, which any task can) makes the entry stale, so it is downloaded again."""

    size: int
    mtime_ns: int
    count: int = 1

    def to_json(self) -> dict[str, int]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "count": self.count}

    @classmethod
    def from_json(cls, data: Any) -> Stamp | None:
        if not isinstance(data, dict):
            return None
        return cls(int(data["size"]), int(data["mtime_ns"]), int(data.get("count", 1)))


def waiter_id(run_id: str, job_id: str, attempt: int) -> str:
    return f"{run_id}\t{job_id}\t{attempt}"


def parse_waiter(text: str) -> tuple[str, str, int] | None:
    parts = text.split("\t")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])
