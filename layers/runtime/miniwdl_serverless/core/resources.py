"""What a task asks for (miniwdl's evaluated runtime), in AWS Batch's units."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DEFAULT_IMAGE = "ubuntu:22.04"  # a task without runtime.docker (miniwdl-aws's default too)
MIN_MEMORY_MIB = 991  # miniwdl-aws's floor, after its -33 MiB Batch overhead delta
DEFAULT_MEMORY_DELTA_MIB = -33


@dataclass(frozen=True)
class Resources:
    vcpus: int = 1
    memory_mib: int = MIN_MEMORY_MIB
    gpus: int = 0

    def requirements(self) -> list[dict[str, str]]:
        found = [
            {"type": "VCPU", "value": str(self.vcpus)},
            {"type": "MEMORY", "value": str(self.memory_mib)},
        ]
        if self.gpus:
            found.append({"type": "GPU", "value": str(self.gpus)})
        return found


def resources_for(
    runtime: dict[str, Any],
    raw_runtime: dict[str, Any],
    memory_delta_mib: int = DEFAULT_MEMORY_DELTA_MIB,
    gpu_value: int = 1,
) -> Resources:
    """miniwdl runtime values (cpu, memory_reservation, gpu, acceleratorType) → Batch resources."""
    vcpus = max(1, int(runtime.get("cpu") or 1))
    reservation = int(runtime.get("memory_reservation") or 0)
    memory = MIN_MEMORY_MIB
    if reservation:
        memory = max(math.ceil(reservation / 2**20) + memory_delta_mib, MIN_MEMORY_MIB)
    gpus = 0
    accelerator = str(raw_runtime.get("acceleratorType") or "")
    if runtime.get("gpu") or accelerator.lower().startswith("nvidia"):
        count = raw_runtime.get("acceleratorCount") or raw_runtime.get("gpuCount")
        gpus = int(count or gpu_value)
    return Resources(vcpus=vcpus, memory_mib=memory, gpus=gpus)


@dataclass(frozen=True)
class TaskSubmission:
    """Everything one Batch job of a task attempt is submitted with."""

    name: str
    queue: str
    image: str
    resources: Resources
    script: str
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int = 86400
    command: list[str] | None = None  # None: bash runs ``script`` (a task); else as given
    array_size: int | None = None  # an array job of that many children (core/arrays.py)
