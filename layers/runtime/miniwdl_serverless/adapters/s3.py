"""The Uploads port on S3 (``s3upload``)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class S3Uploads:
    def __init__(self, client: Any):
        self.client = client

    def upload_file(self, path: str, uri: str) -> None:
        bucket, key = split_uri(uri)
        self.client.upload_file(path, bucket, key)

    def put_json(self, uri: str, data: Any) -> None:
        bucket, key = split_uri(uri)
        body = json.dumps(data, indent=2).encode()
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


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
