"""The Uploads port on S3 (``s3upload``)."""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.exceptions import ClientError

from miniwdl_serverless.core import safe_fs


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class S3Uploads:
    """Uploads to S3 (``s3upload``) what a run left on EFS. A file is read the way RunFiles reads
    (core/safe_fs.py): a regular file whose real path lies under ``root`` (the EFS mount; ``/``
    in local mode), opened without following a link a task swapped in after the controller
    checked it, so neither the Lambda's own files nor a FIFO are ever uploaded."""

    def __init__(self, client: Any, root: str = "/"):
        self.client = client
        self.root = os.path.realpath(root)

    def upload_file(self, path: str, uri: str) -> None:
        bucket, key = split_uri(uri)
        fd = safe_fs.open_regular(self.root, safe_fs.resolved(self.root, path))
        with os.fdopen(fd, "rb") as infile:
            self.client.upload_fileobj(infile, bucket, key)

    def put_json(self, uri: str, data: Any) -> None:
        bucket, key = split_uri(uri)
        body = json.dumps(data, indent=2).encode()
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def get_json(self, uri: str) -> Any:
        bucket, key = split_uri(uri)
        return json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())


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
