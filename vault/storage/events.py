"""The transactional outbox (migration `outbox_events`): events for the organization's
systems, written in the same transaction as the change they report.

`record_event` inserts a row with no sequence number. Rows commit in any order across
processes, so a number taken at insert time could become visible after a higher one a
reader has already passed. Instead `sequence_pending` numbers the committed rows that
have none, under one lock at a time (PostgreSQL: an advisory transaction lock; SQLite:
the single writer lock), continuing after the highest number given: the numbered rows
are always a gap-free prefix, so a reader that resumes after the last number it saw
never misses one (Trillian's sequencer/integrator split, as in `audit/`).

`prune` drops events older than the retention window, a batch per transaction, but
always keeps the highest numbered one, so numbering continues after it across restarts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.event_kinds import EventKind, check_facts
from vault.storage.tables import metadata

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LOCK_KEY = 0x4556_4E54  # "EVNT": an arbitrary, fixed advisory-lock key
SEQUENCE_BATCH = 5000
PRUNE_BATCH = 5000

events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    # Dense, increasing, assigned after commit by `sequence_pending`; NULL until then.
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("occurred_at", sa.BigInteger, nullable=False),
    # JSON object of checked, non-personal facts (vault.event_kinds.check_facts).
    sa.Column("facts", sa.Text, nullable=False),
    sa.Index("ux_outbox_events_seq", "seq", unique=True),
    sa.Index("ix_outbox_events_tenant_seq", "tenant", "seq"),
    sa.Index("ix_outbox_events_occurred", "occurred_at"),
)


@dataclass(frozen=True)
class StoredEvent:
    """One numbered event, as a reader gets it."""

    sequence: int
    tenant: str
    subject_id: str
    kind: EventKind
    occurred_at: int
    facts: dict[str, str]


def record_event(
    conn: Connection,
    *,
    tenant: str,
    subject_id: str,
    kind: EventKind,
    occurred_at: int,
    facts: Mapping[str, str] | None = None,
) -> None:
    """Add an event in the caller's transaction: it is published if and only if the
    transaction commits. `facts` must pass `check_facts` (ValueError otherwise, naming
    the key only)."""
    record_events(conn, [(tenant, subject_id, kind, occurred_at, facts or {})])


def record_events(
    conn: Connection,
    rows: Sequence[tuple[str, str, EventKind, int, Mapping[str, str]]],
) -> None:
    """`record_event` for many (tenant, subject id, kind, time in µs, facts) at once."""
    if not rows:
        return
    values = [
        {
            "tenant": tenant,
            "subject_id": subject_id,
            "kind": EventKind(kind).value,
            "occurred_at": occurred_at,
            "facts": json.dumps(check_facts(facts), sort_keys=True, separators=(",", ":")),
        }
        for tenant, subject_id, kind, occurred_at, facts in rows
    ]
    conn.execute(events.insert(), values)


def has_pending(conn: Connection) -> bool:
    """Whether a committed event waits for its number (a read: no lock)."""
    c = events.c
    return conn.execute(sa.select(c.id).where(c.seq.is_(None)).limit(1)).first() is not None


def sequence_pending(conn: Connection, *, limit: int = SEQUENCE_BATCH) -> int:
    """Number up to `limit` committed, unnumbered events, in id order, after the
    highest number given; how many. Call in a write transaction of its own (on
    PostgreSQL under READ COMMITTED, the vault's default, so it sees what earlier
    lock holders committed)."""
    c = events.c
    pending_query = sa.select(c.id).where(c.seq.is_(None)).order_by(c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    pending = [row.id for row in conn.execute(pending_query)]
    if not pending:
        return 0
    highest = conn.execute(sa.select(sa.func.max(c.seq))).scalar() or 0
    conn.execute(
        events.update().where(c.id == sa.bindparam("row_id")).values(seq=sa.bindparam("new_seq")),
        [{"row_id": row_id, "new_seq": highest + n} for n, row_id in enumerate(pending, 1)],
    )
    return len(pending)


def page(
    conn: Connection,
    tenant: str,
    *,
    after: int,
    limit: int,
    kinds: Sequence[EventKind] = (),
) -> list[StoredEvent]:
    """The tenant's numbered events after sequence `after`, lowest first."""
    c = events.c
    query = (
        sa.select(c.seq, c.tenant, c.subject_id, c.kind, c.occurred_at, c.facts)
        .where(c.tenant == tenant, c.seq.is_not(None), c.seq > after)
        .order_by(c.seq)
        .limit(limit)
    )
    if kinds:
        query = query.where(c.kind.in_([k.value for k in kinds]))
    return [
        StoredEvent(
            r.seq, r.tenant, r.subject_id, EventKind(r.kind), r.occurred_at, _facts(r.facts)
        )
        for r in conn.execute(query)
    ]


def highest_sequence(conn: Connection) -> int:
    """The highest number given (0 when none)."""
    return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)


def oldest_sequence(conn: Connection) -> int:
    """The lowest number still stored (0 when none): a reader whose position is below
    it minus one has missed events the retention window removed."""
    return int(conn.execute(sa.select(sa.func.min(events.c.seq))).scalar() or 0)


def prune(conn: Connection, before_us: int, *, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` numbered events older than `before_us`, lowest numbers
    first, never the highest numbered one; how many (`limit`: call again)."""
    c = events.c
    highest = sa.select(sa.func.max(c.seq)).scalar_subquery()
    doomed = (
        sa.select(c.id)
        .where(c.occurred_at < before_us, c.seq.is_not(None), c.seq < highest)
        .order_by(c.seq)
        .limit(limit)
    )
    ids = list(conn.execute(doomed).scalars())
    if ids:
        conn.execute(events.delete().where(c.id.in_(ids)))
    return len(ids)


def _facts(text: str) -> dict[str, str]:
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()}
