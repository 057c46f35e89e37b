"""The read path's one statement: a subject row and its consent events, compiled once.

`GetSubject` used to read the subject and then its consent ledger, two Core statements
each built, cache-keyed and compiled per call, their rows typed and mapped. Here one
LEFT JOIN, compiled once per dialect, runs on the driver's cursor of the transaction's
connection and comes back as plain tuples (the columns it reads need no type
processing: strings, integers, bytes, and a boolean read with `bool`). A driver error
is raised as SQLAlchemy raises its own (`sqlalchemy.exc.DBAPIError` subclasses, a lost
connection invalidated), so `Database` translates it as before. The ledger's derivation
stays in `vault.consent.ledger` (it gets the events' columns by name).
"""

from __future__ import annotations

import threading
from collections import namedtuple
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.storage.consent_tables import consent_events
from vault.storage.subjects import SubjectRow, subject_row
from vault.storage.tables import subjects

EVENT_COLUMNS = tuple(column.name for column in consent_events.c)
_SUBJECT_COLUMNS = tuple(column.name for column in subjects.c)
_SubjectColumns = namedtuple("_SubjectColumns", _SUBJECT_COLUMNS)  # type: ignore[misc]
_EVENT_LABEL = "consent_"
_EVENT_ID = len(_SUBJECT_COLUMNS) + EVENT_COLUMNS.index("id")
_STATEMENT = (
    sa.select(
        *subjects.c,
        *(consent_events.c[name].label(_EVENT_LABEL + name) for name in EVENT_COLUMNS),
    )
    .select_from(subjects.outerjoin(consent_events, consent_events.c.subject_id == subjects.c.id))
    .where(subjects.c.id == sa.bindparam("subject_id"))
    .order_by(consent_events.c.id)
)
_compiled: dict[str, tuple[str, bool]] = {}
_lock = threading.Lock()


def subject_with_consent(
    conn: Connection, subject_id: str
) -> tuple[SubjectRow | None, list[dict[str, Any]]]:
    """The subject row (None if there is none) and its consent events in ledger order,
    each as a mapping of `consent_events` column names to values, in one statement."""
    sql, positional = _statement_for(conn)
    params: Any = (subject_id,) if positional else {"subject_id": subject_id}
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql, None, exc, conn.dialect.loaded_dbapi.Error,
            connection_invalidated=lost, dialect=conn.dialect,
        ) from exc  # fmt: skip
    finally:
        cursor.close()
    if not rows:
        return None, []
    start = len(_SUBJECT_COLUMNS)
    events = [
        dict(zip(EVENT_COLUMNS, row[start:], strict=True))
        for row in rows
        if row[_EVENT_ID] is not None
    ]
    return subject_row(_SubjectColumns(*rows[0][:start])), events


def _statement_for(conn: Connection) -> tuple[str, bool]:
    dialect = conn.dialect
    found = _compiled.get(dialect.name)
    if found is None:
        compiled = _STATEMENT.compile(dialect=dialect)
        found = (str(compiled), bool(compiled.positional))
        with _lock:
            _compiled[dialect.name] = found
    return found
