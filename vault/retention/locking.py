"""Exactly one retention runner at a time, across replicas and processes.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection held
for the whole run; it goes away with the connection, so a killed runner frees it.
SQLite: `flock` on a file beside the database; the kernel drops it when the process
dies. Both are try-locks: a second runner skips its run instead of queueing. They guard
the schedule, not correctness: SKIP LOCKED and conditional updates keep each subject
anonymized once even without them.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_ADVISORY_KEY = 0x56524554  # "VRET": an arbitrary, fixed key for the retention runner
LOCK_FILE = "retention.lock"


class RunnerLock(Protocol):
    def hold(self) -> AbstractContextManager[bool]:
        """A context manager yielding True when this runner holds the lock."""
        ...


class PostgresRunnerLock:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def hold(self) -> Iterator[bool]:
        # Autocommit: the lock lives in the session, not in an open transaction.
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            got = bool(
                conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY}
                ).scalar_one()
            )
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})


class FileRunnerLock:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self) -> Iterator[bool]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def runner_lock_for(engine: Engine, data_dir: Path) -> RunnerLock:
    """The advisory lock on PostgreSQL; otherwise a file lock beside the SQLite file."""
    if engine.dialect.name == "postgresql":
        return PostgresRunnerLock(engine)
    database = engine.url.database
    if database and database != ":memory:":
        return FileRunnerLock(Path(database).resolve().with_name(LOCK_FILE))
    return FileRunnerLock(data_dir / LOCK_FILE)
