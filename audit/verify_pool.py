"""Leaf chunks read and checked by worker processes, for `verify_log(workers=N)`.

Reading a leaf row and checking it (its hash, its query columns and subject links, its
MAC) is nine tenths of a verification's CPU, and each chunk's checks stand alone, so
worker processes take whole chunks; the verifying process joins their leaf hashes into
the tree, in leaf order, and checks every root and the MAC sequence itself. Workers
start with `spawn`, so nothing of the caller's threads or open connections is copied
into them (and, as with any spawned process, a script calling `verify_log` with workers
needs the `if __name__ == "__main__":` guard).

Every worker reads the very state the verifying process reads (`consistent_snapshot`):

- PostgreSQL: the verifier's transaction exports its snapshot (`pg_export_snapshot`)
  and each worker's transaction imports it (`SET TRANSACTION SNAPSHOT`).
- SQLite, which cannot hand a snapshot to another connection: the verifier takes the
  database's writer lock, begins its own read and has every worker begin theirs, then
  gives the lock back. No commit can fall between those reads, so they all see one
  state. Writers wait meanwhile: a few milliseconds, the workers being started already.

A worker reads its orders from a pipe and ends when the verifier closes it, or dies: a
verifier stopped by a signal leaves no worker holding a transaction open.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sqlite3
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager, suppress
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from audit import leaf_scan
from audit.db import begin_immediate, imported_snapshot, snapshot
from audit.leaf_scan import LeafProblem, LeafReader, check_leaves, mac_states
from audit.mac import EntryMac

log = logging.getLogger(__name__)

MIN_CHUNKS = 16
"""Fewer chunks than this are checked in the verifying process: starting a worker
(a new interpreter, its imports: about 0.4 s) costs more than checking 16 chunks
of 8,192 leaves in this process saves."""

AHEAD = 2  # chunks given to each worker before its first answer is read


class Chunk(NamedTuple):
    """One chunk's leaves as a worker checked them: the first one's position, their
    leaf hashes (32 bytes each, in leaf order), the first problem other than a MAC's,
    and each leaf's `mac_states` (when MACs are checked)."""

    low: int
    hashes: bytes
    problem: LeafProblem | None
    macs: bytes | None


class WorkerError(RuntimeError):
    """A worker process failed or went away."""


def default_workers() -> int:
    """The CPUs this process may run on, and no more than a cgroup's CPU quota allows
    (a container's limit, which the affinity mask does not show)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, _cgroup_cpus() or cpus or 1))


def _cgroup_cpus(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def can_share(engine: Engine) -> bool:
    """Whether worker processes can open the database `engine` reads from its URL:
    PostgreSQL, or SQLite in a file (not in memory). An engine that needs more than its
    URL (a `creator`, connect arguments) fails to start the workers, and the verifier
    then reads alone."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return True
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


class CheckerPool:
    """`workers` processes, each with a connection to the database `engine` reads, ready
    to begin a snapshot (`consistent_snapshot`) and then check chunks (`chunks`)."""

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
            for pipe in self._pipes:
                self._expect(pipe, "started")
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

    def begin(self, snapshot_id: str | None) -> None:
        """Every worker begins its read snapshot (on PostgreSQL the exported one)."""
        for pipe in self._pipes:
            pipe.send(("begin", snapshot_id))
        for pipe in self._pipes:
            self._expect(pipe, "begun")

    def chunks(self, end: int) -> Generator[Chunk]:
        """The chunks of leaves [0, end), in leaf order: chunk k goes to worker k mod N,
        and each worker has at most `AHEAD` of them at a time."""
        size = leaf_scan.CHUNK
        lows = range(0, end, size)
        workers = len(self._pipes)
        for k in range(min(len(lows), AHEAD * workers)):
            self._pipes[k % workers].send(("check", lows[k], min(lows[k] + size, end)))
        for k in range(len(lows)):
            pipe = self._pipes[k % workers]
            chunk = self._expect(pipe, "chunk")[1]
            later = k + AHEAD * workers
            if later < len(lows):
                pipe.send(("check", lows[later], min(lows[later] + size, end)))
            yield chunk

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

    @staticmethod
    def _expect(pipe: Pipe, kind: str) -> Any:
        try:
            message = pipe.recv()
        except (EOFError, OSError):
            raise WorkerError("a verify worker went away") from None
        if message[0] == "failed":
            raise WorkerError(f"a verify worker failed: {message[1]}")
        if message[0] != kind:
            raise WorkerError(f"a verify worker answered {message[0]!r}, not {kind!r}")
        return message


@contextmanager
def consistent_snapshot(engine: Engine, pool: CheckerPool | None) -> Iterator[Connection]:
    """The verifier's read-only transaction (`audit.db.snapshot`); with a `pool`, every
    worker's begins in the same state of the database (see the module doc)."""
    with snapshot(engine) as conn:
        if pool is not None and conn.dialect.name == "postgresql":
            snapshot_id = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            pool.begin(str(snapshot_id))
        elif pool is not None:
            with _writers_held(engine):
                _fix_snapshot(conn)
                pool.begin(None)
        yield conn


WRITERS_HELD_TIMEOUT = 30.0  # seconds to wait for a writer already holding the lock


@contextmanager
def _writers_held(engine: Engine) -> Iterator[None]:
    """SQLite: no other connection commits while the block runs (the writer lock, taken
    with BEGIN IMMEDIATE on a connection of its own to the file, then rolled back). Not
    from the engine's pool: the verifier's snapshot may hold its only connection."""
    conn = sqlite3.connect(
        str(engine.url.database), timeout=WRITERS_HELD_TIMEOUT, isolation_level=None
    )
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
        try:
            engine = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)
            stack.callback(engine.dispose)
            with engine.connect():  # can it reach the database at all?
                pass
        except Exception as exc:  # noqa: BLE001 - reported to the verifier, which reads alone
            pipe.send(("failed", type(exc).__name__))
            return
        pipe.send(("started",))
        reader: LeafReader | None = None
        while True:
            try:
                order = pipe.recv()
            except (EOFError, OSError):  # the verifier is gone
                return
            try:
                if order[0] == "begin":
                    if order[1] is None:
                        conn = stack.enter_context(snapshot(engine))
                        _fix_snapshot(conn)
                    else:
                        conn = stack.enter_context(imported_snapshot(engine, order[1]))
                    reader = LeafReader(conn, with_index=with_index)
                    stack.callback(reader.close)
                    pipe.send(("begun",))
                elif order[0] == "check" and reader is not None:
                    pipe.send(("chunk", _check(reader, order[1], order[2], with_index, mac)))
                else:
                    return
            except (BrokenPipeError, EOFError):
                return
            except Exception as exc:  # noqa: BLE001 - the verifier raises it as WorkerError
                pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
                return


def _check(
    reader: LeafReader, low: int, high: int, with_index: bool, mac: EntryMac | None
) -> Chunk:
    rows = reader(low, high)
    hashes, problem = check_leaves(low, rows, reader if with_index else None)
    states = None if mac is None else mac_states(mac, rows)
    return Chunk(low, b"".join(hashes), problem, states)
