"""Values too large for a DynamoDB item go to the run directory, with their digest in the item.

Tasks can write anywhere on EFS, so a spilled value is checked against the SHA-256 kept in
DynamoDB when it is read back (DESIGN.md principle 5).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from miniwdl_serverless.core.errors import RunError

INLINE_LIMIT = 32 * 1024
SPILL_KEY = "$spill"


def dump(value: Any, spill_dir: str, name: str) -> Any:
    """The value itself if small, else a pointer {"$spill": path, "sha256": digest}."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(text) <= INLINE_LIMIT:
        return value
    os.makedirs(spill_dir, exist_ok=True)
    path = os.path.join(spill_dir, name.replace("/", "__") + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w") as outfile:
        outfile.write(text)
    os.replace(tmp, path)
    return {SPILL_KEY: path, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def load(stored: Any) -> Any:
    """Inverse of ``dump``: follows and verifies a spill pointer."""
    if not (isinstance(stored, dict) and SPILL_KEY in stored):
        return stored
    with open(stored[SPILL_KEY], "rb") as infile:
        raw = infile.read()
    if hashlib.sha256(raw).hexdigest() != stored["sha256"]:
        raise RunError(
            "TamperedState",
            {"error": "TamperedState", "message": f"controller state changed on EFS: {stored[SPILL_KEY]}"},
        )
    return json.loads(raw)
