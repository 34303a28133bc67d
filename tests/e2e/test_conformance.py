"""Every shared conformance case whose stock-miniwdl baseline passes must pass through
`miniwdl-serverless run` (the real ASL on the embedded AWS, task commands with bash)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conformance_judge import judge

CASES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "cases"
ALL = os.environ.get("MSLS_CONFORMANCE_ALL") == "1"  # also the cases stock miniwdl fails


def _cases() -> list:
    if not (CASES / "INDEX.json").exists():
        return [pytest.param(None, id="shared-conformance-absent")]
    index = json.loads((CASES / "INDEX.json").read_text())
    return [pytest.param(c, id=c["path"]) for c in index if ALL or c["miniwdl_bare"] == "pass"]


@pytest.mark.conformance
@pytest.mark.parametrize("case", _cases())
def test_case(case, run_cli, tmp_path):
    if case is None:
        pytest.skip(
            f"{CASES} is absent: the shared conformance cases are not checked out beside the repo"
        )
    work = tmp_path / "case"
    shutil.copytree(CASES / case["path"], work)
    args = ["workflow.wdl", "-i", "inputs.json", "--dir", str(tmp_path / "runs"), "--timeout", "90"]
    if case["type"] == "task":
        args += ["--task", case["target"]]
    code, stdout, stderr = run_cli(args, cwd=str(work))
    expected = (
        json.loads((work / "expected_outputs.json").read_text())
        if (work / "expected_outputs.json").exists()
        else {}
    )
    reason = judge(case, expected, code, stdout)
    assert reason is None, f"{case['path']}: {reason}\n{stderr[-3000:]}"
