"""Leaf chunks read and checked by worker processes, for `verify_log(workers=N)`.

Reading a leaf row and checking it (its hash, its query columns and subject links, its
MAC) is nine tenths of a verification's CPU, and each chunk's checks stand alone, so
worker processes take whole chunks; the verifying process joins their leaf hashes into
the tree, in leaf order, and checks every root as before. Workers start with `spawn`, so
nothing of the caller's threads or open connections is copied into them.

What each worker reads:

- PostgreSQL: the verifying process's own snapshot, imported
  (`pg_export_snapshot`, `SET TRANSACTION SNAPSHOT`): every worker sees exactly what it
  sees.
- SQLite, which cannot share a snapshot between connections: a read transaction of the
  worker's own, begun after the verifying process's, and only the leaves up to the size
  that process found. Integrated leaves are only ever appended, so those are the same
  rows, unless someone rewrites them in between; a rewrite after a leaf was read escapes
  any verifier, one process or several, and one before it is caught as always.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from audit import leaf_scan
from audit.db import imported_snapshot, snapshot
from audit.leaf_scan import LeafProblem, LeafReader, check_leaves, mac_states
from audit.mac import EntryMac

MIN_CHUNKS = 16
"""Fewer chunks than this are checked in the verifying process: starting a worker
(a new interpreter, its imports: about 0.4 s) costs more than checking 16 chunks
of 8,192 leaves in this process saves."""


class Chunk(NamedTuple):
    """One chunk's leaves as a worker checked them: the first one's position, their
    leaf hashes (32 bytes each, in leaf order), the first problem other than a MAC's,
    and each leaf's `mac_states` (when MACs are checked)."""

    low: int
    hashes: bytes
    problem: LeafProblem | None
    macs: bytes | None


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def can_share(engine: Engine) -> bool:
    """Whether worker processes can open the database `engine` reads: PostgreSQL, or
    SQLite in a file (not in memory)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return True
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def export_snapshot(conn: Connection) -> str | None:
    """PostgreSQL: an id other sessions can import this transaction's snapshot by."""
    if conn.dialect.name != "postgresql":
        return None
    return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())


def chunks(
    engine: Engine,
    snapshot_id: str | None,
    end: int,
    *,
    workers: int,
    with_index: bool,
    mac: EntryMac | None,
) -> Generator[Chunk]:
    """The chunks of leaves [0, end), in leaf order, each read and checked by one of
    `workers` processes; at most two chunks per worker are read ahead."""
    context = multiprocessing.get_context("spawn")
    url = engine.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start,
        initargs=(url, snapshot_id, with_index, mac),
    )
    try:
        lows = iter(range(0, end, leaf_scan.CHUNK))
        ahead: deque[Future[Chunk]] = deque()

        def submit() -> None:
            low = next(lows, None)
            if low is not None:
                ahead.append(pool.submit(_check, low, min(low + leaf_scan.CHUNK, end)))

        for _ in range(2 * workers):
            submit()
        while ahead:
            chunk = ahead.popleft().result()
            submit()
            yield chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# In each worker process: its connection, reader and MAC key, set once by `_start`.
_worker: dict[str, Any] = {}


def _start(url: str, snapshot_id: str | None, with_index: bool, mac: EntryMac | None) -> None:
    engine = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)
    stack = ExitStack()  # held until the process ends
    if snapshot_id is None:
        conn = stack.enter_context(snapshot(engine))
    else:
        conn = stack.enter_context(imported_snapshot(engine, snapshot_id))
    _worker.update(
        stack=stack,
        reader=LeafReader(conn, with_index=with_index),
        with_index=with_index,
        mac=mac,
    )


def _check(low: int, high: int) -> Chunk:
    reader: LeafReader = _worker["reader"]
    rows = reader(low, high)
    hashes, problem = check_leaves(low, rows, reader if _worker["with_index"] else None)
    mac: EntryMac | None = _worker["mac"]
    states = None if mac is None else mac_states(mac, rows)
    return Chunk(low, b"".join(hashes), problem, states)
