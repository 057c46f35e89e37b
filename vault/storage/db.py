"""Engines, transactions and the translation of driver errors into domain errors.

SQLite runs in WAL mode. pysqlite's own transaction handling is switched off so that we
emit BEGIN ourselves: writes take `BEGIN IMMEDIATE` (the write lock up front, so a
read-then-write transaction never fails to upgrade its lock), reads a deferred BEGIN.
Every engine hides bound parameters from its error messages: they can hold PII.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from vault import telemetry
from vault.errors import ResourceExhaustedError, UnavailableError
from vault.storage import unit_of_work
from vault.storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# How long a WAL scrub waits for readers and writers (and holds up new writers).
SCRUB_WAIT_SECONDS = 0.25
SCRUB_RETRY_SECONDS = 0.005
# SQLite's own default: the commit that finds the WAL this long (in pages) checkpoints it.
SQLITE_AUTOCHECKPOINT_PAGES = 1000
# Where a process checkpoints the WAL from a thread of its own (`Database.checkpoint_wal`),
# the committing connection's checkpoint is only the backstop, at this many pages
# (32 MiB of 4 KiB pages): a checkpoint copies pages into the database file and syncs
# both files, and the commit that runs it keeps its caller (and every caller queued for
# the writer lock) waiting meanwhile.
SQLITE_BACKSTOP_PAGES = 8192
# How long `Database.checkpoint_wal`'s RESTART waits for the writer lock and for readers of
# older snapshots; it holds up writers meanwhile, so it gives up soon and tries again.
RESTART_WAIT_MS = 10
_DISK_FULL_MARKERS = ("disk is full", "no space left", "could not extend file", "diskfull")


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    lock_timeout: float = 30.0,
    wal_autocheckpoint: int = SQLITE_AUTOCHECKPOINT_PAGES,
) -> Engine:
    """An engine for `url` (sqlite or postgresql+psycopg), configured for the vault.

    `lock_timeout` bounds how long a statement waits for a lock another session holds
    (SQLite's busy timeout, PostgreSQL's lock_timeout); past it the driver error becomes
    `UnavailableError`, so a stuck lock holder cannot pin the server's threads.
    `wal_autocheckpoint` (SQLite): the WAL length in pages at which a commit checkpoints
    it; raise it (`SQLITE_BACKSTOP_PAGES`) only where `Database.checkpoint_wal` runs.
    """
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": lock_timeout},
            pool_size=pool_size,
            # No cap beyond the pooled ones: a SQLite connection is a file handle, the
            # threads that use them bound their number, and a read served on the event
            # loop must never wait for one (writers parked on SQLite's lock could
            # otherwise hold them all and freeze the loop, health checks included).
            max_overflow=-1,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        if wal_autocheckpoint != SQLITE_AUTOCHECKPOINT_PAGES:
            event.listen(engine, "connect", _sqlite_autocheckpoint(wal_autocheckpoint))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c lock_timeout={max(1, round(lock_timeout * 1000))}",
        },
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode is durable against application crashes (kill -9); an OS crash
    # may lose the last transactions but never corrupts the database.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted content is overwritten with zeros, in b-tree pages and in freed pages,
    # whatever the SQLite build's default: erasure and anonymization must not leave a
    # wrapped data key, a sealed value or a blind-index digest in the file's free space.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_autocheckpoint(pages: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={int(pages)}").fetchall()

    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    # On the driver's connection: SQLAlchemy's statement path cost more than SQLite's
    # BEGIN on every transaction. A failure (the writer lock not had within the busy
    # timeout) is raised as SQLAlchemy raises its own, so `translate` maps it.
    statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get("vault_write") else "BEGIN"
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        raw.execute(statement)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, sqlite3.Error, dialect=conn.dialect
        ) from exc


def translate(exc: sa.exc.SQLAlchemyError) -> Exception:
    """The domain error for a driver error (the original stays as __cause__, unlogged)."""
    text = str(getattr(exc, "orig", exc)).lower()
    if any(marker in text for marker in _DISK_FULL_MARKERS):
        return ResourceExhaustedError("storage is full")
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return UnavailableError("database unavailable")
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return UnavailableError("database unavailable")
    return exc


@contextmanager
def _pragma_set(conn: Connection, name: str, value: int) -> Iterator[Any]:
    """SQLite: the connection's integer setting `name` is `value` until the block ends;
    yields the driver's connection, outside any transaction (SQLAlchemy would begin one)."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    (before,) = raw.execute(f"PRAGMA {name}").fetchone()
    raw.execute(f"PRAGMA {name}={int(value)}").fetchall()
    try:
        yield raw
    finally:
        try:
            raw.execute(f"PRAGMA {name}={int(before)}").fetchall()
        except Exception:  # noqa: BLE001 - the block's own error, if any, is what counts
            # Never back into the pool with a setting meant for one block.
            conn.invalidate()


@contextmanager
def _wal_autocheckpoint(conn: Connection, pages: int | None) -> Iterator[None]:
    """SQLite's automatic checkpoint threshold set to `pages` until the block ends."""
    if pages is None or conn.dialect.name != "sqlite":
        yield
        return
    with _pragma_set(conn, "wal_autocheckpoint", pages):
        yield


class Database:
    """A vault database: hands out transactions and translates driver failures."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._scrub_lock = threading.Lock()
        self._scrub_due = False
        # SQLite lets one connection checkpoint at a time and answers any other busy at
        # once: this process's background checkpoint and its scrubs take turns here.
        self._checkpointing = threading.Lock()

    @contextmanager
    def write(self, *, checkpoint_pages: int | None = None) -> Iterator[Connection]:
        """A read-write transaction; committed when the block ends without error.

        `checkpoint_pages` (SQLite): the commit checkpoints the WAL only if it has grown
        past that many pages (SQLite's default is 1,000), for a bulk writer whose WAL
        another connection checkpoints meanwhile (the retention job's). The connection's
        setting is restored after the commit."""
        with self._transaction(vault_write=True, checkpoint_pages=checkpoint_pages) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only unit of work (a consistent snapshot on both databases)."""
        with self._transaction(vault_write=False) as conn:
            yield conn

    @contextmanager
    def unit_of_work(self, on_begin: Callable[[Connection], None]) -> Iterator[UnitOfWork]:
        """The block's writes (and its reads after the first write) in one transaction,
        `on_begin` run first in it; committed when the block ends without error
        (`vault.storage.unit_of_work`)."""
        unit = UnitOfWork(lambda: self._begin(vault_write=True), on_begin)
        with unit_of_work.entered(unit):
            yield unit

    @contextmanager
    def _transaction(
        self, *, vault_write: bool, checkpoint_pages: int | None = None
    ) -> Iterator[Connection]:
        unit = unit_of_work.current()
        if unit is None or not (vault_write or unit.begun):
            with self._begin(vault_write=vault_write, checkpoint_pages=checkpoint_pages) as conn:
                yield conn
            return
        try:
            conn = unit.connection()
            if not vault_write:
                yield conn
                return
            # A savepoint: a domain that catches a failed write keeps the unit usable.
            with conn.begin_nested():
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    @contextmanager
    def _begin(
        self, *, vault_write: bool, checkpoint_pages: int | None = None
    ) -> Iterator[Connection]:
        name = "db.write" if vault_write else "db.read"
        try:
            with (
                telemetry.span(name, **{"db.system": self.dialect}),
                self.engine.connect().execution_options(vault_write=vault_write) as conn,
                _wal_autocheckpoint(conn, checkpoint_pages),
                conn.begin(),
            ):
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def checkpoint_wal(self) -> bool:
        """SQLite: copy the pages the write-ahead log holds into the database file; the
        server runs it from a thread of its own every `sqlite_checkpoint_interval_seconds`
        (SQLite's driver lets go of the GIL meanwhile), so no call's commit does.

        A PASSIVE checkpoint copies while readers and writers go on. Only a checkpoint
        that holds the writer lock can then let the log start over from its beginning
        (the next writer must find it wholly copied), so once the log holds
        `SQLITE_AUTOCHECKPOINT_PAGES` frames and the passive pass copied them all, a
        RESTART copies what was committed since and waits for readers of older snapshots
        to finish, so that the next writer starts the log over. It waits at most
        `RESTART_WAIT_MS` for the writer and those readers (otherwise it tries again next
        time). Always False (nothing to run again at once); PostgreSQL: nothing to do."""
        if self.dialect != "sqlite":
            return False
        try:
            with (
                self._checkpointing,
                self.engine.connect() as conn,
                _pragma_set(conn, "busy_timeout", RESTART_WAIT_MS) as raw,
            ):
                busy, logged, copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy == 0 and copied == logged >= SQLITE_AUTOCHECKPOINT_PAGES:
                    raw.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
        except sqlite3.Error as exc:  # the driver's own connection: not wrapped
            raise UnavailableError("database unavailable") from exc
        return False

    def scrub_wal(self, *, wait_seconds: float = SCRUB_WAIT_SECONDS) -> bool:
        """SQLite: copy every page in the write-ahead log into the database file and
        truncate the log to nothing. Until then the -wal file keeps earlier versions of
        the pages a transaction changed: after an erasure, copies of the wrapped data
        key, the sealed fields and the blind-index digests it deleted (deleted content
        in the database file itself is zeroed: `secure_delete`).

        Waits at most `wait_seconds` for readers of an older snapshot and for a writer,
        and holds up new writers meanwhile; False if they kept it from finishing (try
        again later). PostgreSQL: True, there is nothing this process can scrub (see
        docs/operations.md, "Crypto-shredded subjects and backups")."""
        if self.dialect != "sqlite":
            return True
        deadline = time.monotonic() + wait_seconds
        try:
            with (
                self._checkpointing,  # this process's own checkpoint first finishes
                self.engine.connect() as conn,
                _pragma_set(conn, "busy_timeout", max(1, round(wait_seconds * 1000))) as raw,
            ):
                while True:
                    busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    left = deadline - time.monotonic()
                    if busy == 0 or left <= 0:
                        break
                    # Busy at once, whatever the timeout, while another connection (another
                    # worker's `checkpoint_wal`) checkpoints: try again until the deadline.
                    time.sleep(min(SCRUB_RETRY_SECONDS, left))
                    raw.execute(f"PRAGMA busy_timeout={max(1, round(left * 1000))}").fetchall()
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
        except sqlite3.Error as exc:  # the driver's own connection: not wrapped
            raise UnavailableError("database unavailable") from exc
        return bool(busy == 0)

    def redo_if_rolled_back(self, work: Callable[[Connection], None]) -> None:
        """Call after doing `work` in a write: if that write belongs to a unit of work
        which then rolls back (its call failed), do `work` again in a transaction of its
        own once the rollback is done (a wrong verification code counts although its call
        fails). Outside a unit, the write already committed `work`: nothing to redo."""
        unit = unit_of_work.current()
        if unit is None or not unit.begun:
            return

        def again() -> None:
            with self.write() as conn:
                work(conn)

        unit.after_rollback(again)

    def after_shred(self) -> None:
        """Call once a transaction that destroyed data keys, digests or tokens has
        committed: scrubs the WAL now (`scrub_wal`) or, if it cannot, leaves it pending
        for `scrub_pending` to retry. Never raises: the erasure itself has committed."""
        if self.dialect != "sqlite":
            return
        unit = unit_of_work.current()
        if unit is not None and unit.begun:
            unit.after_commit(self.after_shred)
            return
        with self._scrub_lock:
            self._scrub_due = True
        self.scrub_pending()

    def scrub_pending(self, *, wait_seconds: float = SCRUB_WAIT_SECONDS) -> bool:
        """Retry a scrub `after_shred` could not finish (the vault's background task,
        and closing); never raises. One that fails again stays pending. Returns False
        as a `PeriodicTask`'s work does when it need not run again at once: a busy
        database is retried at the task's next interval, not in a loop."""
        with self._scrub_lock:
            if not self._scrub_due:
                return False
            try:
                self._scrub_due = not self.scrub_wal(wait_seconds=wait_seconds)
            except Exception as exc:  # noqa: BLE001 - the shredding transaction committed
                log.warning("WAL scrub failed (%s); it will be retried", type(exc).__name__)
                return False
            if self._scrub_due:
                log.info("WAL scrub deferred: the database was busy; it will be retried")
        return False

    @property
    def scrub_is_pending(self) -> bool:
        return self._scrub_due

    def dispose(self) -> None:
        self.engine.dispose()


def wait_until_reachable(engine: Engine, *, timeout: float, clock: Any = time) -> None:
    """Block until the database answers, with exponential back-off; raise after `timeout`."""
    deadline = clock.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if clock.monotonic() >= deadline:
                raise UnavailableError(
                    f"database unavailable: not reachable within {timeout:g}s "
                    "(check VAULT_DATABASE_URL and that the server is up)"
                ) from exc
            # The type only, as for every driver error we log (messages can quote SQL).
            log.warning(
                "database not reachable yet (%s); retrying in %.1fs", type(exc).__name__, delay
            )
            clock.sleep(min(delay, max(deadline - clock.monotonic(), 0.0)))
            delay = min(delay * 2, 5.0)
        else:
            return


def wait_until(
    check: Callable[[], bool], *, timeout: float, waiting_for: str, clock: Any = time
) -> bool:
    """Poll `check` with back-off until it holds (True) or `timeout` passes (False)."""
    deadline = clock.monotonic() + timeout
    delay = 0.5
    while not check():
        if clock.monotonic() >= deadline:
            return False
        log.warning("waiting for %s; checking again in %.1fs", waiting_for, delay)
        clock.sleep(min(delay, max(deadline - clock.monotonic(), 0.0)))
        delay = min(delay * 2, 5.0)
    return True
