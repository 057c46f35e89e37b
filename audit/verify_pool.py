"""Leaf chunks read and checked by worker processes, for `verify_log(workers=N)` on a
SQLite file.

Reading a leaf row and checking it (its hash, its query columns and subject links, its
MAC) is nine tenths of a verification's CPU, and each chunk's checks stand alone, so
worker processes take whole chunks; the verifying process joins their leaf hashes into
the tree, in leaf order, and checks every root and the MAC sequence itself. Workers
start with `spawn`, so nothing of the caller's threads or open connections is copied
into them (and, as with any spawned process, a script calling `verify_log` with workers
needs the `if __name__ == "__main__":` guard).

Every worker reads the very state the verifier reads (`consistent_snapshot`): SQLite
cannot hand a snapshot to another connection, so the verifier takes the database's
writer lock, begins its own read and has every worker begin theirs, then gives the lock
back. No commit can fall between those reads. Writers wait meanwhile: a few
milliseconds, the workers being started already. Each worker then checks that it opened
the very file the verifier reads (device and inode), since it has only the engine's URL
and the engine may open another (a `creator`). Whatever keeps the workers from that
(the lock not had within `WRITERS_HELD_TIMEOUT`, a worker that cannot connect or opened
another file) leaves the log to the verifier alone, with a warning.

PostgreSQL is verified in one process. Workers could import the verifier's snapshot, but
a lock request queued between the verifier's reads and theirs (a migration's ACCESS
EXCLUSIVE) would make them wait on each other through the pipe, where PostgreSQL cannot
see the cycle; and the verifier's transaction would sit idle through the whole scan.

A worker reads its orders from a pipe and ends when the verifier closes it, or dies: a
verifier stopped by a signal leaves no worker holding a transaction open.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager, suppress
from multiprocessing.connection import Connection as Pipe
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from audit import leaf_scan
from audit.db import begin_immediate, snapshot
from audit.errors import AuditError
from audit.leaf_scan import LeafProblem, LeafReader, check_leaves, mac_states
from audit.mac import EntryMac

log = logging.getLogger(__name__)

MIN_CHUNKS = 16
"""Fewer chunks than this are checked in the verifying process: starting a worker
(a new interpreter, its imports: about 0.4 s) costs more than checking 16 chunks
of 8,192 leaves in this process saves."""

AHEAD = 2  # chunks given to each worker before its first answer is read
WRITERS_HELD_TIMEOUT = 5.0  # seconds to wait for a writer already holding the lock
ANSWER_TIMEOUT = 300.0  # seconds a worker may take to start, begin, or check a chunk


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
    """Whether worker processes may check the log `engine` reads: SQLite in a file named
    by its URL (not in memory; PostgreSQL is verified in one process, see above)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    return "mode=memory" not in str(url.database) and url.query.get("mode") != "memory"


class CheckerPool:
    """`workers` processes, each with a connection to the SQLite file `engine` names,
    ready to begin a snapshot (`consistent_snapshot`) and then check chunks (`chunks`)."""

    def __init__(self, engine: Engine, workers: int, *, with_index: bool, mac: EntryMac | None):
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

    def begin(self, identity: tuple[int, int]) -> None:
        """Every worker begins its read snapshot, and checks that its database file is
        `identity` (device, inode): the verifier's."""
        for pipe in self._pipes:
            pipe.send(("begin", identity))
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
                order = pipe.recv()
                if order[0] == "begin":
                    reader = _begin(engine, tuple(order[1]), with_index, stack)
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
    """An engine on the file `url` names, or None (the reason sent to the verifier)."""
    database = sa.make_url(url).database
    if not database or not os.path.exists(database):  # connecting would create it
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
    engine: Engine, identity: tuple[int, ...], with_index: bool, stack: ExitStack
) -> LeafReader:
    """The worker's snapshot, begun now, on the verifier's own database file."""
    conn = stack.enter_context(snapshot(engine))
    _fix_snapshot(conn)
    if _database_file(conn)[1] != identity:
        raise WorkerError("not the database file the verifier reads")
    reader = LeafReader(conn, with_index=with_index)
    stack.callback(reader.close)
    return reader


def _check(
    reader: LeafReader, low: int, high: int, with_index: bool, mac: EntryMac | None
) -> Chunk:
    rows = reader(low, high)
    hashes, problem = check_leaves(low, rows, reader if with_index else None)
    states = None if mac is None else mac_states(mac, rows)
    return Chunk(low, b"".join(hashes), problem, states)
