"""What the benchmarks ran on: CPU, memory, Python, library and database versions, load."""

from __future__ import annotations

import os
import platform
import sqlite3
import time
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "grpcio",
    "protobuf",
    "cryptography",
    "SQLAlchemy",
    "psycopg",
    "casbin",
    "presidio-anonymizer",
    "sqlalchemy-utils",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def python_speed() -> float:
    """Nanoseconds per iteration of a fixed pure-Python loop (dict, str, int work).

    Measured at the start and the end of a run: on a shared machine it shows how much
    CPU this process actually got, so figures from different runs can be put side by side.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        table: dict[str, int] = {}
        for i in range(200_000):
            key = "k" + str(i % 512)
            table[key] = table.get(key, 0) + i
        best = min(best, (time.perf_counter_ns() - started) / 200_000)
    return round(best, 1)


def describe(postgres_version: str | None) -> dict[str, object]:
    """Everything worth printing next to the figures."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version or "not available",
        "packages": {p: _version(p) for p in PACKAGES},
        "load_average_at_start": load_average(),
        "python_loop_ns_at_start": python_speed(),
    }
