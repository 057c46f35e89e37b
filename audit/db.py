"""Schema migration, and the two kinds of transaction the log needs on any engine.

The audit package gets its engine from the caller, so it copes with both ways of running
SQLite under SQLAlchemy: pysqlite's own (legacy) transaction handling, and the recipe
that switches it off and emits BEGIN from a `begin` event (what the vault does).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from audit.tables import TREE_STATE_ID, tree_state

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "audit_alembic_version"
# Arbitrary fixed advisory-lock keys ("AUDM", "AUDI"): one for migrations, one that
# serializes integrators across every process sharing the database.
_MIGRATE_LOCK_KEY = 0x4155444D
INTEGRATE_LOCK_KEY = 0x41554449


_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def positional_marker(conn: Connection) -> str | None:
    """The driver's positional parameter marker (`?` or `%s`), None if it has none.

    Hot bulk statements go straight to the driver's executemany with it: SQLAlchemy's
    per-row parameter handling costs more than the database's own work there.
    """
    return _MARKERS.get(conn.dialect.paramstyle)


def _alembic_config() -> Config:
    # Alembic is imported where it is used: a tenth of a second that every other user
    # of the package (a verifier's worker process, the CLI) would pay at start.
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", "audit:migrations")
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the audit schema to the newest revision (idempotent; safe to race on PG)."""
    from alembic import command  # noqa: PLC0415

    config = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK_KEY)))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def is_current(engine: Engine) -> bool:
    """True when the audit schema is at the newest revision."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision() == head


def create_sqlite_engine(path: Path | str, *, pool_size: int = 10) -> Engine:
    """A SQLite engine suited to the log: WAL, a long busy timeout, hidden parameters.

    For tools, tests and benchmarks; a host application may pass its own engine.
    """
    engine = sa.create_engine(
        f"sqlite:///{path}",
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_in_transaction(conn: Connection) -> bool:
    return bool(conn.connection.driver_connection.in_transaction)  # type: ignore[union-attr]


@contextmanager
def locked_write(engine: Engine) -> Iterator[Connection]:
    """A write transaction holding the log's integration lock; commits on success.

    PostgreSQL: `pg_advisory_xact_lock`, under READ COMMITTED so every statement after
    the lock sees what earlier lock holders committed. SQLite: the database's single
    writer lock taken up front (`BEGIN IMMEDIATE`, or a first write when the engine
    has already begun a deferred transaction). Elsewhere: a row lock on the tree state.
    """
    dialect = engine.dialect.name
    options = {"isolation_level": "READ COMMITTED"} if dialect == "postgresql" else {}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        if dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(INTEGRATE_LOCK_KEY)))
        elif dialect == "sqlite" and not _sqlite_in_transaction(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "sqlite":
            # A write as the first statement takes the writer lock before any read, so
            # the transaction never has to upgrade a stale read snapshot.
            conn.execute(
                sa.update(tree_state)
                .where(tree_state.c.id == TREE_STATE_ID)
                .values(size=tree_state.c.size)
            )
        else:
            conn.execute(sa.select(tree_state.c.id).with_for_update())
        yield conn


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees one consistent state of the log throughout."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        options: dict[str, Any] = {
            "isolation_level": "REPEATABLE READ",
            "postgresql_readonly": True,
        }
    else:
        options = {}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        if dialect == "sqlite" and not _sqlite_in_transaction(conn):
            # pysqlite's legacy mode runs SELECTs outside any transaction; without an
            # explicit BEGIN each query could see a different state.
            conn.exec_driver_sql("BEGIN")
        yield conn


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")


@contextmanager
def imported_snapshot(engine: Engine, snapshot_id: str) -> Iterator[Connection]:
    """PostgreSQL: a read-only transaction that sees the snapshot another transaction
    exported (`pg_export_snapshot`) as `snapshot_id`, while that one stays open."""
    if not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise ValueError("not a PostgreSQL snapshot id")
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        # A utility statement takes no bound parameter: the id, hex digits and dashes
        # as the server gives it, is checked above and written in.
        conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
        yield conn


def lock_for_reading(conn: Connection, tables: Sequence[sa.Table]) -> None:
    """PostgreSQL: take now, in `conn`'s transaction, every lock reading `tables` will
    take (ACCESS SHARE on each table and on each of its indexes), so that no later read
    in it waits in a lock queue. Planning a statement on a table locks all its indexes,
    so each table's is planned (EXPLAIN) after the tables are locked."""
    names = [conn.dialect.identifier_preparer.format_table(table) for table in tables]
    conn.exec_driver_sql(f"LOCK TABLE {', '.join(names)} IN ACCESS SHARE MODE")
    for name in names:
        conn.exec_driver_sql(f"EXPLAIN SELECT * FROM {name}").all()  # noqa: S608 - our tables


WRITER_WAIT_FIRST = 50e-6
WRITER_WAIT_MOST = 1e-3


def begin_immediate(cursor: Any) -> None:
    """`BEGIN IMMEDIATE` on a sqlite3 `cursor`, waiting for another writer in steps of
    50 us doubling to 1 ms, for as long as the connection's busy timeout allows.

    SQLite's own wait (its busy handler) sleeps 1, 2, 5, 10, 15 ... ms between tries. A
    writer in another process (`serve --workers N`: each worker's group commit) holds
    the lock for a fraction of a millisecond, and every read's answer waits for its
    audit commit, so those sleeps, not the lock, would set how many reads two workers
    serve. Raises the driver's error as `execute` does: a lock still held at the end of
    the timeout, or anything else."""
    (timeout_ms,) = cursor.execute("PRAGMA busy_timeout").fetchone()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + timeout_ms / 1000
        pause = WRITER_WAIT_FIRST
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                # The extended codes too (SQLITE_BUSY_RECOVERY: another process is
                # rebuilding the WAL index after a crash), as SQLite's own handler does.
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
            else:
                return
            time.sleep(pause)
            pause = min(2 * pause, WRITER_WAIT_MOST)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
