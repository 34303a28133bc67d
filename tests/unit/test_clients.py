"""One botocore configuration for every AWS client (adapters/clients.py): adaptive retries,
bounded attempts and timeouts, on the clients the Lambdas' wiring makes, pynamodb's included;
and no client made anywhere else in the package."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miniwdl_serverless.adapters import clients
from miniwdl_serverless.adapters.remotes import boto3_clients
from miniwdl_serverless.handlers import local_ports, wiring

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "layers" / "runtime" / "miniwdl_serverless" / "adapters" / "clients.py"
MADE_ELSEWHERE = re.compile(r"\bboto3\s*\.\s*(client|resource)\s*\(|\bSession\s*\(")


def assert_shared(client: Any) -> None:
    config = client.meta.config
    assert config.retries["mode"] == "adaptive"
    assert config.retries["total_max_attempts"] == clients.MAX_RETRIES + 1
    assert config.connect_timeout == clients.CONNECT_TIMEOUT_SECONDS
    assert config.read_timeout == clients.READ_TIMEOUT_SECONDS


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "RUNS_TABLE": "runs",
        "JOBS_TABLE": "jobs",
        "CACHE_TABLE": "cache",
        "WORK_TABLE": "work",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    }.items():
        monkeypatch.setenv(name, value)
    # the session's embedded AWS (tests/conftest.py) may have put its stores in the handlers' place
    monkeypatch.setattr(local_ports, "stores", None)
    monkeypatch.setattr(local_ports, "work", None)
    wiring.forget_clients()
    yield
    wiring.forget_clients()


def test_wiring_clients_retry_adaptively(wired: None) -> None:
    ports = wiring.ports()  # inside the VPC: no Batch nor Step Functions client
    assert_shared(ports.uploads._target.client)  # type: ignore[attr-defined]
    outside = wiring.outside_ports()
    assert_shared(outside.batch._target.client)  # type: ignore[attr-defined]
    assert_shared(outside.orchestrator.client)  # type: ignore[attr-defined]
    submitter = wiring.submitter_ports()
    assert_shared(submitter.batch._target.client)  # type: ignore[attr-defined]
    assert_shared(submitter.orchestrator.client)  # type: ignore[attr-defined]
    assert_shared(wiring.s3_client())
    assert wiring.s3_client().meta.config.max_pool_connections > 10  # its own, merged in
    submission = wiring.submission_ports()
    assert_shared(submission.objects.s3)  # type: ignore[attr-defined]
    assert_shared(submission.executions.sfn)  # type: ignore[attr-defined]
    reconcile = wiring.reconcile_ports()
    assert reconcile.dead_letters is not None
    assert_shared(reconcile.dead_letters.client)  # type: ignore[attr-defined]
    assert_shared(reconcile.runs.sfn)  # type: ignore[attr-defined]


def test_pynamodb_connections_retry_adaptively(wired: None) -> None:
    store = wiring.run_store()
    for model in (store.runs, store.jobs, wiring.cache_store()._target.items):
        assert model.Meta.max_retry_attempts == clients.MAX_RETRIES
        assert_shared(model._get_connection().connection.client)


def test_remote_clients_retry_adaptively() -> None:
    assert_shared(boto3_clients("us-west-2", False))
    unsigned = boto3_clients(None, True)
    assert_shared(unsigned)
    assert unsigned.meta.config.signature_version is not None  # UNSIGNED merged in


def test_extra_settings_keep_the_shared_retries() -> None:
    from botocore.config import Config

    merged = clients.config(Config(max_pool_connections=3))
    assert merged.retries == clients.retries()
    assert merged.max_pool_connections == 3


def test_no_client_is_made_outside_the_one_module() -> None:
    """boto3.client / boto3.resource / a Session only in adapters/clients.py, so that no
    client slips in with botocore's defaults (legacy retries, no rate limiting)."""
    stray = []
    for folder in ("layers", "functions"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == CLIENTS or ".aws-sam" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if MADE_ELSEWHERE.search(line):
                    stray.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not stray, "clients made outside adapters/clients.py:\n" + "\n".join(stray)
