"""The Uploads port on S3 (``s3upload``)."""

from __future__ import annotations

import json
from typing import Any


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
