"""How many CPUs this process may use: its affinity mask, capped by the cgroup v2 CPU
quotas over it (a container's or a systemd unit's limit, which the affinity mask does
not show). The default of `audit verify --workers`, and of `customer-vault serve
--workers` (which imports it when it starts, where the rest of this package is imported
anyway)."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")


def usable_cpus() -> int:
    """The CPUs this process may run on, and no more than a cgroup quota allows; >= 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, cgroup_cpus() or cpus))


def cgroup_cpus(root: Path = CGROUP_ROOT, membership: Path = MEMBERSHIP) -> int | None:
    """The tightest cgroup v2 CPU quota on this process's cgroup and the ones above it
    (`cpu.max` of each, up to `root`), in whole CPUs rounded up; None if none is set."""
    folder = root / _own_cgroup(membership).lstrip("/")
    quotas = []
    while True:
        quota = quota_cpus(folder / "cpu.max")
        if quota is not None:
            quotas.append(quota)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(quotas, default=None)


def quota_cpus(path: Path) -> int | None:
    """One `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for none) in whole CPUs rounded up;
    None for no quota, or a file that is missing or cannot be read as one."""
    try:
        quota, period = path.read_text().split()[:2]
        if quota == "max":
            return None
        cpus = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return max(1, math.ceil(cpus)) if cpus > 0 else None


def _own_cgroup(membership: Path) -> str:
    """This process's cgroup v2 path ("0::/PATH" in /proc/self/cgroup), "/" if unknown."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"
