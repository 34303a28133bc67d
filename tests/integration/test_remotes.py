"""The Remotes adapter (adapters/remotes.py) on moto's S3 and a server on 127.0.0.1: versions,
sizes and a prefix's objects; errors that name the URI and why; requester pays; the unsigned
retry for public buckets the role cannot read; transient HTTP errors."""

from __future__ import annotations

import io
import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from miniwdl_serverless.adapters.remotes import UriRemotes, boto3_clients
from miniwdl_serverless.controller.ports import TransientError
from miniwdl_serverless.core.localizing import DownloadError
from tests.e2e.test_localization import Served

pytestmark = pytest.mark.xdist_group("embedded")


@pytest.fixture
def bucket(embedded) -> str:
    name = "remotes-" + os.urandom(4).hex()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a/reads.txt", Body=b"ACGT\n")
    s3.put_object(Bucket=name, Key="refs/", Body=b"")
    s3.put_object(Bucket=name, Key="refs/one.txt", Body=b"1")
    s3.put_object(Bucket=name, Key="refs/sub/two.txt", Body=b"22")
    return name


def test_an_object_and_a_prefix_are_probed_and_fetched(bucket):
    remotes = UriRemotes()
    remote = remotes.probe(f"s3://{bucket}/a/reads.txt", False, False)
    assert remote.size == 5 and remote.version and not remote.unsigned
    out = io.BytesIO()
    assert remotes.fetch(remote.uri, remote, False, out) == 5 and out.getvalue() == b"ACGT\n"
    folder = remotes.probe(f"s3://{bucket}/refs/", True, False)
    assert [(f.relative, f.size) for f in folder.files] == [("one.txt", 1), ("sub/two.txt", 2)]
    assert folder.size == 3 and folder.directory
    boto3.client("s3").put_object(Bucket=bucket, Key="a/reads.txt", Body=b"TTTT\n")
    assert remotes.probe(remote.uri, False, False).version != remote.version


@pytest.mark.parametrize(
    "uri, directory, reason",
    [
        ("s3://{b}/a/none.txt", False, "no such object (404)"),
        ("s3://{b}-missing/x", False, "no such object (404)"),
        ("s3://{b}/empty/", True, "no objects under this prefix"),
    ],
)
def test_what_cannot_be_downloaded_names_the_uri_and_why(bucket, uri, directory, reason):
    with pytest.raises(DownloadError) as raised:
        UriRemotes().probe(uri.format(b=bucket), directory, False)
    assert raised.value.uri == uri.format(b=bucket) and raised.value.reason == reason


def test_requester_pays_is_sent(bucket):
    sent: list[Any] = []

    def clients(region: str | None, unsigned: bool) -> Any:
        client = boto3_clients(region, unsigned)
        client.meta.events.register(
            "before-parameter-build.s3", lambda params, **_: sent.append(params.get("RequestPayer"))
        )
        return client

    UriRemotes(clients).probe(f"s3://{bucket}/a/reads.txt", False, True)
    UriRemotes(clients).probe(f"s3://{bucket}/refs/", True, True)
    assert sent and all(payer == "requester" for payer in sent)


def test_a_public_bucket_the_role_cannot_read_is_read_unsigned(bucket):
    def clients(region: str | None, unsigned: bool) -> Any:
        client = boto3_clients(region, False)  # moto refuses anonymous reads: signed stands in
        if not unsigned:  # the stack's role: no permission on another account's bucket

            def deny(**_: Any) -> None:
                error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
                raise ClientError(error, "HeadObject")

            client.meta.events.register("before-call.s3", deny)
        return client

    remote = UriRemotes(clients).probe(f"s3://{bucket}/a/reads.txt", False, False)
    assert remote.unsigned and remote.size == 5


def test_http_errors_are_the_uris_or_transient():
    served = Served()
    try:
        served.files["/ok.txt"] = b"hello"
        remotes = UriRemotes()
        remote = remotes.probe(served.url("/ok.txt"), False, False)
        assert remote.size == 5 and remote.version.startswith('"')
        with pytest.raises(DownloadError, match="HTTP 404"):
            remotes.probe(served.url("/missing"), False, False)
        with pytest.raises(DownloadError, match="only from an s3:// prefix"):
            remotes.probe(served.url("/ok.txt"), True, False)
        with pytest.raises(TransientError):
            remotes.probe("http://127.0.0.1:9/unreachable", False, False)
    finally:
        served.server.shutdown()
