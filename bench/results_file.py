"""bench/results.json: one top-level key per benchmark, each run merging in its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def merge(key: str, results: dict[str, Any], path: Path = RESULTS) -> None:
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[key] = results
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
