"""A crash in any Lambda still ends the execution, with an error a person can read."""

from __future__ import annotations

import pytest


@pytest.fixture
def broken(embedded):
    saved = dict(embedded.handlers)

    def crash(event, context):
        raise RuntimeError("disk on fire")

    def use(name: str) -> None:
        embedded.handlers[name] = crash

    yield use
    embedded.handlers.update(saved)


@pytest.mark.parametrize(
    "function, error", [("StartFunction", "RuntimeError"), ("FinishFunction", "RuntimeError")]
)
def test_crashed_lambda_fails_the_execution(embedded, broken, tmp_path, function, error):
    broken(function)
    arn = embedded.start(
        {"workflow_source": "version 1.0\nworkflow w { Int x = 1 }", "dir": str(tmp_path)}
    )
    description = embedded.wait(arn)
    assert description["status"] == "FAILED"
    assert description["error"] == error
    assert "disk on fire" in description["cause"]
