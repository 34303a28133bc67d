"""The Uploads port on S3 (``s3upload``)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from miniwdl_serverless.core import safe_fs, uploads
from miniwdl_serverless.core.uploads import Remote, Transfer, UploadSettings

HASH_BLOCK = 8 * 1024 * 1024


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class FileChanged(OSError):
    """A file changed while it was uploaded: its object was removed again (its metadata
    could name content it does not have)."""


class S3Uploads:
    """Uploads to S3 (``s3upload``) what a run left on EFS. A file is read the way RunFiles reads
    (core/safe_fs.py): a regular file whose real path lies under ``root`` (the EFS mount; ``/``
    in local mode), opened without following a link a task swapped in after the controller
    checked it, so neither the Lambda's own files nor a FIFO are ever uploaded.

    Large files go up as multipart uploads, parts in parallel (boto3's transfer manager with
    ``settings``). Each object keeps the file's SHA-256 and stamp as metadata
    (core/uploads.py), and an object that has them already is not sent again: HeadObject
    first, then (unless the stamp says the file is the one uploaded) the file's SHA-256."""

    def __init__(self, client: Any, root: str = "/", settings: UploadSettings | None = None):
        self.client = client
        self.root = os.path.realpath(root)
        self.settings = settings or UploadSettings()
        self.transfer = TransferConfig(
            multipart_threshold=self.settings.multipart_threshold,
            multipart_chunksize=self.settings.part_size,
            max_concurrency=self.settings.concurrency,
            use_threads=True,
        )
        # parts read ahead into memory (s3transfer's setting; boto3's class does not take it):
        # one per thread, so memory is part size × concurrency
        self.transfer.max_in_memory_upload_chunks = self.settings.concurrency

    def upload_file(self, path: str, uri: str) -> Transfer:
        fd = safe_fs.open_regular(self.root, safe_fs.resolved(self.root, path))
        watch = os.dup(fd)  # the same open file, to stat after the transfer closed ``fd``
        try:
            with os.fdopen(fd, "rb") as infile:
                return self._upload(infile, watch, path, uri)
        finally:
            os.close(watch)

    def _upload(self, infile: BinaryIO, watch: int, path: str, uri: str) -> Transfer:
        bucket, key = split_uri(uri)
        before = os.fstat(watch)
        size, file_stamp = before.st_size, uploads.stamp(before)
        remote = self._head(bucket, key)
        if uploads.unchanged(remote, size, file_stamp):
            return Transfer(size, skipped=True)
        sha256 = _sha256(infile)
        if uploads.identical(remote, size, sha256) and _same(before, os.fstat(watch)):
            return Transfer(size, skipped=True)
        infile.seek(0)
        extra = {"Metadata": uploads.metadata(sha256, file_stamp)}
        self.client.upload_fileobj(infile, bucket, key, ExtraArgs=extra, Config=self.transfer)
        if not _same(before, os.fstat(watch)):  # a task wrote to it meanwhile
            self.client.delete_object(Bucket=bucket, Key=key)
            raise FileChanged(f"{path} changed while it was uploaded (not uploaded)")
        return Transfer(size)

    def put_json(self, uri: str, data: Any) -> Transfer:
        bucket, key = split_uri(uri)
        body = json.dumps(data, indent=2).encode()
        sha256 = hashlib.sha256(body).hexdigest()
        if uploads.identical(self._head(bucket, key), len(body), sha256):
            return Transfer(len(body), skipped=True)
        self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            Metadata=uploads.metadata(sha256),
        )
        return Transfer(len(body))

    def get_json(self, uri: str) -> Any:
        bucket, key = split_uri(uri)
        return json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _head(self, bucket: str, key: str) -> Remote | None:
        """The object at the key, or None. Without s3:ListBucket (the finish function has
        none: it need not list what else the bucket holds) S3 answers a missing key with 403,
        so 403 is "not known to be there" too: the upload then goes ahead."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exn:
            status = exn.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exn.response.get("Error", {}).get("Code")
            if status in (403, 404) or code in ("403", "404", "NoSuchKey", "Forbidden"):
                return None
            raise
        return Remote(int(response.get("ContentLength") or 0), response.get("Metadata") or {})


def _sha256(infile: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := infile.read(HASH_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def _same(before: os.stat_result, after: os.stat_result) -> bool:
    return uploads.stamp(before) == uploads.stamp(after)


class S3SubmissionStore:
    """The S3 drop's SubmissionStore (controller/submit.py) on an S3 client."""

    def __init__(self, s3: Any):
        self.s3 = s3

    def read(self, bucket: str, key: str, version_id: str | None, limit: int) -> bytes | None:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id and version_id != "null":
            args["VersionId"] = version_id
        try:
            response = self.s3.get_object(**args)
        except ClientError as exn:
            if exn.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "NoSuchVersion",
                "404",
                "InvalidArgument",
            ):
                return None
            raise
        stream = response["Body"]
        try:
            return bytes(
                stream.read(limit)
            )  # never more than the limit, whatever the object's size
        finally:
            stream.close()

    def write_error(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        body = json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
