"""Fixtures that start a real vault, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import rpc_table
from tests.integration.harness import RunningVault, running_vault, settings_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None (the embedded SQLite default in the data dir) or a fresh PostgreSQL database
    at the newest schema (a copy of a template migrated once per test process)."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("migrated_postgres_url"))


@pytest.fixture
def vault(tmp_path: Path, database_url: str | None) -> Iterator[RunningVault]:
    with running_vault(settings_for(tmp_path / "data", database_url)) as running:
        yield running


@pytest.fixture
def sqlite_vault(tmp_path: Path) -> Iterator[RunningVault]:
    with running_vault(settings_for(tmp_path / "data", None)) as running:
        yield running


@pytest.fixture
def prepared(sqlite_vault: RunningVault) -> dict[str, str]:
    """What the RPC table's requests name, in `sqlite_vault` (see rpc_table.prepare)."""
    return rpc_table.prepare(sqlite_vault)
