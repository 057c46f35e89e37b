"""The soak (benchmarks/soak.py), short: a real `customer-vault serve` process and several
client processes of mixed traffic, on SQLite and on PostgreSQL.

The same code as the three-minute soak, for seconds. What must hold: no unexpected
status code (ABORTED on a racing update and PERMISSION_DENIED on a refused call are the
only accepted refusals), every acknowledged create is stored and decrypts with all its
fields afterwards (a DPO export of the tenant) and nothing else is, erased subjects
refuse reads, the server logs no warning or error, exits 0 on SIGTERM, and its audit log
verifies. Latencies are reported by the soak, never asserted here; memory only against
a bound generous enough for a busy two-core CI machine.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# Two worker processes at once on CI: the soaks run one after the other, on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("soak")]


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    """benchmarks/soak.py, imported the way it imports its siblings (spawned worker
    processes get this sys.path too)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    return importlib.import_module("soak")


def _run(soak: ModuleType, tmp_path: Path, database_url: str | None, **sizes: float) -> Any:
    config = soak.SoakConfig(
        database_url=database_url,
        # A leak still shows (the soak's own bound is 64 MiB and 25%); start-up and
        # scheduling noise of a few seconds' run on a loaded machine must not.
        rss_growth_limit_mib=256.0,
        rss_growth_limit_fraction=1.0,
        work_dir=tmp_path,
        **sizes,
    )
    report = soak.run_soak(config)
    soak.print_report(report)  # shown by pytest when the test fails
    return report


def _check(report: Any) -> None:
    kinds = report.kinds
    stored = report.verification
    assert report.unexpected == {}
    assert report.warmup_unexpected == {}
    assert report.crashed_workers == []
    assert {"create", "get_support", "denied"} <= set(kinds)
    assert set(kinds["denied"]["codes"]) == {"PERMISSION_DENIED"}
    assert stored.acknowledged > 0
    assert (stored.missing, stored.unacknowledged, stored.incomplete) == (0, 0, 0)
    assert stored.erased_readable == 0
    assert stored.server_log_problems == {}
    assert stored.server_exit_code == 0
    assert stored.audit_verified, stored.audit_output
    assert report.failures == []


def test_soak_on_sqlite(soak: ModuleType, tmp_path: Path) -> None:
    _check(_run(soak, tmp_path, None, duration=12.0, warmup=3.0, workers=3))


@pytest.mark.postgres
def test_soak_on_postgres(soak: ModuleType, tmp_path: Path, postgres_url: str) -> None:
    _check(_run(soak, tmp_path, postgres_url, duration=5.0, warmup=2.0, workers=2))
