"""How long to wait between retries of a transient failure: exponential backoff with full
jitter (AWS's recommendation for contended writes, as botocore's retries do)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6  # tries in all, the first included
    base_seconds: float = 0.1
    cap_seconds: float = 5.0

    def delays(self, rng: random.Random | None = None) -> list[float]:
        """The pause before each retry (``attempts - 1`` of them): uniform in [0, bound], the
        bound doubling from ``base_seconds`` up to ``cap_seconds``."""
        rng = rng or random.Random()
        bounds = (min(self.cap_seconds, self.base_seconds * 2**n) for n in range(self.attempts - 1))
        return [rng.uniform(0, bound) for bound in bounds]
