"""`Database.write(checkpoint_pages=)`: the retention job's commits leave the WAL
checkpoint to its preparer; the pooled connection gets SQLite's setting back after the
transaction, whether it committed or failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from vault.storage.db import Database, create_engine


def _setting(conn: Connection) -> tuple[int, int]:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    (pages,) = raw.execute("PRAGMA wal_autocheckpoint").fetchone()
    return int(pages), id(raw)


def test_the_threshold_holds_for_the_transaction_only(tmp_path: Path) -> None:
    db = Database(create_engine(f"sqlite:///{tmp_path / 'vault.db'}", pool_size=1))
    try:
        with db.write() as conn:
            default, connection = _setting(conn)
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with db.write(checkpoint_pages=20_000) as conn:
            assert _setting(conn) == (20_000, connection)
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with db.write() as conn:
            assert _setting(conn) == (default, connection)
        with pytest.raises(RuntimeError, match="the batch fails"):
            _failing_batch(db)
        with db.read() as conn:
            assert _setting(conn) == (default, connection)
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
    finally:
        db.dispose()


def _failing_batch(db: Database) -> None:
    with db.write(checkpoint_pages=5_000) as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        raise RuntimeError("the batch fails")
