"""The verifier's hot loop: read stored leaves in large chunks and check each one.

Per leaf: its index continues the sequence, its stored leaf hash is the hash of its
stored bytes, and - unless switched off - its query columns and subject links say
what its bytes say. The columns and links are copies kept for indexed look-ups; a
copy edited alone would hide an entry from `query` or `subject_history` without
touching the tree, so they are checked against the hashed bytes too.

Rows are read through the DB-API cursor as plain tuples (SQLAlchemy's row objects
would cost a third of the verifier's time); the SQL is still compiled by SQLAlchemy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.append import ROW_COLUMNS, epoch_us
from audit.entry import AuditEntry, format_time
from audit.errors import InvalidEntryError
from audit.mac import EntryMac
from audit.tables import entries, entry_subjects

CHUNK = 1 << 16  # a power of two, so each chunk is a few whole perfect subtrees
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
# The indexed values as they must appear in the canonical JSON, built by the database
# (a SQL string expression per fragment; "{subjects}" is the entry's links in JSON).
# Keys are sorted and no JSON string can hold a bare `,"`: so the first `,"decision":`
# and the last `,"purpose":` / `,"result_code":` are the top-level keys (`extra`, the
# only object, lies between them and may reuse those names), and the entry model
# keeps every value below free of escapes.
_FRAGMENTS = (
    """'{{"action":"' || audit_entries.action || '","actor":"' || audit_entries.actor"""
    """ || '","actor_roles":['""",
    """',"decision":"' || audit_entries.decision || '","extra":{{'""",
    """',"purpose":"' || audit_entries.purpose || '","reason":"'""",
    """',"result_code":"' || audit_entries.result_code || '","subject_ids":[' || {subjects}"""
    """ || '],"tenant":"' || audit_entries.tenant || '","time":"'""",
)
_DECISION_AT = b',"decision":"'
_PURPOSE_AT = b',"purpose":"'
_RESULT_CODE_AT = b',"result_code":"'
_SUBJECTS = (
    """coalesce('"' || (SELECT {aggregate}(s.subject_id, '","') FROM audit_entry_subjects AS s"""
    """ WHERE s.entry_id = audit_entries.id) || '"', '')"""
)
_DIALECTS = {
    "sqlite": ("group_concat", "CAST({} AS BLOB)"),
    "postgresql": ("string_agg", "convert_to({}, 'UTF8')"),
}


def _leaves_and_index(dialect: str) -> sa.Select[Any]:
    aggregate, as_bytes = _DIALECTS[dialect]
    subjects = _SUBJECTS.format(aggregate=aggregate)
    fragments = [as_bytes.format(sql.format(subjects=subjects)) for sql in _FRAGMENTS]
    return _LEAVES.add_columns(
        *(sa.literal_column(sql) for sql in fragments), entries.c.time_us, entries.c.id, _MAC
    )


def supports_index_check(dialect: str) -> bool:
    """True where `LeafReader(with_index=True)` can run (SQLite and PostgreSQL)."""
    return dialect in _DIALECTS


IndexLookup = Callable[[int], tuple[Sequence[Any], list[str]]]
"""An entry id -> its query columns and its linked subjects (`LeafReader.index`)."""


@dataclass(frozen=True)
class LeafProblem:
    """What is wrong with the leaf at `position`."""

    problem: str
    position: int


class LeafReader:
    """Reads leaf rows, with or without their index fragments, on one connection."""

    def __init__(self, conn: Connection, *, with_index: bool) -> None:
        self.with_index = with_index
        statement = (
            _leaves_and_index(conn.dialect.name) if with_index else _LEAVES.add_columns(_MAC)
        )
        self._leaves = _compiled(conn, statement)
        self._columns = _compiled(conn, _COLUMNS)
        self._links = _compiled(conn, _LINKS)
        self._cursor = conn.connection.cursor()

    def close(self) -> None:
        self._cursor.close()

    def __call__(self, low: int, high: int) -> list[Any]:
        """Leaves [low, high) as plain tuples, in leaf order."""
        return self._fetch(self._leaves, low=low, high=high)

    def chunks(self, start: int) -> Generator[tuple[int, list[Any]], None, None]:
        """(low, leaves [low, low + CHUNK)) from `start` on, endlessly."""
        low = start
        while True:
            yield low, self(low, low + CHUNK)
            low += CHUNK

    def index(self, entry_id: int) -> tuple[Sequence[Any], list[str]]:
        """One entry's query columns (in `ROW_COLUMNS` order) and linked subjects."""
        (columns,) = self._fetch(self._columns, entry_id=entry_id)
        links = self._fetch(self._links, entry_id=entry_id)
        return columns, [row[0] for row in links]

    def _fetch(self, compiled: tuple[str, Sequence[str] | None], **values: int) -> list[Any]:
        sql, order = compiled
        params: Any = values if order is None else [values[k] for k in order]
        self._cursor.execute(sql, params)
        return list(self._cursor.fetchall())


def _compiled(conn: Connection, statement: sa.Select[Any]) -> tuple[str, Sequence[str] | None]:
    compiled = statement.compile(dialect=conn.dialect)
    return str(compiled), compiled.positiontup if compiled.positional else None


class MacCheck:
    """Checks entry MACs chunk by chunk: every entry from the first one with a MAC on
    must carry a valid one; the entries before it are legacy (written before MACs)."""

    def __init__(self, mac: EntryMac) -> None:
        self._mac = mac
        self.legacy = 0  # leaves before the first leaf with a MAC
        self.checked = 0  # leaves whose MAC verified
        self.started = False

    def problem(self, position: int, rows: Sequence[Any]) -> LeafProblem | None:
        """The first leaf of `rows` (leaves from `position` on) whose MAC fails."""
        for offset, row in enumerate(rows):
            tag = row[-1]
            if tag is None and not self.started:
                self.legacy += 1
                continue
            self.started = True
            if tag is None:
                return LeafProblem(
                    "entry has no MAC (later than entries with one)", position + offset
                )
            if not self._mac.is_valid(row[1], bytes(tag)):
                return LeafProblem("entry MAC does not verify", position + offset)
            self.checked += 1
        return None


def check_leaves(
    position: int, rows: Sequence[Any], index: IndexLookup | None, macs: MacCheck | None = None
) -> tuple[list[bytes], LeafProblem | None]:
    """The leaf hashes of `rows` recomputed from their bytes, and their first problem.

    `rows` are the leaves from `position` on, in leaf order, as `LeafReader` reads them;
    with `index` (`LeafReader.index`) their query columns and links are checked too, and
    with `macs` their MACs.
    """
    # The hot loop: comprehensions and C-level list and tuple comparisons.
    sha256 = hashlib.sha256
    hashes = [
        sha256(b"\x00" + row[1] if row[-1] is None else b"\x00" + row[1] + row[-1]).digest()
        for row in rows
    ]
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
    if index is not None:
        problems.extend(_index_problems(rows, index))
    if macs is not None and (found := macs.problem(position, rows)) is not None:
        problems.append(found)
    return hashes, min(problems, key=lambda found: found.position, default=None)


def _index_problems(rows: Sequence[Any], lookup: IndexLookup) -> list[LeafProblem]:
    times = _TimeFormatter().of_all([row[7] for row in rows])
    suspects = [
        row
        for row, time in zip(rows, times, strict=True)
        if not (
            (blob := row[1]).startswith(row[3])
            and blob.startswith(row[4], blob.find(_DECISION_AT))
            and blob.startswith(row[5], blob.rfind(_PURPOSE_AT))
            and blob.startswith(row[6] + time, blob.rfind(_RESULT_CODE_AT))
        )
    ]
    for row in suspects:
        # The fast check is exact but for link order and duplicates: look closer.
        problem = _index_problem(row[1], *lookup(row[8]))
        if problem is not None:
            return [LeafProblem(problem, row[0])]
    return []


def _index_problem(blob: bytes, columns: Sequence[Any], subjects: Sequence[str]) -> str | None:
    """The slow, exact comparison of one entry's bytes with its stored copies."""
    try:
        entry = AuditEntry.from_canonical(blob)
    except InvalidEntryError:
        return "entry is not a canonical entry"
    expected = (
        epoch_us(entry.time),
        entry.actor,
        entry.tenant,
        entry.action,
        entry.decision,
        entry.purpose,
        entry.result_code,
    )
    if tuple(columns) != expected:
        return "entry's query columns do not match its content"
    if sorted(subjects) != sorted(set(entry.subject_ids)):
        return "entry's subject links do not match its content"
    return None


class _TimeFormatter:
    """`format_time` of epoch microseconds as bytes, the date and time cached per second."""

    def __init__(self) -> None:
        self._seconds: dict[int, bytes] = {}

    def __call__(self, time_us: int) -> bytes:
        return self.of_all([time_us])[0]

    def of_all(self, times_us: Sequence[int]) -> list[bytes]:
        """`format_time` of each, as bytes: one C-level divmod and one bytes format per
        time, the seconds' prefix looked up (and built once per distinct second)."""
        prefixes = self._seconds
        missing = self._prefix
        return [
            b"%b.%06dZ" % (prefixes.get(seconds) or missing(seconds), micros)
            for seconds, micros in map(divmod, times_us, repeat(1_000_000))
        ]

    def _prefix(self, seconds: int) -> bytes:
        prefix = format_time(_EPOCH + timedelta(seconds=seconds))[:19].encode()
        self._seconds[seconds] = prefix
        return prefix
