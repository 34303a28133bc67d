"""The hostile-input suite's settings: hypothesis derandomized (the same examples on every run,
no example database), a bounded number of examples so that ``make test`` stays quick on two
cores. ``HYPOTHESIS_PROFILE=full`` (``make hostile-full``) runs many more, randomized."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=30,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
settings.register_profile(
    "full",
    max_examples=400,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
