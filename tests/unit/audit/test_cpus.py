"""`audit verify --workers` and `serve --workers` default to the CPUs this process may
use, capped by the cgroup v2 CPU quotas over it (a container's or a systemd unit's
limit, which the affinity mask does not show)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit import cpus
from vault.config import Settings


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),
        ("50000 100000\n", 1),
        ("max 100000\n", None),
        ("100000 0\n", None),
        ("-1 100000\n", None),
        ("lots 100000\n", None),
        ("", None),
    ],
)
def test_a_quota_is_read_as_whole_cpus(tmp_path: Path, text: str, count: int | None) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text(text)
    assert cpus.quota_cpus(limit) == count


def _tree(root: Path, quotas: dict[str, str], own: str) -> Path:
    for folder, text in quotas.items():
        path = root / folder.lstrip("/") / "cpu.max"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    membership = root.parent / "cgroup"
    membership.write_text(f"0::{own}\n")
    return membership


def test_the_tightest_quota_on_the_way_up_is_taken(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    membership = _tree(
        root,
        {"/": "max 100000", "/system.slice": "300000 100000", "/system.slice/vault": "max 100000"},
        "/system.slice/vault",
    )
    assert cpus.cgroup_cpus(root, membership) == 3


def test_a_container_sees_its_own_cgroup_as_the_root(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    membership = _tree(root, {"/": "200000 100000"}, "/")
    assert cpus.cgroup_cpus(root, membership) == 2


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpus.cgroup_cpus(tmp_path / "fs", tmp_path / "missing") is None
    membership = _tree(tmp_path / "fs", {}, "/a/b")
    assert cpus.cgroup_cpus(tmp_path / "fs", membership) is None


def test_cgroup_v1_membership_alone_means_no_quota(tmp_path: Path) -> None:
    membership = tmp_path / "cgroup"
    membership.write_text("12:cpu,cpuacct:/docker/abc\n")
    assert cpus.cgroup_cpus(tmp_path / "fs", membership) is None


def test_the_default_is_at_least_one_and_at_most_the_cpus() -> None:
    assert 1 <= cpus.usable_cpus() <= len(os.sched_getaffinity(0))


def test_serve_defaults_to_the_same_count(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).resolved_workers == cpus.usable_cpus()
    assert Settings(data_dir=tmp_path, workers=3).resolved_workers == 3
