"""Cold start: the handlers that never touch a workflow (logs, cancel, submit) load without
miniwdl (WDL) and without the controller modules that need it; each is imported from its file,
as Lambda does, in a fresh interpreter. No handler imports powertools' envelopes package (every
envelope and event model it has), and the embedded AWS's default mode, which holds the tables
in memory, imports no DynamoDB item model (pynamodb) to start or to wire the handlers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.handler)
print(json.dumps(sorted(sys.modules)))
"""
ENVELOPES = "aws_lambda_powertools.utilities.parser.envelopes"
# Enters the embedded AWS in the mode given (no state directory: nothing loaded or saved), wires
# the handlers' ports as their first invocations do, and lists the modules then imported.
EMBEDDED_PROBE = """
import json, sys, tempfile
from miniwdl_serverless.local.embedded import EmbeddedAWS
with tempfile.TemporaryDirectory() as root, EmbeddedAWS(efs_root=root, mode=sys.argv[1]):
    from miniwdl_serverless.handlers import wiring
    wiring.ports(), wiring.outside_ports(), wiring.submitter_ports()
    print(json.dumps(sorted(sys.modules)))
"""
DYNAMODB_MODELS = (
    "pynamodb.models",
    "pynamodb.attributes",
    "miniwdl_serverless.adapters.dynamodb_items",
    "miniwdl_serverless.adapters.dynamodb",
)
NEEDS_MINIWDL = (
    "WDL",
    "miniwdl_serverless.controller.context",
    "miniwdl_serverless.controller.advance",
    "miniwdl_serverless.controller.reconcile",
    "miniwdl_serverless.core.planner",
)


def probe_modules(probe: str, argument: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", probe, argument],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def loaded_modules(function: str) -> set[str]:
    return probe_modules(PROBE, str(ROOT / "functions" / function / "app.py"))


@pytest.mark.parametrize("function", ["logs", "cancel", "submit"])
def test_handler_loads_without_miniwdl(function: str) -> None:
    modules = loaded_modules(function)
    assert not [name for name in NEEDS_MINIWDL if name in modules]
    assert "miniwdl_serverless.handlers.wiring" in modules  # the same wiring, only lazier


def test_the_workflow_handlers_still_load_miniwdl() -> None:
    """The probe sees WDL where it is needed (a probe that never saw it would prove nothing)."""
    assert "WDL" in loaded_modules("advance")


@pytest.mark.parametrize("function", ["advance", "start", "submitter"])
def test_handler_loads_without_powertools_envelopes(function: str) -> None:
    """advance's EventBridge envelope is handlers/events.py's own."""
    modules = loaded_modules(function)
    assert ENVELOPES not in modules
    assert "aws_lambda_powertools.utilities.parser" in modules  # the parser itself is used


def test_memory_mode_imports_no_dynamodb_models() -> None:
    assert not [name for name in DYNAMODB_MODELS if name in probe_modules(EMBEDDED_PROBE, "memory")]


def test_full_mode_still_imports_them() -> None:
    """The probe sees them where the tables are DynamoDB's (moto's), so it can see them."""
    assert set(DYNAMODB_MODELS) <= probe_modules(EMBEDDED_PROBE, "full")
