"""How many CPUs this process may use: its affinity mask, capped by a cgroup's CPU quota
(a container's limit, which the affinity mask does not show). The default of
`audit verify --workers`, and of `customer-vault serve --workers` (which imports it when
it starts, where the rest of this package is imported anyway)."""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus() -> int:
    """The CPUs this process may run on, and no more than a cgroup quota allows; >= 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, cgroup_cpus() or cpus))


def cgroup_cpus(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """The cgroup v2 CPU quota in whole CPUs (rounded up), or None for no quota."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))
