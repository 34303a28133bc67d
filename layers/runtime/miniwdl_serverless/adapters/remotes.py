"""The Remotes port: probing and fetching URI inputs. S3 through boto3 (the bucket's own
region, requester pays when configured, unsigned for public buckets the role cannot read);
http, https and ftp through urllib; gs:// as Google Cloud Storage's public https endpoint.

Not wrapped in adapters/retrying.py: a fetch writes as it goes, so it is not safe to repeat
blindly; boto3's transfer manager and botocore retry S3 themselves, and what still fails is
either the URI's fault (``DownloadError``) or transient (``TransientError``)."""

from __future__ import annotations

import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, BinaryIO

from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from miniwdl_serverless.adapters import clients
from miniwdl_serverless.adapters.aws_errors import classify
from miniwdl_serverless.adapters.retrying import Failure
from miniwdl_serverless.controller.ports import TransientError
from miniwdl_serverless.core.localizing import (
    DownloadError,
    Remote,
    RemoteFile,
    directory_version,
    http_url,
    relative_problem,
    split_s3,
)

TIMEOUT_SECONDS = 60
DENIED = ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "ExpiredToken")
MISSING = ("NoSuchKey", "404", "NoSuchBucket", "NotFound")
ClientFactory = Callable[[str | None, bool], Any]  # (region, unsigned) → an S3 client


def boto3_clients(region: str | None, unsigned: bool) -> Any:
    extra = Config(signature_version=UNSIGNED) if unsigned else None
    return clients.client("s3", extra, region_name=region)


class UriRemotes:
    def __init__(self, clients: ClientFactory = boto3_clients, internet: bool = True):
        """``internet``: whether the functions can reach anything but S3 (no NAT gateway in
        their subnets: False). Without it an http(s) URI is not probed: its download is a
        Batch job's (the compute subnets have an internet gateway), cached by its URI."""
        self._factory = clients
        self.internet = internet
        self._clients: dict[tuple[str | None, bool], Any] = {}
        self._lock = threading.Lock()

    def probe(self, uri: str, directory: bool, requester_pays: bool) -> Remote:
        if uri.startswith("s3://"):
            return self._s3_call(
                uri, requester_pays, lambda c, a, u: _probe_s3(uri, directory, c, a, u)
            )
        if directory:
            raise DownloadError(uri, "a Directory can be downloaded only from an s3:// prefix")
        if not self.internet:
            return Remote(uri, "", -1, reachable=False)
        return _probe_http(uri)

    def fetch(self, uri: str, remote: Remote, requester_pays: bool, out: BinaryIO) -> int:
        if uri.startswith("s3://"):
            bucket, key = split_s3(uri)

            def get(client: Any, extra: dict[str, Any], _unsigned: bool) -> int:
                client.download_fileobj(bucket, key, out, ExtraArgs=extra or None)
                return out.tell()

            return self._s3_call(uri, requester_pays, get, remote)
        return _fetch_http(uri, out)

    # -- S3 --
    def _client(self, region: str | None, unsigned: bool) -> Any:
        with self._lock:
            if (region, unsigned) not in self._clients:
                self._clients[(region, unsigned)] = self._factory(region, unsigned)
            return self._clients[(region, unsigned)]

    def _s3_call(
        self,
        uri: str,
        requester_pays: bool,
        call: Callable[[Any, dict[str, Any], bool], Any],
        known: Remote | None = None,
    ) -> Any:
        """``call(client, extra args, unsigned)`` signed, then (access denied, no requester
        pays) unsigned, in the bucket's region once S3 names it; errors become the port's."""
        extra = {"RequestPayer": "requester"} if requester_pays else {}
        region = known.region if known is not None else None
        attempts = [True] if known is not None and known.unsigned else [False, True]
        if requester_pays:
            attempts = [False]
        last: Exception | None = None
        for unsigned in attempts:
            for _ in range(2):  # once more in the region a redirect names
                try:
                    return call(self._client(region, unsigned), extra, unsigned)
                except ClientError as exn:
                    last = exn
                    named = _bucket_region(exn)
                    if named and named != region:
                        region = named
                        continue
                    if _code(exn) in DENIED:
                        break
                    raise _port_error(uri, exn) from exn
                except BotoCoreError as exn:
                    raise _port_error(uri, exn) from exn
        assert last is not None
        raise _port_error(uri, last) from last


def _probe_s3(
    uri: str, directory: bool, client: Any, extra: dict[str, Any], unsigned: bool
) -> Remote:
    bucket, key = split_s3(uri)
    region = client.meta.region_name
    if not directory:
        head = client.head_object(Bucket=bucket, Key=key, **extra)
        headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
        region = headers.get("x-amz-bucket-region") or region  # S3 says where it is
        version = head.get("VersionId") or head.get("ETag") or str(head.get("LastModified"))
        return Remote(uri, version, int(head["ContentLength"]), region=region, unsigned=unsigned)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    files: list[RemoteFile] = []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **extra)
    for page in pages:
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if not relative or relative.endswith("/"):
                continue  # the prefix itself, or a console "folder" marker
            problem = relative_problem(relative)
            if problem:
                raise DownloadError(uri, problem)
            files.append(RemoteFile(relative, int(item["Size"]), str(item.get("ETag"))))
    if not files:
        raise DownloadError(uri, "no objects under this prefix")
    size = sum(f.size for f in files)
    version = directory_version(files)
    return Remote(uri, version, size, True, tuple(files), region, unsigned)


def _code(exn: ClientError) -> str:
    return str(exn.response.get("Error", {}).get("Code") or "")


def _bucket_region(exn: ClientError) -> str | None:
    headers = exn.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    region = headers.get("x-amz-bucket-region")
    status = exn.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(region) if region and status in (301, 400) else None


def _port_error(uri: str, exn: Exception) -> Exception:
    if classify(exn) in (Failure.TRANSIENT, Failure.THROTTLED):
        return TransientError(f"{uri}: {exn}")
    if isinstance(exn, ClientError):
        code = _code(exn)
        if code in MISSING:
            return DownloadError(uri, "no such object (404)")
        if code in DENIED:
            return DownloadError(uri, f"access denied ({code})")
        return DownloadError(uri, f"{code}: {exn.response.get('Error', {}).get('Message', '')}")
    return DownloadError(uri, str(exn))


# -- http, https, ftp, gs --
def _probe_http(uri: str) -> Remote:
    url = http_url(uri)
    method = "HEAD" if url.startswith(("http://", "https://")) else "GET"
    request = urllib.request.Request(url, method=method)  # noqa: S310 - schemes checked
    with _open(uri, request) as response:
        headers = response.headers
        length = headers.get("Content-Length")
        version = headers.get("ETag") or headers.get("Last-Modified") or ""
        size = int(length) if length and length.isdigit() else -1
    return Remote(uri, f"{version}|{size}" if version else "", size)


def _fetch_http(uri: str, out: BinaryIO) -> int:
    request = urllib.request.Request(http_url(uri))  # noqa: S310 - schemes checked
    with _open(uri, request) as response:
        shutil.copyfileobj(response, out, 1 << 20)
    return out.tell()


def _open(uri: str, request: urllib.request.Request) -> Any:
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310
    except urllib.error.HTTPError as exn:
        if exn.code == 429 or exn.code >= 500:
            raise TransientError(f"{uri}: HTTP {exn.code} {exn.reason}") from exn
        raise DownloadError(uri, f"HTTP {exn.code} {exn.reason}") from exn
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exn:
        reason = getattr(exn, "reason", exn)
        if isinstance(reason, (TimeoutError, ConnectionError)):
            raise TransientError(f"{uri}: {reason}") from exn
        raise DownloadError(uri, str(reason)) from exn
