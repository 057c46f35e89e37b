"""Data-subject requests (migration `subject_requests`): one row per request.

A row holds ids, names, states and times only. A rectification's proposed values are
sealed under the subject's own data key (`RecordCipher.seal_proposal`), so an erasure
shreds them with everything else. State changes are conditional UPDATEs on the state
the caller read, so of two concurrent decisions exactly one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.storage.tables import metadata

subject_requests = sa.Table(
    "subject_requests",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column(
        "subject_id",
        sa.String(40),
        sa.ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("jurisdiction", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("deadline_at", sa.BigInteger, nullable=False),
    sa.Column("verified_at", sa.BigInteger, nullable=True),
    sa.Column("decided_at", sa.BigInteger, nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("proposed", sa.LargeBinary, nullable=True),
    # The names of the fields a rectification proposes to change (never their values).
    sa.Column("proposed_fields", sa.String(1000), nullable=True),
    sa.Column("verification_failures", sa.Integer, nullable=False, default=0),
    sa.Index("ix_subject_requests_queue", "tenant", "state", "deadline_at"),
    sa.Index("ix_subject_requests_subject", "subject_id", "created_at"),
)


@dataclass(frozen=True)
class RequestRow:
    """One stored request, as read."""

    id: str
    tenant: str
    subject_id: str
    kind: str
    state: str
    jurisdiction: str
    created_by: str
    created_at: int
    deadline_at: int
    verified_at: int | None
    decided_at: int | None
    decided_by: str | None
    decision_reason: str | None
    proposed: bytes | None
    verification_failures: int
    proposed_fields: str | None = None


def _row(mapping: Any) -> RequestRow:
    m = dict(mapping)
    m["proposed"] = bytes(m["proposed"]) if m["proposed"] is not None else None
    m["verification_failures"] = m["verification_failures"] or 0
    return RequestRow(**m)


def insert(conn: Connection, row: RequestRow) -> None:
    conn.execute(subject_requests.insert().values(**row.__dict__))


def get(conn: Connection, request_id: str, *, for_update: bool = False) -> RequestRow | None:
    query = sa.select(subject_requests).where(subject_requests.c.id == request_id)
    if for_update:
        query = query.with_for_update()
    found = conn.execute(query).mappings().first()
    return _row(found) if found is not None else None


def for_subject(
    conn: Connection,
    subject_id: str,
    limit: int = 100,
    *,
    before: tuple[int, str] | None = None,
) -> list[RequestRow]:
    """The subject's requests, newest first, from the cursor `before` = (created_at, id)
    of the last row of the previous page."""
    c = subject_requests.c
    query = sa.select(subject_requests).where(c.subject_id == subject_id)
    if before is not None:
        created, last_id = before
        query = query.where(
            sa.or_(c.created_at < created, sa.and_(c.created_at == created, c.id < last_id))
        )
    query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
    return [_row(m) for m in conn.execute(query).mappings()]


def queue(
    conn: Connection,
    tenant: str,
    states: Sequence[str],
    *,
    after: tuple[int, str] | None,
    limit: int,
) -> list[RequestRow]:
    """A tenant's requests in `states`, the nearest deadline first, from the cursor
    `after` = (deadline_at, id) of the last row of the previous page."""
    c = subject_requests.c
    query = sa.select(subject_requests).where(c.tenant == tenant, c.state.in_(list(states)))
    if after is not None:
        deadline, last_id = after
        query = query.where(
            sa.or_(c.deadline_at > deadline, sa.and_(c.deadline_at == deadline, c.id > last_id))
        )
    query = query.order_by(c.deadline_at, c.id).limit(limit)
    return [_row(m) for m in conn.execute(query).mappings()]


def overdue(conn: Connection, state: str, now_us: int, *, limit: int) -> list[RequestRow]:
    """Requests in `state` whose deadline is before `now_us`, the oldest deadline first
    (every tenant's: the vault's own background work asks)."""
    c = subject_requests.c
    query = (
        sa.select(subject_requests)
        .where(c.state == state, c.deadline_at < now_us)
        .order_by(c.deadline_at, c.id)
        .limit(limit)
    )
    return [_row(m) for m in conn.execute(query).mappings()]


def move(conn: Connection, request_id: str, from_state: str, changes: dict[str, Any]) -> bool:
    """Apply `changes` if the request is still in `from_state`; False otherwise."""
    c = subject_requests.c
    result = conn.execute(
        subject_requests.update().where(c.id == request_id, c.state == from_state).values(**changes)
    )
    return result.rowcount == 1


def count_failure(conn: Connection, request_id: str) -> None:
    """One more wrong verification code."""
    c = subject_requests.c
    conn.execute(
        subject_requests.update()
        .where(c.id == request_id)
        .values(verification_failures=c.verification_failures + 1)
    )
