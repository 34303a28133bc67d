"""The WorkflowSources port: a WDL document (or miniwdl zip) from a local or EFS path, an
https:// URL or an s3:// URI.

A path must resolve inside ``root`` (the EFS mount in the Lambdas; ``/`` for the CLI and local
mode) and be a regular file, read without blocking and only up to the limit: the Lambda never
reads its own environment (``/proc/self/environ``) or a FIFO a task left on EFS."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.core import safe_fs

FETCH_TIMEOUT_SECONDS = 30


class UriSources:
    def __init__(
        self, s3_client: Callable[[], Any] | None = None, root: str = "/", internet: bool = True
    ):
        self._s3_client = s3_client  # made when first needed (only s3:// workflows need it)
        self.root = os.path.realpath(root)
        self.internet = internet  # False: the functions' subnets have no route out (no NAT)

    def fetch(self, uri: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes, so that a caller can tell a document is too large."""
        if uri.startswith(("http://", "https://")) and not self.internet:
            raise ValueError(
                f"{uri}: the stack's functions have no internet access (FunctionsInternet is "
                "false): give the workflow as an s3:// URI (`miniwdl-serverless submit` stages "
                "a local file) or inline"
            )
        if uri.startswith(("http://", "https://")):
            with urllib.request.urlopen(uri, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 (scheme checked)
                return response.read(limit + 1)  # type: ignore[no-any-return]
        if uri.startswith("s3://"):
            bucket, _, key = uri[len("s3://") :].partition("/")
            body = self._s3().get_object(Bucket=bucket, Key=key)["Body"]
            return body.read(limit + 1)  # type: ignore[no-any-return]
        if not os.path.isabs(uri):
            raise FileNotFoundError(f"not an absolute path: {uri}")
        if not safe_fs.inside(self.root, os.path.realpath(uri)):
            raise safe_fs.UnsafePath(f"{uri} is outside the EFS root {self.root}")
        fd = safe_fs.open_regular(self.root, safe_fs.resolved(self.root, uri))
        with os.fdopen(fd, "rb") as infile:
            return infile.read(limit + 1)

    def _s3(self) -> Any:
        if self._s3_client is not None:
            return self._s3_client()
        from miniwdl_serverless.adapters import clients

        return clients.client("s3")
