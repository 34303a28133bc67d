"""URI inputs (s3:// on moto, https:// from a server on 127.0.0.1) downloaded into the download
cache on the embedded AWS: once per version of a URI, also for runs asking at the same time;
again once the object changed; a URI that cannot be downloaded fails the run before any task."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.xdist_group("embedded")

COUNT = """
version 1.2
task count {
  input {
    File f
    File? g
    Directory? d
    File extra = "REPLACED_DEFAULT"
  }
  command <<<
    wc -l < ~{f} | tr -d ' '
    ~{if defined(g) then "cat " + g else "true"} > g.txt
    ~{if defined(d) then "find -L " + d + " -type f | sort | sed 's#.*/##' > d.txt" else "true"}
    cat ~{extra} > extra.txt
  >>>
  output {
    Int lines = read_int(stdout())
    String g_text = read_string("g.txt")
    Array[String] d_files = if defined(d) then read_lines("d.txt") else []
    String extra_text = read_string("extra.txt")
    File f_out = f
  }
}
workflow w {
  input {
    File f
    File? g
    Directory? d
  }
  call count { input: f = f, g = g, d = d }
  output {
    Int lines = count.lines
    String g_text = count.g_text
    Array[String] d_files = count.d_files
    String extra_text = count.extra_text
    File f_out = count.f_out
  }
}
"""


class Served:
    """Files served over http on 127.0.0.1, with ETags; counts GETs per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.gets: Counter[str] = Counter()
        self.delay = 0.0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _head(self) -> bytes | None:
                body = served.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return None
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"' + hashlib.md5(body).hexdigest() + '"')  # noqa: S324
                self.end_headers()
                return body

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
                self._head()

            def do_GET(self) -> None:  # noqa: N802
                served.gets[self.path] += 1
                if served.delay:
                    threading.Event().wait(served.delay)
                body = self._head()
                if body is not None:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def served():
    server = Served()
    yield server
    server.server.shutdown()


@pytest.fixture
def bucket(embedded):
    s3 = boto3.client("s3")
    name = "data-" + os.urandom(4).hex()
    s3.create_bucket(Bucket=name)
    return s3, name


def run(embedded, tmp_path: Path, source: str, inputs: dict, cache: Path, **extra) -> dict:
    arn = embedded.start(
        {
            "workflow_source": source,
            "inputs": inputs,
            "dir": str(tmp_path / "runs"),
            "config": {"MINIWDL__DOWNLOAD_CACHE__DIR": str(cache)},
            **extra,
        }
    )
    return embedded.wait(arn)


def outputs(description: dict) -> dict:
    return json.loads(description["output"])["outputs"]


def test_s3_https_directory_and_default_uris_are_downloaded(embedded, tmp_path, served, bucket):
    s3, name = bucket
    s3.put_object(Bucket=name, Key="reads/sample.txt", Body=b"a\nb\nc\n")
    s3.put_object(Bucket=name, Key="ref/dir/one.txt", Body=b"1")
    s3.put_object(Bucket=name, Key="ref/dir/sub/two.txt", Body=b"2")
    s3.put_object(Bucket=name, Key="ref/dir/", Body=b"")  # a console folder marker: skipped
    served.files["/ref.fa"] = b">chr1\nACGT\n"
    served.files["/default.txt"] = b"from the default"
    source = COUNT.replace("REPLACED_DEFAULT", served.url("/default.txt"))
    cache = tmp_path / "cache"
    inputs = {
        "w.f": f"s3://{name}/reads/sample.txt",
        "w.g": served.url("/ref.fa"),
        "w.d": f"s3://{name}/ref/dir/",
    }
    description = run(embedded, tmp_path, source, inputs, cache)
    assert description["status"] == "SUCCEEDED", description.get("cause")
    out = outputs(description)
    assert out["w.lines"] == 3
    assert out["w.g_text"] == ">chr1\nACGT"
    assert out["w.d_files"] == ["one.txt", "two.txt"]
    assert out["w.extra_text"] == "from the default"
    # the local copy's path says where it came from
    real = os.path.realpath(out["w.f_out"])  # its out/ link names the local copy
    assert real.startswith(os.path.realpath(cache / "files" / "s3" / name / "_reads"))
    assert out["w.f_out"].endswith("/sample.txt")
    call_dir = Path(json.loads(description["output"])["dir"]) / "call-count"
    provenance = json.loads((call_dir / "downloads.json").read_text())
    assert {p["uri"] for p in provenance.values()} == {  # miniwdl drops a Directory's '/'
        *(uri.rstrip("/") for uri in inputs.values()),
        served.url("/default.txt"),
    }
    log = (call_dir.parent / "workflow.log").read_text()
    assert f"downloaded s3://{name}/reads/sample.txt" in log


def test_a_second_run_reuses_the_download_and_a_changed_object_is_downloaded_again(
    embedded, tmp_path, served
):
    served.files["/data.txt"] = b"1\n2\n"
    source = COUNT.replace("REPLACED_DEFAULT", served.url("/data.txt"))
    cache = tmp_path / "cache"
    inputs = {"w.f": served.url("/data.txt")}
    first = run(embedded, tmp_path, source, inputs, cache)
    second = run(embedded, tmp_path, source, inputs, cache)
    assert first["status"] == second["status"] == "SUCCEEDED", second.get("cause")
    assert served.gets["/data.txt"] == 1  # one download for both runs (and the default)
    same = [os.path.realpath(outputs(run)["w.f_out"]) for run in (first, second)]
    assert same[0] == same[1]
    served.files["/data.txt"] = b"1\n2\n3\n"  # a new ETag
    third = run(embedded, tmp_path, source, inputs, cache)
    assert third["status"] == "SUCCEEDED", third.get("cause")
    assert served.gets["/data.txt"] == 2
    assert outputs(third)["w.lines"] == 3
    assert outputs(third)["w.f_out"] != outputs(first)["w.f_out"]  # both versions kept
    assert Path(outputs(first)["w.f_out"]).read_bytes() == b"1\n2\n"


def test_concurrent_runs_share_one_download(embedded, tmp_path, served):
    served.files["/shared.txt"] = b"x\n" * 1000
    served.delay = 1.0  # long enough for the second run to find the first one's claim
    source = COUNT.replace("REPLACED_DEFAULT", served.url("/shared.txt"))
    cache = tmp_path / "cache"
    arns = [
        embedded.start(
            {
                "workflow_source": source,
                "inputs": {"w.f": served.url("/shared.txt")},
                "dir": str(tmp_path / f"runs{i}"),
                "config": {"MINIWDL__DOWNLOAD_CACHE__DIR": str(cache)},
            }
        )
        for i in range(3)
    ]
    descriptions = [embedded.wait(arn) for arn in arns]
    assert [d["status"] for d in descriptions] == ["SUCCEEDED"] * 3, descriptions
    assert served.gets["/shared.txt"] == 1
    assert all(outputs(d)["w.lines"] == 1000 for d in descriptions)
    logs = [(tmp_path / f"runs{i}").glob("*/workflow.log") for i in range(3)]
    texts = [next(found).read_text() for found in logs]
    assert sum("downloaded " + served.url("/shared.txt") in t for t in texts) == 1
    assert sum("waiting for " + served.url("/shared.txt") in t for t in texts) >= 1


def test_a_uri_that_cannot_be_downloaded_fails_the_run_before_any_task(
    embedded, tmp_path, served, bucket
):
    _, name = bucket
    served.files["/default.txt"] = b"d"
    source = COUNT.replace("REPLACED_DEFAULT", served.url("/default.txt"))
    inputs = {"w.f": f"s3://{name}/no/such.txt", "w.g": served.url("/missing.fa")}
    description = run(embedded, tmp_path, source, inputs, tmp_path / "cache")
    assert description["status"] == "FAILED"
    cause = description["cause"]
    assert f"s3://{name}/no/such.txt (no such object (404))" in cause
    assert f"{served.url('/missing.fa')} (HTTP 404 Not Found)" in cause
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("call-*"))


def test_a_local_file_staged_by_submit_is_localized_and_used(embedded, tmp_path, served):
    """What `submit` does with a file on the submitter's machine (cli/staging.py: uploaded
    once to the stack bucket's inputs/<sha256>/), then the run downloading it from there."""
    import io

    import WDL

    from miniwdl_serverless.cli.stack import Clients, Stack
    from miniwdl_serverless.cli.staging import Progress, stage_local_inputs
    from miniwdl_serverless.local.resources import LOCAL_BUCKET

    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "reads.txt").write_text("r1\nr2\nr3\nr4\n")
    served.files["/default.txt"] = b"d"
    source = COUNT.replace("REPLACED_DEFAULT", served.url("/default.txt"))
    doc = WDL.parse_document(source)
    doc.typecheck()
    assert doc.workflow is not None
    env = WDL.values_from_json(
        {"w.f": str(laptop / "reads.txt")}, doc.workflow.available_inputs, namespace="w"
    )
    stack = Stack("arn:aws:states:us-east-1:123456789012:stateMachine:x", bucket=LOCAL_BUCKET)
    stack._function_env = {"MSLS_EFS_ROOT": "/mnt/efs"}  # as deployed: the laptop is not EFS
    staged = stage_local_inputs(Clients(), stack, env, True, Progress(io.StringIO(), tty=False))
    uri = WDL.values_to_json(staged, namespace="w")["w.f"]
    assert uri.startswith(f"s3://{LOCAL_BUCKET}/inputs/") and uri.endswith("/reads.txt")
    description = run(embedded, tmp_path, source, {"w.f": uri}, tmp_path / "cache")
    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert outputs(description)["w.lines"] == 4


def test_the_embedded_aws_downloads_every_size_in_process(embedded):
    """No Lambda time limit locally, and no AWS CLI image to run a download job in."""
    from miniwdl_serverless.core.localizing import Remote, Settings, in_lambda
    from miniwdl_serverless.local.embedded import LAMBDA_DOWNLOAD_LIMIT_ENV

    assert int(os.environ[LAMBDA_DOWNLOAD_LIMIT_ENV]) >= 1 << 50

    import logging

    import WDL

    config = WDL.runtime.config.Loader(logging.getLogger("test"))  # the functions' environment
    settings = Settings.from_config(config, "/")
    assert in_lambda(Remote("s3://b/huge.bam", "v", 500 << 30), settings)
