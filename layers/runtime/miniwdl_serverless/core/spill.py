"""Values too large for a store item are spilled to the run directory, with their digest kept in
the item: tasks can write anywhere on EFS, so a spilled value is checked when read back."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from miniwdl_serverless.core.errors import RunError

INLINE_LIMIT = 32 * 1024
SPILL_KEY = "$spill"


def encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def must_spill(text: str) -> bool:
    return len(text) > INLINE_LIMIT


def spill_file_name(name: str) -> str:
    return name.replace("/", "__") + ".json"


def pointer(path: str, text: str) -> dict[str, str]:
    return {SPILL_KEY: path, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def is_pointer(stored: Any) -> bool:
    return isinstance(stored, dict) and SPILL_KEY in stored


def verified(stored: dict[str, str], raw: bytes) -> Any:
    """The value read back from a spill file, if its digest is the one recorded."""
    if hashlib.sha256(raw).hexdigest() != stored["sha256"]:
        raise RunError.of("TamperedState", f"controller state changed on EFS: {stored[SPILL_KEY]}")
    return json.loads(raw)
