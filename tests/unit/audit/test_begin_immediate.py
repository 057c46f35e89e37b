"""`audit.db.begin_immediate`: the group-commit writer's BEGIN IMMEDIATE waits for
another writer in short steps (not SQLite's 1, 2, 5, 10 ms sleeps) within the
connection's busy timeout, and leaves that timeout as it found it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from audit.db import begin_immediate


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    with _connect(path, 1) as conn:
        conn.execute("CREATE TABLE t (x)")
    return path


def test_it_takes_the_lock_once_the_other_writer_commits(database: Path) -> None:
    holder, waiter = _connect(database, 5), _connect(database, 5)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    waiting = threading.Event()
    released = threading.Timer(0.05, holder.commit)
    cursor = waiter.cursor()

    def begin() -> None:
        waiting.set()
        begin_immediate(cursor)

    thread = threading.Thread(target=begin)
    released.start()
    thread.start()
    thread.join(10)
    assert waiting.is_set() and not thread.is_alive()
    assert waiter.in_transaction
    cursor.execute("INSERT INTO t VALUES (2)")
    waiter.commit()
    assert waiter.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (5000,)


def test_a_lock_held_past_the_busy_timeout_is_the_drivers_error(database: Path) -> None:
    holder, waiter = _connect(database, 5), _connect(database, 0.05)
    holder.execute("BEGIN IMMEDIATE")
    cursor = waiter.cursor()
    with pytest.raises(sqlite3.OperationalError) as raised:
        begin_immediate(cursor)
    assert raised.value.sqlite_errorcode == sqlite3.SQLITE_BUSY
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (50,)
    holder.rollback()


def test_any_other_error_is_raised_at_once(database: Path) -> None:
    conn = _connect(database, 5)
    cursor = conn.cursor()
    cursor.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_immediate(cursor)
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (5000,)


class _BusyCursor:
    """A sqlite3 cursor whose BEGIN IMMEDIATE finds the database busy three times with
    `code`: SQLite's extended busy codes cannot be brought about on demand."""

    def __init__(self, code: int) -> None:
        self.code, self.busy, self.timeout, self.began = code, 3, 5000, False

    def execute(self, sql: str) -> _BusyCursor:
        if sql.startswith("PRAGMA busy_timeout="):
            self.timeout = int(sql.split("=")[1])
        elif sql == "BEGIN IMMEDIATE" and self.busy:
            self.busy -= 1
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = self.code
            raise exc
        elif sql == "BEGIN IMMEDIATE":
            self.began = True
        return self

    def fetchone(self) -> tuple[int]:
        return (self.timeout,)


@pytest.mark.parametrize(
    "code", [sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY, sqlite3.SQLITE_BUSY_TIMEOUT]
)
def test_every_busy_code_is_waited_for(code: int) -> None:
    cursor = _BusyCursor(code)
    begin_immediate(cursor)
    assert cursor.began
    assert cursor.timeout == 5000
