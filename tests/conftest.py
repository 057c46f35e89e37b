"""Suite-wide fixtures: real PostgreSQL databases and the PII watch.

PostgreSQL tests use the server at 127.0.0.1:5432 (trust auth, user postgres, admin
database `test`). Each test that asks for `postgres_url` gets a database of its own,
created fresh and dropped afterwards; a test that starts a vault gets a copy of a
database migrated once per test process (`migrated_postgres_url`). Without a
reachable server the tests are skipped with a clear message, except under CI=true,
where they fail instead: CI must never quietly skip them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from tests import pii_watch

REPO_ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get(
    "VAULT_TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_admin():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = (
            "PostgreSQL is not reachable at 127.0.0.1:5432 "
            "(start it with: pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; under CI=true PostgreSQL tests must run: {exc}")
        pytest.skip(message)


def _dsn_for(dbname: str) -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{dbname}".replace("postgresql://", "postgresql+psycopg://", 1)


def _new_database_name(kind: str = "") -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return re.sub(r"[^a-z0-9_]", "_", f"cvt{kind}_{worker}_{uuid.uuid4().hex[:10]}".lower())


@contextmanager
def new_postgres_database() -> Iterator[str]:
    """A SQLAlchemy URL of a brand-new, empty PostgreSQL database, dropped at the end."""
    admin = _postgres_admin()
    name = _new_database_name()
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _dsn_for(name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLAlchemy URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database at the newest vault and audit schemas, migrated once per
    test process (so each session migrates afresh), dropped when the session ends."""
    import audit
    from vault.storage.db import create_engine
    from vault.storage.migrate import upgrade

    admin = _postgres_admin()
    name = _new_database_name("tmpl")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            engine = create_engine(_dsn_for(name))
            try:
                upgrade(engine)
                audit.migrate(engine)
            finally:
                engine.dispose()
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_postgres_url(postgres_template: str) -> Iterator[str]:
    """Like `postgres_url`, but already migrated: a copy of the template (`CREATE
    DATABASE ... TEMPLATE`, a file copy on the server) instead of a migration per test.
    For tests that start a vault, which would migrate an empty database the same way."""
    admin = _postgres_admin()
    name = _new_database_name()
    with admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
        try:
            yield _dsn_for(name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def watch_for_pii(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pii_watch.PiiWatch]:
    """Every test: personal values it sends to a vault are seeded; its logs, error
    statuses, spans, metrics and audit exports must not contain any of them (see
    tests/pii_watch.py). Fails the test at teardown, naming where each value showed up."""
    watch = pii_watch.PiiWatch(seeding=request.node.get_closest_marker("no_pii_seeding") is None)
    for name in ("insecure_channel", "secure_channel"):
        monkeypatch.setattr(grpc, name, pii_watch.watched_channel_factory(getattr(grpc, name)))
    capture = pii_watch.start(
        watch, telemetry=request.node.get_closest_marker("own_telemetry") is None
    )
    pii_watch.current = watch
    try:
        yield watch
    finally:
        pii_watch.current = None
        capture.close()
    leaks = watch.leaks()
    if leaks:
        pytest.fail(
            "personal data seeded by this test showed up where it must not: "
            + "; ".join(f"{value!r} in {channel}" for channel, value in leaks),
            pytrace=False,
        )
