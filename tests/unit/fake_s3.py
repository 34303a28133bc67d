"""An S3 client for the real ``S3Uploads`` without moto: keeps every object it is given (at most
``read_limit`` bytes of each, enough to see a secret), with its metadata, and answers
HeadObject as S3 does (404 for a missing key)."""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import ClientError


class RecordingS3:
    def __init__(self, read_limit: int = -1) -> None:
        self.read_limit = read_limit
        self.bodies: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}

    def upload_fileobj(self, infile: Any, bucket: str, key: str, **kwargs: Any) -> None:
        uri = f"s3://{bucket}/{key}"
        self.bodies[uri] = infile.read(self.read_limit)
        self.metadata[uri] = dict((kwargs.get("ExtraArgs") or {}).get("Metadata") or {})

    def put_object(self, Bucket: str, Key: str, Body: bytes, **kwargs: Any) -> None:  # noqa: N803
        self.bodies[f"s3://{Bucket}/{Key}"] = Body
        self.metadata[f"s3://{Bucket}/{Key}"] = dict(kwargs.get("Metadata") or {})

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        uri = f"s3://{Bucket}/{Key}"
        if uri not in self.bodies:
            error = {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}
            raise ClientError(error, "HeadObject")  # type: ignore[arg-type]
        return {"ContentLength": len(self.bodies[uri]), "Metadata": self.metadata[uri]}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.bodies[f"s3://{Bucket}/{Key}"])}

    def delete_object(self, Bucket: str, Key: str) -> None:  # noqa: N803
        self.bodies.pop(f"s3://{Bucket}/{Key}", None)
        self.metadata.pop(f"s3://{Bucket}/{Key}", None)
