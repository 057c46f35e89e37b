"""Idempotency keys (AIP-155; migration 0006_idempotency_keys): what a mutating call with a
`request_id` answered, so a retry gets the same answer without a second effect.

A row is claimed (inserted without a response) at the start of the call's transaction
and completed with the response before that transaction commits, so the row and the
effect commit or roll back together. Two calls with one key serialize on the row's
primary key: on PostgreSQL the second INSERT waits for the first transaction and then
finds its row; on SQLite the write lock (BEGIN IMMEDIATE) orders them. A failed call
leaves no row: only successful responses are remembered.

Rows hold ids and the serialized response of a mutating RPC (subject metadata, receipts,
per-item results): never a personal value. They are pruned once older than the window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from vault.storage.tables import metadata

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(255), primary_key=True),
    # The full gRPC method name, e.g. /customervault.v1.VaultService/CreateSubject.
    sa.Column("method", sa.String(128), primary_key=True),
    # The caller's request_id (a UUID, lower-case).
    sa.Column("request_id", sa.String(36), primary_key=True),
    # SHA-256 (hex) of the request without its request_id: a retry must match it.
    sa.Column("request_hash", sa.String(64), nullable=False),
    # The first call's serialized response; NULL only inside the claiming transaction.
    sa.Column("response", sa.LargeBinary, nullable=True),
    # The first call's subjects (JSON list) and server request id, for the replay's
    # audit entry.
    sa.Column("subject_ids", sa.Text, nullable=False, server_default="[]"),
    sa.Column("call_request_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at"),
)


@dataclass(frozen=True)
class Key:
    """Who asked for what: a key is the caller's own, per method."""

    tenant: str
    principal: str
    method: str
    request_id: str
    request_hash: str


@dataclass(frozen=True)
class Remembered:
    """The stored outcome of the first call with a key."""

    request_hash: str
    response: bytes
    subject_ids: tuple[str, ...]
    call_request_id: str


def _where(key: Key) -> sa.ColumnElement[bool]:
    c = idempotency_keys.c
    return sa.and_(
        c.tenant == key.tenant,
        c.principal == key.principal,
        c.method == key.method,
        c.request_id == key.request_id,
    )


def claim(conn: Connection, key: Key, now_us: int) -> Remembered | None:
    """Insert the key's row inside `conn`'s transaction, or return the committed row of
    an earlier call with it (waiting for a concurrent one to commit or roll back)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(idempotency_keys)
        .values(
            tenant=key.tenant,
            principal=key.principal,
            method=key.method,
            request_id=key.request_id,
            request_hash=key.request_hash,
            created_at=now_us,
        )
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.created_at)
    )
    if conn.execute(statement).first() is not None:  # inserted: this call is the first
        return None
    c = idempotency_keys.c
    row = conn.execute(
        sa.select(c.request_hash, c.response, c.subject_ids, c.call_request_id).where(_where(key))
    ).one()
    return Remembered(
        row.request_hash,
        bytes(row.response or b""),
        tuple(json.loads(row.subject_ids)),
        row.call_request_id,
    )


def remember(
    conn: Connection,
    key: Key,
    response: bytes,
    *,
    subject_ids: list[str],
    call_request_id: str,
) -> None:
    """Complete the claimed row with the call's response (same transaction as the claim)."""
    conn.execute(
        idempotency_keys.update()
        .where(_where(key))
        .values(
            response=response,
            subject_ids=json.dumps(subject_ids),
            call_request_id=call_request_id,
        )
    )


PRUNE_BATCH = 5000
"""Keys deleted per prune transaction."""


def prune(conn: Connection, older_than_us: int, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` keys created before `older_than_us`; how many went."""
    c = idempotency_keys.c
    oldest = (
        sa.select(c.tenant, c.principal, c.method, c.request_id)
        .where(c.created_at < older_than_us)
        .order_by(c.created_at)
        .limit(limit)
    )
    rows = conn.execute(oldest).all()
    if not rows:
        return 0
    keys = sa.tuple_(c.tenant, c.principal, c.method, c.request_id)
    conn.execute(idempotency_keys.delete().where(keys.in_([tuple(r) for r in rows])))
    return len(rows)
