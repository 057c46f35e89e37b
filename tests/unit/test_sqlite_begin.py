"""SQLite transactions begin on the driver's connection (`_sqlite_on_begin`): a write
takes the writer lock up front, a read does not, and a writer lock held elsewhere past
the busy timeout is UNAVAILABLE, the pooled connection left usable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vault.errors import UnavailableError
from vault.storage.db import Database, create_engine


def test_a_held_writer_lock_is_unavailable_and_a_read_still_works(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    db = Database(create_engine(f"sqlite:///{path}", pool_size=1, lock_timeout=0.2))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            assert conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(UnavailableError, match="database unavailable"), db.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with db.read() as conn:  # a read needs no writer lock (WAL)
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0
        other.execute("ROLLBACK")
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t").scalar_one() == 2
    finally:
        other.close()
        db.dispose()
