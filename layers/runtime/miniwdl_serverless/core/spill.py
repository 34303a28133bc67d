"""Values too large for a store item are spilled to the run directory, with their digest kept in
the item: tasks can write anywhere on EFS, so a spilled value is checked when read back."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.core.errors import RunError

INLINE_LIMIT = 32 * 1024
MAX_BYTES = 128 * 1024 * 1024  # a spill file larger than this is refused unread (a task's doing)
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


def store(value: Any, spill_dir: str, name: str, write: Callable[[str, str], None]) -> Any:
    """The value itself if it fits in a store item, else ``write`` it to a spill file and
    return the pointer with its digest."""
    text = encode(value)
    if not must_spill(text):
        return value
    path = os.path.join(spill_dir, spill_file_name(name))
    write(path, text)
    return pointer(path, text)


def load(stored: Any, read: Callable[[str], bytes]) -> Any:
    """Inverse of ``store``: follows a pointer and checks the digest of what it reads."""
    if not is_pointer(stored):
        return stored
    return verified(stored, read(stored[SPILL_KEY]))
