"""Leaf chunks read and checked by worker processes, for `verify_log(workers=N)` on a
SQLite file or on PostgreSQL.

Reading a leaf row and checking it (its hash, its query columns and subject links, its
MAC) is nine tenths of a verification's CPU, and each chunk's checks stand alone, so
worker processes take whole chunks; the verifying process joins their leaf hashes into
the tree, in leaf order, and checks every root and the MAC sequence itself. Workers
start with `spawn`, so nothing of the caller's threads or open connections is copied
into them (and, as with any spawned process, a script calling `verify_log` with workers
needs the `if __name__ == "__main__":` guard).

Every worker reads the very state the verifier reads (`consistent_snapshot`):

- SQLite cannot hand a snapshot to another connection, so the verifier takes the
  database's writer lock, begins its own read and has every worker begin theirs, then
  gives the lock back. No commit can fall between those reads. Writers wait meanwhile: a
  few milliseconds, the workers being started already. Each worker then checks that it
  opened the very file the verifier reads (device and inode), since it has only the
  engine's URL and the engine may open another (a `creator`).
- PostgreSQL: the verifier's transaction exports its snapshot (`pg_export_snapshot`),
  each worker's imports it (`SET TRANSACTION SNAPSHOT`) and checks that it sees the
  verifier's (`pg_current_snapshot()`, the database's name). Three hazards come with
  it, and are met here:
  - a lock request queued between the verifier's locks and a worker's (a migration's
    ACCESS EXCLUSIVE) would have the worker wait on the migration, the migration on the
    verifier, and the verifier on the worker through the pipe, a cycle PostgreSQL cannot
    see. So the verifier takes every lock its reads will need before it exports its
    snapshot (`audit.db.lock_for_reading`), and each worker takes all of its own at its
    start, under `lock_timeout` (`LOCK_TIMEOUT`): a worker that cannot have them in time
    fails, and the verifier reads the log alone. A lock the verifier could not take
    beforehand (an index created meanwhile) is waited for `LOCK_TIMEOUT` at most, then
    the verification fails: an error, never a hang.
  - the verifier's transaction would sit idle while the workers read, and a server's
    `idle_in_transaction_session_timeout` would end it: it runs a trivial statement as
    each chunk comes in. The timeout is left as the server has it, so a verifier that is
    stopped (not killed) still has its transactions, and the workers', ended by it.
  - a worker has only the engine's URL, and an engine may set its `search_path`
    elsewhere (its connect arguments, a `connect` event): the same names could be
    another schema's tables, in the same database and snapshot. Each worker compares
    the OIDs of the tables it reads with those the verifier's session resolves.

Whatever keeps the workers from the verifier's state (on SQLite, the lock not had within
`WRITERS_HELD_TIMEOUT`; a worker that cannot connect, opened another file or another
server or other tables, or cannot take its locks in time) leaves the log to the verifier
alone, with a warning.

A worker reads its orders from a pipe and ends when the verifier closes it or dies, or
sends no order for `ANSWER_TIMEOUT`: a verifier killed by a signal leaves no worker
holding a transaction open (on PostgreSQL the server ends a transaction whose client
went away), and one stopped leaves them for that long at most.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager, suppress
from multiprocessing.connection import Connection as Pipe
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from audit import leaf_scan
from audit.db import begin_immediate, imported_snapshot, lock_for_reading, snapshot
from audit.errors import AuditError
from audit.leaf_scan import LeafProblem, LeafReader, check_leaves, mac_states
from audit.mac import EntryMac
from audit.tables import checkpoints, cosignatures, entries, entry_subjects, tree_state

log = logging.getLogger(__name__)

MIN_CHUNKS = 16
"""Fewer chunks than this are checked in the verifying process: starting a worker
(a new interpreter, its imports: about 0.4 s) costs more than checking 16 chunks
of 8,192 leaves in this process saves."""

AHEAD = 2  # chunks given to each worker before its first answer is read
WRITERS_HELD_TIMEOUT = 5.0  # seconds to wait for a writer already holding the lock
LOCK_TIMEOUT = 5.0  # PostgreSQL: seconds a worker may wait for a lock on the log's tables
ANSWER_TIMEOUT = 300.0  # seconds a worker may take to start, begin, or check a chunk

# The tables the verifier reads (PostgreSQL: all locked before its snapshot is shared),
# and those the workers read.
VERIFIER_READS = (entries, entry_subjects, checkpoints, cosignatures, tree_state)
WORKER_READS = (entries, entry_subjects)


class Chunk(NamedTuple):
    """One chunk's leaves as a worker checked them: the first one's position, their
    leaf hashes (32 bytes each, in leaf order), the first problem other than a MAC's,
    and each leaf's `mac_states` (when MACs are checked)."""

    low: int
    hashes: bytes
    problem: LeafProblem | None
    macs: bytes | None


class WorkerError(AuditError):
    """A worker process failed, went away, or did not answer in time."""


def can_share(engine: Engine) -> bool:
    """Whether worker processes may check the log `engine` reads: PostgreSQL, or SQLite
    in a file named by its URL (not in memory)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return True
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    return "mode=memory" not in str(url.database) and url.query.get("mode") != "memory"


class CheckerPool:
    """`workers` processes, each with a connection to the database `engine` names,
    ready to begin a snapshot (`consistent_snapshot`) and then check chunks (`chunks`)."""

    def __init__(self, engine: Engine, workers: int, *, with_index: bool, mac: EntryMac | None):
        self.keep_alive: Callable[[], object] | None = None  # run as each chunk comes in
        context = multiprocessing.get_context("spawn")
        url = engine.url.render_as_string(hide_password=False)
        self._pipes: list[Pipe] = []
        self._processes: list[Any] = []
        try:
            for _ in range(workers):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_serve, args=(theirs, url, with_index, mac), daemon=True
                )
                process.start()
                theirs.close()  # the worker's end lives in the worker only
                self._pipes.append(ours)
                self._processes.append(process)
            for pipe, process in zip(self._pipes, self._processes, strict=True):
                self._expect(pipe, process, "started")
        except BaseException:
            self.close()
            raise

    @classmethod
    def start(
        cls, engine: Engine, workers: int, *, with_index: bool, mac: EntryMac | None
    ) -> CheckerPool | None:
        """A started pool, or None (logged) if a worker could not start or connect."""
        try:
            return cls(engine, workers, with_index=with_index, mac=mac)
        except (WorkerError, OSError) as exc:
            log.warning("verifying in one process: a worker could not start (%s)", exc)
            return None

    def begin(self, identity: tuple[Any, ...]) -> None:
        """Every worker begins its read snapshot, and checks that it reads what the
        verifier reads: on SQLite `identity` is the file's (device, inode); on
        PostgreSQL what `_export` gives (the snapshot's id and what it sees, the
        database's name, the OIDs of the tables the workers read)."""
        for pipe in self._pipes:
            pipe.send(("begin", identity, LOCK_TIMEOUT))
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            self._expect(pipe, process, "begun")

    def chunks(self, end: int) -> Generator[Chunk]:
        """The chunks of leaves [0, end), in leaf order: chunk k goes to worker k mod N,
        and each worker has at most `AHEAD` of them at a time."""
        size = leaf_scan.CHUNK
        lows = range(0, end, size)
        workers = len(self._pipes)
        for k in range(min(len(lows), AHEAD * workers)):
            self._order(k % workers, lows[k], min(lows[k] + size, end))
        for k in range(len(lows)):
            chunk = self._expect(self._pipes[k % workers], self._processes[k % workers], "chunk")
            if self.keep_alive is not None:
                self.keep_alive()
            later = k + AHEAD * workers
            if later < len(lows):
                self._order(later % workers, lows[later], min(lows[later] + size, end))
            yield chunk[1]

    def close(self) -> None:
        """Stop the workers (a busy one finishes its chunk first, then finds the pipe
        closed) and wait for them; any still there after 10 s are killed."""
        for pipe in self._pipes:
            with suppress(OSError):
                pipe.send(("stop",))
            pipe.close()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        self._pipes, self._processes = [], []

    def _order(self, worker: int, low: int, high: int) -> None:
        try:
            self._pipes[worker].send(("check", low, high))
        except OSError:
            raise WorkerError("a verify worker went away") from None

    @staticmethod
    def _expect(pipe: Pipe, process: Any, kind: str) -> Any:
        try:
            if not pipe.poll(ANSWER_TIMEOUT):
                state = "did not answer" if process.is_alive() else "went away"
                raise WorkerError(f"a verify worker {state} in {ANSWER_TIMEOUT:g} s")
            message = pipe.recv()
        except (EOFError, OSError):
            raise WorkerError("a verify worker went away") from None
        if message[0] == "failed":
            raise WorkerError(f"a verify worker failed: {message[1]}")
        if message[0] != kind:
            raise WorkerError(f"a verify worker answered {message[0]!r}, not {kind!r}")
        return message


@contextmanager
def consistent_snapshot(
    engine: Engine, pool: CheckerPool | None
) -> Iterator[tuple[Connection, CheckerPool | None]]:
    """The verifier's read-only transaction (`audit.db.snapshot`) and the pool, every
    worker's snapshot begun in the same state of the database (see the module doc); or
    None instead of the pool, closed, if that could not be done."""
    if engine.dialect.name == "postgresql":
        with _shared_postgresql_snapshot(engine, pool) as shared:
            yield shared
        return
    with snapshot(engine) as conn:
        if pool is not None:
            try:
                path, identity = _database_file(conn)
                with _writers_held(path):
                    _fix_snapshot(conn)
                    pool.begin(identity)
            except (WorkerError, OSError, sqlite3.Error) as exc:
                log.warning("verifying in one process: the workers could not begin (%s)", exc)
                pool.close()
                pool = None
        yield conn, pool


@contextmanager
def _shared_postgresql_snapshot(
    engine: Engine, pool: CheckerPool | None
) -> Iterator[tuple[Connection, CheckerPool | None]]:
    """`consistent_snapshot` on PostgreSQL (see the module doc). The verifier's tables
    are locked before its snapshot is taken (LOCK TABLE takes none), so a schema change
    that committed while it waited is seen whole, as in one process."""
    with ExitStack() as stack:

        def locked() -> Connection:
            conn = stack.enter_context(snapshot(engine))
            lock_for_reading(conn, VERIFIER_READS)
            return conn

        conn = locked()
        if pool is not None:
            try:
                identity = _export(conn)
            except sa.exc.DBAPIError as exc:
                # The transaction is aborted with the statement: begin another, alone.
                log.warning(
                    "verifying in one process: the snapshot could not be shared (%s)",
                    type(exc.orig).__name__,
                )
                pool.close()
                pool = None
                stack.close()
                conn = locked()
            else:
                try:
                    pool.begin(identity)
                except (WorkerError, OSError) as exc:
                    log.warning("verifying in one process: the workers could not begin (%s)", exc)
                    pool.close()
                    pool = None
                else:
                    # From now on a wait for a lock could be one the workers close a
                    # cycle on (the module doc): bounded, as theirs are.
                    conn.exec_driver_sql(_lock_timeout(LOCK_TIMEOUT))
                    pool.keep_alive = functools.partial(conn.exec_driver_sql, "SELECT 1")
        yield conn, pool


_EXPORT = "SELECT pg_export_snapshot(), pg_current_snapshot()::text, current_database()"
_SEEN = "SELECT pg_current_snapshot()::text, current_database()"
_OID = sa.text("SELECT CAST(CAST(:name AS regclass) AS oid)")


def _export(conn: Connection) -> tuple[Any, ...]:
    """The verifier's snapshot, exported, and what a worker must find the same: (its
    id, what it sees, the database's name, the OIDs of the tables the workers read)."""
    snapshot_id, seen, database = conn.exec_driver_sql(_EXPORT).one()
    return str(snapshot_id), str(seen), str(database), _worker_tables(conn)


def _worker_tables(conn: Connection) -> tuple[int, ...]:
    """The OIDs of `WORKER_READS` as this session's `search_path` resolves their names."""
    preparer = conn.dialect.identifier_preparer
    return tuple(
        int(conn.execute(_OID, {"name": preparer.format_table(table)}).scalar_one())
        for table in WORKER_READS
    )


def _lock_timeout(seconds: float) -> str:
    return f"SET LOCAL lock_timeout = {max(1, round(seconds * 1000))}"


def _database_file(conn: Connection) -> tuple[str, tuple[int, int]]:
    """The file the connection's main database is, and its (device, inode)."""
    rows = conn.exec_driver_sql("PRAGMA database_list").all()
    path = next((row[2] for row in rows if row[1] == "main"), "")
    if not path:
        raise WorkerError("the database is not a file")
    found = os.stat(path)
    return path, (found.st_dev, found.st_ino)


@contextmanager
def _writers_held(path: str) -> Iterator[None]:
    """No other connection commits to the SQLite file `path` while the block runs (the
    writer lock, taken with BEGIN IMMEDIATE on a connection of its own, then rolled
    back). Not from the engine's pool: the verifier's snapshot may hold its only one."""
    conn = sqlite3.connect(path, timeout=WRITERS_HELD_TIMEOUT, isolation_level=None)
    try:
        cursor = conn.cursor()
        begin_immediate(cursor)
        try:
            yield
        finally:
            conn.rollback()
    finally:
        conn.close()


def _fix_snapshot(conn: Connection) -> None:
    """A SQLite read transaction sees the state of its first read: read once."""
    conn.exec_driver_sql("SELECT count(*) FROM audit_tree_state").scalar_one()


def _serve(pipe: Pipe, url: str, with_index: bool, mac: EntryMac | None) -> None:
    """A worker: connect, then follow the verifier's orders until it stops or goes."""
    with ExitStack() as stack:
        engine = _connect(pipe, url, stack)
        if engine is None:
            return
        pipe.send(("started",))
        reader: LeafReader | None = None
        while True:
            try:
                if not pipe.poll(ANSWER_TIMEOUT):  # the verifier is stopped, or stuck
                    return
                order = pipe.recv()
                if order[0] == "begin":
                    reader = _begin(engine, tuple(order[1]), order[2], with_index, stack)
                    pipe.send(("begun",))
                elif order[0] == "check" and reader is not None:
                    pipe.send(("chunk", _check(reader, order[1], order[2], with_index, mac)))
                else:
                    return
            except (EOFError, OSError):  # the verifier is gone
                return
            except WorkerError as exc:  # its own words: no values in them
                pipe.send(("failed", str(exc)))
                return
            except Exception as exc:  # noqa: BLE001 - the verifier raises it as WorkerError
                pipe.send(("failed", type(exc).__name__))  # the type only: no row's values
                return


def _connect(pipe: Pipe, url: str, stack: ExitStack) -> Engine | None:
    """An engine on the database `url` names, or None (the reason sent to the verifier).
    A SQLite file that is not there is not created."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (
        parsed.database and os.path.exists(parsed.database)
    ):
        pipe.send(("failed", "no database file at the engine's URL"))
        return None
    try:
        engine = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)
        stack.callback(engine.dispose)
        with engine.connect():  # can it reach the database at all?
            pass
    except Exception as exc:  # noqa: BLE001 - reported to the verifier, which reads alone
        pipe.send(("failed", type(exc).__name__))
        return None
    return engine


def _begin(
    engine: Engine,
    identity: tuple[Any, ...],
    lock_timeout: float,
    with_index: bool,
    stack: ExitStack,
) -> LeafReader:
    """The worker's snapshot, begun now: the verifier's (PostgreSQL), or on the
    verifier's own database file, which its writers are held off (SQLite)."""
    if engine.dialect.name == "postgresql":
        conn = _import(engine, identity, lock_timeout, stack)
    else:
        conn = stack.enter_context(snapshot(engine))
        _fix_snapshot(conn)
        if _database_file(conn)[1] != identity:
            raise WorkerError("not the database file the verifier reads")
    reader = LeafReader(conn, with_index=with_index)
    stack.callback(reader.close)
    return reader


_LOCK_NOT_AVAILABLE = "55P03"


def _import(
    engine: Engine, identity: tuple[Any, ...], lock_timeout: float, stack: ExitStack
) -> Connection:
    """The verifier's exported snapshot, imported, with every lock the worker's reads
    need taken within `lock_timeout` seconds (see the module doc)."""
    snapshot_id, seen, database, tables = identity
    try:
        conn = stack.enter_context(imported_snapshot(engine, snapshot_id))
    except sa.exc.DBAPIError:  # no such snapshot on the server this worker reached
        raise WorkerError("not the snapshot the verifier reads") from None
    if tuple(conn.exec_driver_sql(_SEEN).one()) != (seen, database):
        raise WorkerError("not the snapshot the verifier reads")
    conn.exec_driver_sql(_lock_timeout(lock_timeout))
    try:
        lock_for_reading(conn, WORKER_READS)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise WorkerError(
                f"the log's tables could not be locked for reading in {lock_timeout:g} s"
                " (another session waits for them, a schema change?)"
            ) from None
        raise
    if _worker_tables(conn) != tuple(tables):
        raise WorkerError("not the tables the verifier reads (another search_path?)")
    return conn


def _check(
    reader: LeafReader, low: int, high: int, with_index: bool, mac: EntryMac | None
) -> Chunk:
    rows = reader(low, high)
    hashes, problem = check_leaves(low, rows, reader if with_index else None)
    states = None if mac is None else mac_states(mac, rows)
    return Chunk(low, b"".join(hashes), problem, states)
