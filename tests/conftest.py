"""Shared fixtures. The embedded AWS imports moto before it creates any boto3 client (a client
made before moto is imported is not mocked); unit tests need neither and import neither."""

from __future__ import annotations

import contextlib
import hashlib
import os

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
# The call cache is on by default, for users; the tests share one embedded AWS (one cache
# table) and mostly follow each call's submission, so it is off for them unless a test's run
# turns it on (its config map) or a test's subprocess environment does.
os.environ.setdefault("MINIWDL__CALL_CACHE__GET", "false")
os.environ.setdefault("MINIWDL__CALL_CACHE__PUT", "false")
# Array jobs too: most tests follow each call's own Batch job (tests/unit/test_array_jobs.py
# turns them on in its runs' config).
os.environ.setdefault("MINIWDL__SERVERLESS__ARRAY_JOBS", "false")
# Local tasks run unconfined in the tests, as Batch runs them (any task may write anywhere on
# EFS: the hostile and recovery tests plant files outside their call on purpose); the sandbox
# has its own tests (tests/e2e/test_input_protection.py sets it per test).
os.environ.setdefault("MINIWDL_SERVERLESS_SANDBOX", "none")
# And with bash, not in a container engine a developer's machine may have (pulling images):
# tests/e2e/test_local_containers.py asks for one, a stand-in.
os.environ.setdefault("MINIWDL_SERVERLESS_CONTAINER", "none")

import pytest  # noqa: E402

from miniwdl_serverless.local.embedded import EmbeddedAWS  # noqa: E402


@pytest.fixture(autouse=True)
def local_state_dir(monkeypatch, tmp_path_factory, request):
    """`miniwdl-serverless run` keeps its state under the home directory by default: in the
    tests, each test has its own state directory (created only if a run saves), never the
    real one. Subprocesses inherit it."""
    name = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    path = tmp_path_factory.getbasetemp() / "local-state" / name
    monkeypatch.setenv("MINIWDL_SERVERLESS_STATE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def embedded():
    """One embedded AWS per test process: tables, functions, state machine, local Batch; in
    the default mode (the in-memory store), or with ``MSLS_EMBEDDED_AWS=full`` moto's DynamoDB
    (`make test-full`; a few tests run the CLI with ``--embedded-aws full`` in every mode)."""
    mode = os.environ.get("MSLS_EMBEDDED_AWS", "memory")
    with EmbeddedAWS(efs_root="/", workers=4, mode=mode) as aws:
        yield aws


@pytest.fixture
def run_cli(embedded, capsys, monkeypatch, tmp_path_factory):
    """Run `miniwdl-serverless run ARGS...` in process (in ``cwd``); returns (exit code,
    stdout, stderr)."""
    from miniwdl_serverless.cli import local_run
    from miniwdl_serverless.cli.main import parse_run_args

    def run(args: list[str], cwd: str | None = None) -> tuple[int, str, str]:
        if cwd:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        parsed = parse_run_args(args)
        parsed.no_progress = True
        scratch = tmp_path_factory.mktemp("scratch")
        code = local_run.run_parsed(
            parsed, str(scratch), lambda _engine: contextlib.nullcontext(embedded)
        )
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def aws_server(embedded):
    """The session's embedded AWS also served over HTTP (moto server mode on 127.0.0.1), with a
    CloudFormation stack whose outputs name its resources: what `--stack` finds on AWS."""
    embedded.start_server()
    return embedded
