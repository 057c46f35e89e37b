"""Single-row reads and writes of retention notices and legal holds, for the retention
RPCs and for the record service (activity and erasure close a subject's open notice in
their own transaction)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.storage.retention_tables import CANCELLED, OPEN, legal_holds, notices
from vault.storage.tables import subjects
from vault.subject import SubjectState


@dataclass(frozen=True)
class Notice:
    """What the e-mailing service needs: which subject, and until when it may act."""

    id: str
    tenant: str
    subject_id: str
    status: str
    created_at: int
    deadline_at: int
    acknowledged_at: int | None
    acknowledged_by: str | None


@dataclass(frozen=True)
class LegalHold:
    """A hold in force (the history of holds is in the audit log)."""

    subject_id: str
    tenant: str
    reason: str
    set_by: str
    set_at: int


_HOLD_COLUMNS = (
    legal_holds.c.subject_id,
    legal_holds.c.tenant,
    legal_holds.c.reason,
    legal_holds.c.set_by,
    legal_holds.c.set_at,
)
_NOTICE_COLUMNS = (
    notices.c.id,
    notices.c.tenant,
    notices.c.subject_id,
    notices.c.status,
    notices.c.created_at,
    notices.c.deadline_at,
    notices.c.acknowledged_at,
    notices.c.acknowledged_by,
)


def cancel_open(conn: Connection, subject_id: str, now_us: int, reason: str) -> SubjectState | None:
    """Cancel the subject's open notice; the state it had before its notice, or None
    when it had no open notice."""
    found = conn.execute(
        sa.select(notices.c.id, notices.c.prior_state).where(
            notices.c.subject_id == subject_id, notices.c.status == OPEN
        )
    ).first()
    if found is None:
        return None
    conn.execute(
        notices.update()
        .where(notices.c.id == found.id)
        .values(status=CANCELLED, close_reason=reason, closed_at=now_us)
    )
    return SubjectState(found.prior_state)


def get(conn: Connection, notice_id: str, *, for_update: bool = False) -> Notice | None:
    query = sa.select(*_NOTICE_COLUMNS).where(notices.c.id == notice_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).first()
    return Notice(*found) if found is not None else None


def open_for(conn: Connection, subject_id: str) -> Notice | None:
    """The subject's open notice (at most one is open per subject), or None."""
    query = sa.select(*_NOTICE_COLUMNS).where(
        notices.c.subject_id == subject_id, notices.c.status == OPEN
    )
    found = conn.execute(query).first()
    return Notice(*found) if found is not None else None


def list_open(
    conn: Connection,
    tenant: str,
    *,
    after: tuple[int, str] | None,
    limit: int,
    include_acknowledged: bool,
) -> list[Notice]:
    """Open notices of a tenant, earliest deadline first, after the (deadline, id) key
    `after` (keyset paging)."""
    # A notice stays open until the next run when its subject was restricted or erased
    # by another path meanwhile; those are not for mailing.
    query = (
        sa.select(*_NOTICE_COLUMNS)
        .join(subjects, subjects.c.id == notices.c.subject_id)
        .where(
            notices.c.tenant == tenant,
            notices.c.status == OPEN,
            subjects.c.state == SubjectState.PENDING_ANONYMIZATION.value,
        )
        .order_by(notices.c.deadline_at, notices.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(sa.tuple_(notices.c.deadline_at, notices.c.id) > after)
    if not include_acknowledged:
        query = query.where(notices.c.acknowledged_at.is_(None))
    return [Notice(*r) for r in conn.execute(query)]


def acknowledge(conn: Connection, notice_id: str, by: str, now_us: int) -> None:
    conn.execute(
        notices.update()
        .where(notices.c.id == notice_id, notices.c.acknowledged_at.is_(None))
        .values(acknowledged_at=now_us, acknowledged_by=by)
    )


def put_hold(conn: Connection, hold: LegalHold) -> None:
    """Insert the hold, or replace the reason of the one in force."""
    conn.execute(legal_holds.delete().where(legal_holds.c.subject_id == hold.subject_id))
    conn.execute(
        legal_holds.insert().values(
            subject_id=hold.subject_id,
            tenant=hold.tenant,
            reason=hold.reason,
            set_by=hold.set_by,
            set_at=hold.set_at,
        )
    )


def delete_hold(conn: Connection, subject_id: str) -> None:
    conn.execute(legal_holds.delete().where(legal_holds.c.subject_id == subject_id))


def list_holds(conn: Connection, tenant: str, *, after: str, limit: int) -> list[LegalHold]:
    query = (
        sa.select(*_HOLD_COLUMNS)
        .where(legal_holds.c.tenant == tenant, legal_holds.c.subject_id > after)
        .order_by(legal_holds.c.subject_id)
        .limit(limit)
    )
    return [LegalHold(*r) for r in conn.execute(query)]
