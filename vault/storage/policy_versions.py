"""Every policy the vault ever put in force, kept by its content version (migration
policy_versions).

A row holds the four policy files as they were read, the data dictionary's fields
(name, type and sensitivity class: what a view plan depends on) and when the version
was first and last served. The version is the content hash audit entries cite, so any
past entry can be decided again by the very policy that decided it. Rows are only
added, and their `last_served_us` moved forward; several processes recording the same
version at once end with one row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.clock import from_micros, to_micros
from vault.storage.tables import metadata

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("version", sa.String(16), primary_key=True),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("first_served_us", sa.BigInteger, nullable=False),
    sa.Column("last_served_us", sa.BigInteger, nullable=False),
)

FieldClasses = tuple[tuple[str, str, str], ...]
"""(name, type, sensitivity class) of each data-dictionary field, in dictionary order."""


@dataclass(frozen=True)
class StoredVersion:
    """One kept policy version."""

    version: str
    files: Mapping[str, str]
    fields: FieldClasses
    first_served: datetime
    last_served: datetime


def record_served(
    conn: Connection,
    version: str,
    files: Mapping[str, str],
    fields: FieldClasses,
    now: datetime,
) -> None:
    """Keep `version` (once) and mark it served at `now`."""
    at = to_micros(now)
    table = policy_versions
    updated = conn.execute(
        table.update()
        .where(table.c.version == version, table.c.last_served_us < at)
        .values(last_served_us=at)
    ).rowcount
    if updated:
        return
    exists = conn.execute(sa.select(table.c.version).where(table.c.version == version)).first()
    if exists is not None:
        return
    conn.execute(
        table.insert().values(
            version=version,
            files=json.dumps(dict(files), sort_keys=True),
            fields=json.dumps([list(f) for f in fields]),
            first_served_us=at,
            last_served_us=at,
        )
    )


def get(conn: Connection, version: str) -> StoredVersion | None:
    """The kept version, or None when this vault never served it."""
    row = conn.execute(
        sa.select(policy_versions).where(policy_versions.c.version == version)
    ).first()
    return None if row is None else _stored(row._mapping)


def listing(
    conn: Connection, limit: int = 100, after: tuple[int, str] | None = None
) -> list[StoredVersion]:
    """The kept versions, most recently served first (only those after the position
    `after`, a (last served, version) pair, for the next page)."""
    c = policy_versions.c
    query = sa.select(policy_versions).order_by(c.last_served_us.desc(), c.version).limit(limit)
    if after is not None:
        served, version = after
        query = query.where(
            sa.or_(
                c.last_served_us < served,
                sa.and_(c.last_served_us == served, c.version > version),
            )
        )
    return [_stored(row._mapping) for row in conn.execute(query)]


def _stored(row: Mapping[Any, Any]) -> StoredVersion:
    files = json.loads(str(row["files"]))
    fields = tuple((str(n), str(t), str(c)) for n, t, c in json.loads(str(row["fields"])))
    return StoredVersion(
        version=str(row["version"]),
        files={str(k): str(v) for k, v in files.items()},
        fields=fields,
        first_served=from_micros(int(row["first_served_us"])),
        last_served=from_micros(int(row["last_served_us"])),
    )
