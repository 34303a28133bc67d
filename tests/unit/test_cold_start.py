"""Cold start: the handlers that never touch a workflow (logs, cancel, submit) load without
miniwdl (WDL) and without the controller modules that need it; each is imported from its file,
as Lambda does, in a fresh interpreter."""

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
NEEDS_MINIWDL = (
    "WDL",
    "miniwdl_serverless.controller.context",
    "miniwdl_serverless.controller.advance",
    "miniwdl_serverless.controller.reconcile",
    "miniwdl_serverless.core.planner",
)


def loaded_modules(function: str) -> set[str]:
    path = ROOT / "functions" / function / "app.py"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", ["logs", "cancel", "submit"])
def test_handler_loads_without_miniwdl(function: str) -> None:
    modules = loaded_modules(function)
    assert not [name for name in NEEDS_MINIWDL if name in modules]
    assert "miniwdl_serverless.handlers.wiring" in modules  # the same wiring, only lazier


def test_the_workflow_handlers_still_load_miniwdl() -> None:
    """The probe sees WDL where it is needed (a probe that never saw it would prove nothing)."""
    assert "WDL" in loaded_modules("advance")
