"""Input localization's pure decisions (core/localizing.py)."""

from __future__ import annotations

import pytest

from miniwdl_serverless.core import localizing
from miniwdl_serverless.core.localizing import Remote, RemoteFile, Settings, Stamp

ROOT = "/mnt/efs/_CACHE/download"


def settings(**fields) -> Settings:
    return Settings(cache_dir=ROOT, use_cache=True, **fields)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("s3://b/k", True),
        ("https://h/x.bam", True),
        ("http://h/x", True),
        ("ftp://h/x", True),
        ("gs://b/x", True),
        ("file:///etc/passwd", False),
        ("/mnt/efs/x", False),
        ("s3://", False),
        ("data://x", False),
    ],
)
def test_downloadable_schemes(value, expected):
    assert localizing.is_downloadable(value) is expected


def test_cache_path_keeps_miniwdls_layout_with_a_directory_per_version():
    one = Remote("s3://bucket/dir/sub_dir/reads.bam", '"etag1"', 10)
    two = Remote("s3://bucket/dir/sub_dir/reads.bam", '"etag2"', 10)
    path = localizing.cache_path(ROOT, one)
    head, version, name = path.rsplit("/", 2)
    assert head == f"{ROOT}/files/s3/bucket/_dir_sub__dir" and name == "reads.bam"
    assert len(version) == 16
    assert localizing.cache_path(ROOT, two) != path  # a changed object: a new place
    assert localizing.entry_key(ROOT, one) != localizing.entry_key(ROOT, two)
    assert localizing.entry_key(ROOT, one) != localizing.entry_key("/other", one)


@pytest.mark.parametrize(
    "uri",
    ["s3://b/a/..", "s3://b/..", "https://h/../../etc/passwd", "https://../x", "s3://b/a/."],
)
def test_cache_paths_never_leave_the_cache(uri):
    path = localizing.cache_path(ROOT, Remote(uri, "v", 1))
    assert path.startswith(ROOT + "/")
    assert "/../" not in path + "/" and not path.endswith("/..")


def test_directory_path_and_version():
    files = [RemoteFile("a.txt", 1, "e1"), RemoteFile("sub/b.txt", 2, "e2")]
    version = localizing.directory_version(files)
    assert version == localizing.directory_version(list(reversed(files)))
    changed = [RemoteFile("a.txt", 1, "e1"), RemoteFile("sub/b.txt", 2, "e3")]
    assert localizing.directory_version(changed) != version
    remote = Remote("s3://b/refs/", version, 3, True, tuple(files))
    assert localizing.cache_path(ROOT, remote).startswith(f"{ROOT}/dirs/s3/b/_/")
    assert localizing.cache_path(ROOT, remote).endswith("/refs")


@pytest.mark.parametrize("relative", ["", "a//b", "../x", "a/../b", "./a", "a/."])
def test_unsafe_object_keys_under_a_prefix_are_refused(relative):
    assert localizing.relative_problem(relative)


def test_safe_object_keys_are_taken():
    assert localizing.relative_problem("a/b c/d.txt") is None


def test_lambda_or_batch():
    small = Remote("s3://b/k", "v", 100)
    assert localizing.in_lambda(small, settings(lambda_limit=100))
    assert not localizing.in_lambda(small, settings(lambda_limit=99))
    many = tuple(RemoteFile(f"f{i}", 1, "e") for i in range(1001))
    assert not localizing.in_lambda(Remote("s3://b/p/", "v", 1001, True, many), settings())
    assert localizing.in_lambda(Remote("https://h/x", "", -1), settings())  # size unknown


def test_s3_download_job_runs_the_aws_cli_with_the_objects_options():
    remote = Remote("s3://b/p/", "v", 5, True, (), region="eu-west-1", unsigned=True)
    job = localizing.download_submission(
        remote, settings(requester_pays=True), "download-x", "q", "/mnt/efs/t/p", {"k": "v"}
    )
    assert job.command == [
        "s3", "cp", "--only-show-errors", "--no-progress", "--recursive",
        "--request-payer", "requester", "--region", "eu-west-1", "--no-sign-request",
        "s3://b/p/", "/mnt/efs/t/p/",
    ]  # fmt: skip
    assert job.image == localizing.DEFAULT_S3_IMAGE and job.tags == {"k": "v"}


def test_http_and_gs_download_jobs_run_curl():
    job = localizing.download_submission(
        Remote("gs://bucket/x.fa", "v", 5), settings(), "n", "q", "/t/x.fa", {}
    )
    assert job.command is not None and job.command[:2] == ["bash", "-c"]
    assert job.command[-2:] == ["/t/x.fa", "https://storage.googleapis.com/bucket/x.fa"]
    assert job.image == localizing.DEFAULT_HTTP_IMAGE


def test_a_finished_download_must_be_what_was_probed():
    remote = Remote("s3://b/k", "v", 10)
    assert localizing.complete_download(remote, Stamp(10, 1)) is None
    assert "9 bytes written, 10 expected" in str(localizing.complete_download(remote, Stamp(9, 1)))
    assert localizing.complete_download(remote, None) == "nothing was written"
    folder = Remote("s3://b/p/", "v", 3, True, (RemoteFile("a", 1, "e"), RemoteFile("b", 2, "e")))
    assert "1 files written, 2 expected" in str(localizing.complete_download(folder, Stamp(3, 1)))


def test_waiter_ids_round_trip():
    text = localizing.waiter_id("run-1", "call-sub/call-t-0", 2)
    assert localizing.parse_waiter(text) == ("run-1", "call-sub/call-t-0", 2)
    assert localizing.parse_waiter("nonsense") is None


def test_remote_json_round_trips():
    remote = Remote("s3://b/p/", "v", 3, True, (RemoteFile("a", 3, "e"),), "us-west-2", True)
    assert Remote.from_json(remote.to_json()) == remote
