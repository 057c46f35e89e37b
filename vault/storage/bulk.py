"""Bulk inserts on the driver's cursor: the batch-create hot path.

SQLAlchemy Core's per-row parameter processing cost more than SQLite's insert itself
on batch create, and psycopg binds and sends one statement per row even pipelined.
Here rows of one shape go to SQLite as one `executemany` and to PostgreSQL as one
binary `COPY`, on the transaction's own connection. Columns a row leaves out take
their scalar Core default, as `table.insert()` would give them; a driver error is
raised as SQLAlchemy raises its own (a lost connection invalidated), so callers and
`Database` handle it as before. Rows of different shapes, a driver without a
positional marker or a column type COPY is not taught go through Core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# The PostgreSQL type each column type is copied as (binary COPY needs them exact;
# varchar takes text's binary form).
_COPY_TYPES = {
    sa.String: "text",
    sa.BigInteger: "int8",
    sa.Integer: "int4",
    sa.Boolean: "bool",
    sa.LargeBinary: "bytea",
}


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (column name -> value) into `table` in one driver call."""
    if not rows:
        return
    marker = _MARKERS.get(conn.dialect.paramstyle)
    names = tuple(rows[0])
    if marker is None or any(tuple(row) != names for row in rows):
        conn.execute(table.insert(), list(rows))
        return
    defaults = {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.c
        if column.name not in names and column.default is not None and column.default.is_scalar
    }
    columns = [*names, *defaults]
    extra = tuple(defaults.values())
    params = [(*row.values(), *extra) for row in rows]
    if conn.dialect.name == "postgresql":
        types = [_COPY_TYPES.get(type(table.c[name].type)) for name in columns]
        if None in types:
            conn.execute(table.insert(), list(rows))
            return
        # Built from the table's own column names; the values travel as COPY data.
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        _on_cursor(conn, statement, lambda cursor: _copy(cursor, statement, types, params))
        return
    # Built from the table's own column names and the driver's marker; values are bound.
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    _on_cursor(conn, statement, lambda cursor: cursor.executemany(statement, params))


def _copy(cursor: Any, statement: str, types: list[Any], params: list[tuple[Any, ...]]) -> None:
    with cursor.copy(statement) as copy:
        copy.set_types(types)
        for values in params:
            copy.write_row(values)


def _on_cursor(conn: Connection, statement: str, work: Callable[[Any], object]) -> None:
    cursor = conn.connection.cursor()
    try:
        work(cursor)
    except conn.dialect.loaded_dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, conn.dialect.loaded_dbapi.Error,
            connection_invalidated=lost, dialect=conn.dialect,
        ) from exc  # fmt: skip
    finally:
        cursor.close()
