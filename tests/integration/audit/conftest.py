"""Fixtures for the audit integration tests: real SQLite files and real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit import CheckpointSigner, create_sqlite_engine, generate_signing_key, migrate
from tests.integration.audit.helpers import explicit_begin_sqlite_engine


@pytest.fixture
def audit_signer(tmp_path: Path) -> CheckpointSigner:
    private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    generate_signing_key(private, public)
    return CheckpointSigner(private.read_bytes(), "audit.example.com")


def _engine(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Engine:
    if kind == "sqlite":
        return create_sqlite_engine(tmp_path / "audit.db")
    if kind == "sqlite-explicit-begin":
        return explicit_begin_sqlite_engine(tmp_path / "audit.db")
    return sa.create_engine(str(request.getfixturevalue("postgres_url")), pool_size=20)


@pytest.fixture(
    params=["sqlite", "sqlite-explicit-begin", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def audit_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty audit database: SQLite in both transaction styles, PostgreSQL."""
    engine = _engine(request.param, tmp_path, request)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sqlite_or_pg_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty audit database on SQLite or PostgreSQL."""
    engine = _engine(request.param, tmp_path, request)
    migrate(engine)
    yield engine
    engine.dispose()
