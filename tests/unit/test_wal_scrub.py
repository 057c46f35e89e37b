"""`Database.scrub_wal` and `after_shred`: on SQLite a committed deletion leaves no copy
in the files, read as raw bytes. Deleted cells are zeroed (secure_delete, whatever the
build's default) and the write-ahead log, whose frames keep pages as they were, is
checkpointed and truncated; a reader on an older snapshot defers that, and the retry
finishes it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.raw_files import database_files_holding
from vault.storage.db import Database, create_engine

SECRET = os.urandom(32)


def _database(tmp_path: Path) -> Database:
    db = Database(create_engine(f"sqlite:///{tmp_path / 'vault.db'}", pool_size=2))
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, key BLOB)")
        conn.exec_driver_sql("INSERT INTO t (key) VALUES (?)", (SECRET,))
        conn.exec_driver_sql("INSERT INTO t (key) VALUES (?)", (os.urandom(32),))
    return db


def _holding(tmp_path: Path) -> list[str]:
    return sorted(database_files_holding(tmp_path, [SECRET]))


def _shred(db: Database) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("DELETE FROM t WHERE key = ?", (SECRET,))


def test_every_connection_zeroes_deleted_content(tmp_path: Path) -> None:
    db = _database(tmp_path)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1
        _shred(db)
        assert db.scrub_wal()
        assert (tmp_path / "vault.db-wal").stat().st_size == 0
        assert _holding(tmp_path) == []
    finally:
        db.dispose()


def test_the_log_keeps_a_copy_until_scrubbed(tmp_path: Path) -> None:
    db = _database(tmp_path)
    try:
        _shred(db)
        assert _holding(tmp_path) == ["vault.db-wal"]  # the frame written by the insert
        db.after_shred()
        assert not db.scrub_is_pending
        assert _holding(tmp_path) == []
    finally:
        db.dispose()


def test_a_reader_on_an_older_snapshot_defers_the_scrub_and_the_retry_finishes_it(
    tmp_path: Path,
) -> None:
    db = _database(tmp_path)
    try:
        with db.read() as reader:
            assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 2
            _shred(db)
            assert not db.scrub_wal(wait_seconds=0.05)
            db.after_shred()
            assert db.scrub_is_pending
            db.scrub_pending(wait_seconds=0.05)  # the reader is still there
            assert db.scrub_is_pending and _holding(tmp_path) == ["vault.db-wal"]
        db.scrub_pending()
        assert not db.scrub_is_pending
        assert _holding(tmp_path) == []
    finally:
        db.dispose()
