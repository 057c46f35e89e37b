"""`audit verify --workers` and `serve --workers` default to the CPUs this process may
use, capped by a cgroup's CPU quota (a container's limit, which the affinity mask does
not show)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit import cpus
from vault.config import Settings


@pytest.mark.parametrize(
    ("text", "count"),
    [("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None)],
)
def test_a_cgroup_quota_is_read_as_whole_cpus(tmp_path: Path, text: str, count: int | None) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text(text)
    assert cpus.cgroup_cpus(limit) == count


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cpus.cgroup_cpus(tmp_path / "missing") is None


def test_the_default_is_at_least_one_and_at_most_the_cpus() -> None:
    assert 1 <= cpus.usable_cpus() <= len(os.sched_getaffinity(0))


def test_serve_defaults_to_the_same_count(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_workers == cpus.usable_cpus()
    assert Settings(data_dir=tmp_path, workers=3).resolved_workers == 3
