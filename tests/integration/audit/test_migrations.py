"""The audit schema's own Alembic history, beside the vault's in one database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from audit import create_sqlite_engine, is_current, migrate
from audit.db import VERSION_TABLE

AUDIT_TABLES = {"audit_entries", "audit_entry_subjects", "audit_checkpoints", "audit_tree_state"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database, not migrated."""
    if request.param == "sqlite":
        engine = create_sqlite_engine(tmp_path / "vault.db")
    else:
        engine = sa.create_engine(str(request.getfixturevalue("postgres_url")))
    yield engine
    engine.dispose()


def _revision(engine: Engine, table: str) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": table}
        ).get_current_revision()


def test_migrate_is_idempotent_and_reports_currency(bare_engine: Engine) -> None:
    assert not is_current(bare_engine)
    migrate(bare_engine)
    assert is_current(bare_engine)
    migrate(bare_engine)
    tables = set(sa.inspect(bare_engine).get_table_names())
    assert tables >= AUDIT_TABLES | {VERSION_TABLE}
    assert _revision(bare_engine, VERSION_TABLE) == "audit_0003"
    indexes = {ix["name"] for ix in sa.inspect(bare_engine).get_indexes("audit_entry_subjects")}
    assert "ix_audit_entry_subjects_entry" in indexes


def test_the_vaults_own_alembic_history_is_left_alone(bare_engine: Engine) -> None:
    # The vault keeps its revision in vault_alembic_version; a tool using Alembic's
    # default table may exist too. The audit migration touches neither.
    with bare_engine.begin() as conn:
        for table, revision in (("vault_alembic_version", "vault_0007"), ("alembic_version", "x")):
            conn.execute(sa.text(f"CREATE TABLE {table} (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES ('{revision}')"))
    migrate(bare_engine)
    assert _revision(bare_engine, "vault_alembic_version") == "vault_0007"
    assert _revision(bare_engine, "alembic_version") == "x"
    assert _revision(bare_engine, VERSION_TABLE) == "audit_0003"
    assert is_current(bare_engine)


@pytest.mark.postgres
def test_racing_migrations_on_postgres_all_succeed(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, pool_size=6)
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def run() -> None:
        start.wait()
        try:
            migrate(engine)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert is_current(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar_one()
        state = conn.execute(sa.text("SELECT count(*) FROM audit_tree_state")).scalar_one()
    assert (rows, state) == (1, 1)
    engine.dispose()
