"""Inserting entries in the caller's transaction: the one write path of the log.

`append_in` serves both ways of appending: a change calls it inside its own
transaction, and the group-commit writer inside the batch's. The database assigns ids;
leaf indexes come later from the integrator. Rows go in with the driver's own bulk
path where there is one (SQLAlchemy's generic multi-row RETURNING costs several times
more per row, and a busy group-commit writer holds the GIL while it runs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.db import begin_immediate, positional_marker
from audit.entry import AuditEntry
from audit.mac import EntryMac, entry_mac_for, leaf_data
from audit.merkle import leaf_hash
from audit.tables import entries as entries_table
from audit.tables import entry_subjects

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROW_COLUMNS = (
    "time_us",
    "actor",
    "tenant",
    "action",
    "decision",
    "purpose",
    "result_code",
    "entry",
    "leaf_hash",
    "mac",
)
_LINK_COLUMNS = ("subject_id", "tenant", "entry_id")
_LINK_INSERT = (
    "INSERT INTO audit_entry_subjects (subject_id, tenant, entry_id) "
    "VALUES ({marker}, {marker}, {marker})"
)
_LINK_COPY = "COPY audit_entry_subjects (subject_id, tenant, entry_id) FROM STDIN (FORMAT BINARY)"
_COLUMN_LIST = ", ".join(ROW_COLUMNS)
# Built from the fixed column names above and parameter markers; values are bound.
_SQLITE_INSERT = (
    f"INSERT INTO audit_entries ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})"  # noqa: S608
)
_SQLITE_COUNT = "SELECT count(*) FROM audit_entries WHERE id BETWEEN ? AND ?"
_SQLITE_LINK_INSERT = _LINK_INSERT.format(marker="?")
_PG_INSERT = (
    f"INSERT INTO audit_entries ({_COLUMN_LIST}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(ROW_COLUMNS))}) RETURNING id"
)
# Generic dialects: RETURNING without sort_by_parameter_order keeps true multi-row
# inserts; rows are matched back by leaf hash (byte-identical entries are
# interchangeable).
_GENERIC_INSERT = sa.insert(entries_table).returning(entries_table.c.id, entries_table.c.leaf_hash)

Row = tuple[Any, ...]


def epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch: exact, sortable, the same on every database."""
    if value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def entry_row(entry: AuditEntry, mac: EntryMac | None = None) -> Row:
    """The `audit_entries` values for an entry, in `ROW_COLUMNS` order (with `mac`, the
    entry's MAC, which its leaf hash then covers too)."""
    return with_mac(_plain_row(entry), mac)


def with_mac(row: Row, mac: EntryMac | None) -> Row:
    """A row from `encode` (no MAC yet) as appended under `mac`."""
    if mac is None:
        return row
    data = row[7]
    tag = mac.mac(data)
    return (*row[:8], leaf_hash(leaf_data(data, tag)), tag)


def query_columns(entry: AuditEntry) -> Row:
    """The entry's copies in the columns queries filter on (`ROW_COLUMNS[:7]`)."""
    return (
        epoch_us(entry.time),
        entry.actor,
        entry.tenant,
        entry.action,
        entry.decision,
        entry.purpose,
        entry.result_code,
    )


def _plain_row(entry: AuditEntry) -> Row:
    data = entry.canonical_bytes()
    return (*query_columns(entry), data, leaf_hash(data), None)


@dataclass(frozen=True, slots=True)
class EncodedEntry:
    """An entry made ready for `append_encoded_in`: its row (canonical bytes and leaf
    hash computed) and the subjects it links. Built by `encode`, possibly in another
    process than the one that appends it (nothing in it depends on the log's state or
    keys: the MAC, and the leaf hash over it, are added when it is appended)."""

    row: Row
    tenant: str
    subject_ids: tuple[str, ...]


def encode(entry: AuditEntry) -> EncodedEntry:
    """The entry's row and links, ready to append."""
    # A batch call may name a subject twice; one link row says the same.
    return EncodedEntry(_plain_row(entry), entry.tenant, tuple(dict.fromkeys(entry.subject_ids)))


def append_in(conn: Connection, entries: Iterable[AuditEntry]) -> list[int]:
    """Insert entries inside the caller's open transaction; returns their ids in order.

    Nothing is committed here: the entries become visible with the caller's commit and
    vanish with its rollback. Each subject an entry names gets one link row, which
    `query(subject_id=...)` and `subject_history` read.
    """
    return append_encoded_in(conn, [encode(entry) for entry in entries])


def append_encoded_in(conn: Connection, batch: Sequence[EncodedEntry]) -> list[int]:
    """`append_in` for entries already encoded (`encode`).

    With a MAC key bound to the connection's engine (`audit.use_entry_mac`), every
    entry gets its MAC here, whoever encoded it.
    """
    if not batch:
        return []
    rows = _rows(conn.engine, batch)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        ids = _insert_sqlite(conn, rows)
    elif dialect == "postgresql" and conn.dialect.driver == "psycopg":
        ids = _insert_psycopg(conn, rows)
    else:
        ids = _insert_generic(conn, rows)
    links = _links(ids, batch)
    if links:
        _insert_links(conn, links)
    return ids


def _rows(engine: Engine, batch: Sequence[EncodedEntry]) -> list[Row]:
    """The batch's rows as appended through `engine` (with its MAC key, if bound)."""
    mac = entry_mac_for(engine)
    return [with_mac(encoded.row, mac) for encoded in batch]


def _links(ids: Sequence[int], batch: Sequence[EncodedEntry]) -> list[Row]:
    """One (subject, tenant, entry id) link row per subject each entry names."""
    return [
        (subject_id, encoded.tenant, entry_id)
        for entry_id, encoded in zip(ids, batch, strict=True)
        for subject_id in encoded.subject_ids
    ]


def _insert_links(conn: Connection, links: list[Row]) -> None:
    marker = positional_marker(conn)
    if marker is None:
        conn.execute(
            sa.insert(entry_subjects),
            [dict(zip(_LINK_COLUMNS, link, strict=True)) for link in links],
        )
        return
    statement = _LINK_INSERT.format(marker=marker)
    copy = len(links) > 1 and conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"
    if copy:  # a batch's links as one COPY stream, not a statement per link
        statement = _LINK_COPY
    cursor = conn.connection.cursor()
    try:
        if copy:
            with cursor.copy(statement) as stream:
                stream.set_types(["text", "text", "int8"])
                for link in links:
                    stream.write_row(link)
        else:
            cursor.executemany(statement, links)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, cursor, exc, statement) from exc
    finally:
        cursor.close()


def _insert_sqlite(conn: Connection, rows: Sequence[Row]) -> list[int]:
    # The driver's cursor directly: SQLAlchemy's per-statement work cost more than
    # SQLite's own on this path (it runs once per read's audit batch).
    cursor = conn.connection.cursor()
    try:
        return _sqlite_rows(cursor, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, cursor, exc, _SQLITE_INSERT) from exc
    finally:
        cursor.close()


def _sqlite_rows(cursor: Any, rows: Sequence[Row]) -> list[int]:
    """Insert `rows` on a SQLite driver cursor inside its transaction; their ids."""
    if len(rows) == 1:
        cursor.execute(_SQLITE_INSERT, rows[0])
        return [int(cursor.lastrowid)]
    # The first insert takes the database's single write lock, held to commit, so
    # the rows get consecutive rowids ending at last_insert_rowid(). The count
    # confirms it (SQLite only strays from max+1 once rowids reach 2**63-1).
    cursor.executemany(_SQLITE_INSERT, rows)
    last = int(cursor.execute("SELECT last_insert_rowid()").fetchone()[0])
    first = last - len(rows) + 1
    found = cursor.execute(_SQLITE_COUNT, (first, last)).fetchone()[0]
    if found != len(rows):
        raise RuntimeError("audit entry ids are not consecutive")
    return list(range(first, last + 1))


def append_sqlite_committed(engine: Engine, entries: Sequence[AuditEntry]) -> list[int]:
    """`append_in` in a transaction of its own on a SQLite `engine`, committed, on the
    driver's connection (the group-commit writer's path: for a batch of one, SQLAlchemy's
    connection and transaction cost more than SQLite's insert and commit). Rolled back
    whole on any failure; a driver error is raised as SQLAlchemy raises its own."""
    batch = [encode(entry) for entry in entries]
    rows = _rows(engine, batch)
    pooled = engine.raw_connection()
    driver: Any = pooled.driver_connection
    statement = "BEGIN IMMEDIATE"
    try:
        cursor = driver.cursor()
        try:
            begin_immediate(cursor)
            statement = _SQLITE_INSERT
            ids = _sqlite_rows(cursor, rows)
            links = _links(ids, batch)
            if links:
                statement = _SQLITE_LINK_INSERT
                cursor.executemany(statement, links)
            statement = "COMMIT"
            cursor.execute(statement)
        except BaseException as exc:
            try:
                if driver.in_transaction:
                    driver.rollback()
            except Exception:  # noqa: BLE001 - never back into the pool half-done
                pooled.invalidate()
            if isinstance(exc, engine.dialect.loaded_dbapi.Error):
                raise sa.exc.DBAPIError.instance(
                    statement, None, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
                ) from exc
            raise
        finally:
            cursor.close()
    finally:
        pooled.close()
    return ids


def _insert_psycopg(conn: Connection, rows: Sequence[Row]) -> list[int]:
    # psycopg pipelines executemany and returns each row's id in order.
    cursor = conn.connection.cursor()
    try:
        if len(rows) == 1:
            cursor.execute(_PG_INSERT, rows[0])
            return [_returned_id(cursor)]
        # psycopg's own keyword, beyond the DB-API signature in SQLAlchemy's stubs
        cursor.executemany(_PG_INSERT, rows, returning=True)  # type: ignore[call-arg]
        ids = []
        while True:
            ids.append(_returned_id(cursor))
            if not cursor.nextset():
                return ids
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, cursor, exc, _PG_INSERT) from exc
    finally:
        cursor.close()


def _wrapped(conn: Connection, cursor: Any, exc: Any, statement: str) -> sa.exc.StatementError:
    """A driver error from the raw cursor as SQLAlchemy raises it for its own statements
    (`OperationalError`, `IntegrityError`, ...), so callers handle one kind of error; a
    lost connection is invalidated, so the pool does not hand it out again."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    wrapped: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        statement,
        None,
        exc,
        conn.dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )
    return wrapped


def _returned_id(cursor: Any) -> int:
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the database returned no id for an audit entry")
    return int(row[0])


def _insert_generic(conn: Connection, rows: Sequence[Row]) -> list[int]:
    params = [dict(zip(ROW_COLUMNS, row, strict=True)) for row in rows]
    ids_by_hash: dict[bytes, list[int]] = {}
    for entry_id, stored_hash in conn.execute(_GENERIC_INSERT, params):
        ids_by_hash.setdefault(bytes(stored_hash), []).append(entry_id)
    return [ids_by_hash[row[8]].pop() for row in rows]
