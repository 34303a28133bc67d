"""Judging a conformance case's outputs. A case marked to fail must fail; otherwise the run must
succeed and every expected output (except those in ``exclude_output``) must match: numbers
within 1e-6, booleans and nulls exactly, arrays item by item, objects key by key with no extra
non-null keys, strings exactly or, for the openwdl-spec suite, by a path's basename, and for the
wdl-conformance-tests suite a file by its ``md5sum`` or a ``regex`` on its content."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

FLOAT_TOLERANCE = 1e-6


def mismatch(  # noqa: C901 - one branch per kind of WDL value the suites compare
    expected: Any, actual: Any, suite: str, run_dir: str, where: str
) -> str | None:
    """None if ``actual`` matches ``expected``, else a short reason naming the path."""
    if (
        isinstance(expected, dict)
        and ("md5sum" in expected or "regex" in expected)
        and suite == "wdl-conformance-tests"
    ):
        path = _local_path(actual, run_dir)
        if path is None or not os.path.isfile(path):
            return f"{where}: file {actual!r} not readable"
        data = open(path, "rb").read()
        if "md5sum" in expected and hashlib.md5(data).hexdigest() != expected["md5sum"]:  # noqa: S324
            return f"{where}: md5 differs"
        if "regex" in expected and not re.search(expected["regex"], data.decode(errors="replace")):
            return f"{where}: regex not found"
        return None
    if expected is None:
        return None if actual is None else f"{where}: expected null, got {actual!r}"
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if expected is actual else f"{where}: expected {expected!r}, got {actual!r}"
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return (
            None
            if abs(expected - actual) <= FLOAT_TOLERANCE
            else f"{where}: expected {expected}, got {actual}"
        )
    if isinstance(expected, str):
        if actual == expected:
            return None
        if (
            isinstance(actual, str)
            and suite == "openwdl-spec"
            and os.path.basename(actual.rstrip("/")) == expected
        ):
            return None
        return f"{where}: expected {expected!r}, got {actual!r}"
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected {expected!r}, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            reason = mismatch(e, a, suite, run_dir, f"{where}[{i}]")
            if reason:
                return reason
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}.{key}: missing"
            reason = mismatch(value, actual[key], suite, run_dir, f"{where}.{key}")
            if reason:
                return reason
        extra = [k for k in actual if k not in expected and actual[k] is not None]
        return f"{where}: unexpected keys {extra}" if extra else None
    return None if expected == actual else f"{where}: expected {expected!r}, got {actual!r}"


def _local_path(value: Any, run_dir: str) -> str | None:
    if not isinstance(value, str):
        return None
    if value.startswith("file://"):
        value = value[len("file://") :]
    return value if os.path.isabs(value) else os.path.join(run_dir, value)


def judge(case: dict[str, Any], expected: dict[str, Any], code: int, stdout: str) -> str | None:
    """None if the case passes, else why not."""
    import json

    if case["fail"]:
        return None if code != 0 else "expected the run to fail, it succeeded"
    if code != 0:
        return f"run failed (exit {code})"
    result = json.loads(stdout)
    outputs, run_dir = result["outputs"], result["dir"]
    excluded = set(case.get("exclude_output") or [])
    for key, value in expected.items():
        if key in excluded or key.rsplit(".", 1)[-1] in excluded:
            continue
        if key not in outputs:
            return f"{key}: missing from outputs"
        reason = mismatch(value, outputs[key], case["suite"], run_dir, key)
        if reason:
            return reason
    return None
