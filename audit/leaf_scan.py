"""The verifier's hot loop: read stored leaves in chunks and check each one.

Per leaf: its index continues the sequence, its stored leaf hash is the hash of its
stored bytes, and - unless switched off - its query columns and subject links say
what its bytes say (`audit.index_check`).

Rows are read through the DB-API cursor as plain tuples (SQLAlchemy's row objects
would cost a third of the verifier's time); the SQL is still compiled by SQLAlchemy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.append import ROW_COLUMNS
from audit.index_check import CHUNK_LINKS, FRAGMENTS, IndexSource, first_index_problem
from audit.mac import EntryMac
from audit.tables import entries, entry_subjects

# A power of two, so each chunk is a few whole perfect subtrees. Chunks of 8,192 leaves
# (about 10 MB of rows) ran 10% faster than 65,536 (about 80 MB, which no CPU cache holds
# from the read to the checks), and the verifier's memory peaks at a third.
CHUNK = 1 << 13

_IN_RANGE = (
    entries.c.leaf_index >= sa.bindparam("low"),
    entries.c.leaf_index < sa.bindparam("high"),
)
_LEAVES = (
    sa.select(entries.c.leaf_index, entries.c.entry, entries.c.leaf_hash)
    .where(*_IN_RANGE)
    .order_by(entries.c.leaf_index)
)
# The MAC goes last in every leaf row (row[-1]), with or without the index fragments.
_MAC = entries.c.mac
_BY_ID = entries.c.id == sa.bindparam("entry_id")
_COLUMNS = sa.select(*(entries.c[name] for name in ROW_COLUMNS[:7])).where(_BY_ID)
_LINKS = sa.select(entry_subjects.c.subject_id).where(
    entry_subjects.c.entry_id == sa.bindparam("entry_id")
)
_LEAF_LINKS = (
    sa.select(entries.c.id, entry_subjects.c.subject_id)
    .join_from(entries, entry_subjects, entry_subjects.c.entry_id == entries.c.id)
    .where(*_IN_RANGE)
)
_AS_BYTES = {"sqlite": "CAST({} AS BLOB)", "postgresql": "convert_to({}, 'UTF8')"}


def _leaves_and_index(dialect: str) -> sa.Select[Any]:
    fragments = [_AS_BYTES[dialect].format(sql) for sql in FRAGMENTS]
    return _LEAVES.add_columns(
        *(sa.literal_column(sql) for sql in fragments), entries.c.time_us, entries.c.id, _MAC
    )


def supports_index_check(dialect: str) -> bool:
    """True where `LeafReader(with_index=True)` can run (SQLite and PostgreSQL)."""
    return dialect in _AS_BYTES


@dataclass(frozen=True)
class LeafProblem:
    """What is wrong with the leaf at `position`."""

    problem: str
    position: int


# PostgreSQL, for the rest of the reader's transaction: the leaves are read in leaf order,
# a range at a time, which the unique leaf-index index gives as it is. On a table without
# statistics (just restored or bulk-loaded, not yet analyzed) the planner chose a bitmap
# scan, a sort that spilled to disk and two parallel workers instead: 3x the server's time
# per chunk, and the verifier's own worker processes are its parallelism.
_LEAF_ORDER_PLANS = (
    "SET LOCAL enable_sort = off",
    "SET LOCAL max_parallel_workers_per_gather = 0",
)


class LeafReader:
    """Reads leaf rows, with or without their index fragments, on one connection (in a
    transaction: on PostgreSQL it sets `_LEAF_ORDER_PLANS` for the rest of it)."""

    def __init__(self, conn: Connection, *, with_index: bool) -> None:
        self.with_index = with_index
        if conn.dialect.name == "postgresql":
            for setting in _LEAF_ORDER_PLANS:
                conn.exec_driver_sql(setting)
        statement = (
            _leaves_and_index(conn.dialect.name) if with_index else _LEAVES.add_columns(_MAC)
        )
        self._leaves = _compiled(conn, statement)
        self._columns = _compiled(conn, _COLUMNS)
        self._links = _compiled(conn, _LINKS)
        if with_index:
            self._chunk_links = _compiled(conn, sa.text(CHUNK_LINKS[conn.dialect.name]))
            self._leaf_links = _compiled(conn, _LEAF_LINKS)
        # psycopg reads binary results: bytea as it is, not as hex text to decode.
        binary = {"binary": True} if conn.dialect.driver == "psycopg" else {}
        self._cursor = conn.connection.cursor(**binary)

    def close(self) -> None:
        self._cursor.close()

    def __call__(self, low: int, high: int) -> list[Any]:
        """Leaves [low, high) as plain tuples, in leaf order."""
        return self._fetch(self._leaves, low=low, high=high)

    def index(self, entry_id: int) -> tuple[Sequence[Any], list[str]]:
        """One entry's query columns (in `ROW_COLUMNS` order) and linked subjects."""
        (columns,) = self._fetch(self._columns, entry_id=entry_id)
        links = self._fetch(self._links, entry_id=entry_id)
        return columns, [row[0] for row in links]

    def chunk_links(self, first: int, last: int) -> tuple[str | None, bytes | None, int]:
        """The links of entries `first`..`last` (`audit.index_check.CHUNK_LINKS`)."""
        ((entry_ids, subjects, count),) = self._fetch(self._chunk_links, first=first, last=last)
        return entry_ids, None if subjects is None else bytes(subjects), count

    def leaf_links(self, low: int, high: int) -> list[tuple[int, str]]:
        """(entry id, subject id) of every link of leaves [low, high)."""
        return self._fetch(self._leaf_links, low=low, high=high)

    def _fetch(self, compiled: tuple[str, Sequence[str] | None], **values: int) -> list[Any]:
        sql, order = compiled
        params: Any = values if order is None else [values[k] for k in order]
        self._cursor.execute(sql, params)
        return list(self._cursor.fetchall())


def _compiled(
    conn: Connection, statement: sa.Select[Any] | sa.TextClause
) -> tuple[str, Sequence[str] | None]:
    compiled = statement.compile(dialect=conn.dialect)
    return str(compiled), compiled.positiontup if compiled.positional else None


NO_MAC, VALID_MAC, BAD_MAC = b"\x00", b"\x01", b"\x02"


def mac_states(mac: EntryMac, rows: Sequence[Any]) -> bytes:
    """One byte per row of `rows` (leaf rows, the MAC last): `NO_MAC`, `VALID_MAC` or
    `BAD_MAC`. Which of them is a problem depends on the leaves before (`MacCheck`)."""
    is_valid = mac.is_valid
    return bytes(
        0 if row[-1] is None else 1 if is_valid(row[1], bytes(row[-1])) else 2 for row in rows
    )


class MacCheck:
    """Checks entry MACs chunk by chunk, in leaf order: every entry from the first one
    with a MAC on must carry a valid one; the entries before it are legacy (written
    before MACs)."""

    def __init__(self, mac: EntryMac) -> None:
        self.mac = mac
        self.legacy = 0  # leaves before the first leaf with a MAC
        self.checked = 0  # leaves whose MAC verified
        self.started = False

    def problem(self, position: int, rows: Sequence[Any]) -> LeafProblem | None:
        """The first leaf of `rows` (leaves from `position` on) whose MAC fails."""
        return self.sequence(position, mac_states(self.mac, rows))

    def sequence(self, position: int, states: bytes) -> LeafProblem | None:
        """As `problem`, from the leaves' `mac_states` (worked out elsewhere)."""
        offset = 0
        if not self.started:
            offset = len(states) - len(states.lstrip(NO_MAC))
            self.legacy += offset
            if offset == len(states):
                return None
            self.started = True
        missing = states.find(NO_MAC, offset)
        bad = states.find(BAD_MAC, offset)
        first = min((at for at in (missing, bad) if at >= 0), default=len(states))
        self.checked += first - offset
        if first == missing:
            return LeafProblem("entry has no MAC (later than entries with one)", position + first)
        if first == bad:
            return LeafProblem("entry MAC does not verify", position + first)
        return None


def check_leaves(
    position: int, rows: Sequence[Any], index: IndexSource | None, macs: MacCheck | None = None
) -> tuple[list[bytes], LeafProblem | None]:
    """The leaf hashes of `rows` recomputed from their bytes, and their first problem.

    `rows` are the leaves from `position` on, in leaf order, as `LeafReader` reads them;
    with `index` (the `LeafReader`) their query columns and links are checked too, and
    with `macs` their MACs.
    """
    hashes = _leaf_hashes(rows)
    problems = []
    indexes = [row[0] for row in rows]
    if indexes != list(range(position, position + len(rows))):
        i = next(i for i, index in enumerate(indexes) if index != position + i)
        if indexes[i] > position + i:
            problems.append(LeafProblem("leaf is missing", position + i))
        else:  # sorted, so the row before claims the same leaf
            problems.append(LeafProblem("leaf index is duplicated", position + i - 1))
    if hashes != [row[2] for row in rows]:
        j = next(j for j, row in enumerate(rows) if hashes[j] != row[2])
        problems.append(LeafProblem("entry content does not match its leaf hash", position + j))
    if index is not None and (found := first_index_problem(rows, index)) is not None:
        problems.append(LeafProblem(*found))
    if macs is not None and (found_mac := macs.problem(position, rows)) is not None:
        problems.append(found_mac)
    return hashes, first_problem(*problems)


def first_problem(*problems: LeafProblem | None) -> LeafProblem | None:
    """The problem at the lowest position, if any."""
    return min(
        (found for found in problems if found is not None),
        key=lambda found: found.position,
        default=None,
    )


_LEAF_PREFIX = hashlib.sha256(b"\x00")


def _leaf_hashes(rows: Sequence[Any]) -> list[bytes]:
    """SHA-256(0x00 || entry || MAC, if any) of each row. A copy of a hash already fed
    the 0x00 costs less than joining the bytes and hashing them afresh (by 15-20%)."""
    new_leaf = _LEAF_PREFIX.copy
    hashes = []
    for row in rows:
        leaf = new_leaf()
        leaf.update(row[1])
        if row[-1] is not None:
            leaf.update(row[-1])
        hashes.append(leaf.digest())
    return hashes
