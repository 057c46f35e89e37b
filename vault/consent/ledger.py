"""The consent ledger: append-only events, and the state derived from them.

Nothing is cached. Every read of personal data derives the subject's consent from the
ledger inside its own read transaction, so a withdrawal committed by any server process
binds the very next read on every process. Derivation is a fold over the subject's
events in ledger order: per purpose (or opt-out marker) the latest event decides; a
grant counts until it expires. `state_at` replays only the events recorded up to a
past moment and evaluates expiry at that moment, so any past state can be rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.clock import from_micros, to_micros
from vault.consent.models import (
    Channel,
    ConsentAction,
    ConsentEvent,
    NewConsentEvent,
    SubjectConsent,
)
from vault.storage.consent_tables import consent_events, consent_receipts

EMPTY_VERSION = "0"
"""The consent version of a subject with no ledger events (the ledger was consulted)."""


def derive(events: Sequence[ConsentEvent], at: datetime) -> SubjectConsent:
    """The consent in force at `at`, from a subject's events in ledger order."""
    latest: dict[str, ConsentEvent] = {}
    for event in events:
        latest[event.purpose] = event
    consented = frozenset(
        name
        for name, event in latest.items()
        if event.action is ConsentAction.GRANT and event.in_force_at(at)
    )
    opted_out = frozenset(
        name for name, event in latest.items() if event.action is ConsentAction.WITHDRAW
    )
    version = str(events[-1].id) if events else EMPTY_VERSION
    return SubjectConsent(consented, opted_out, version)


def events_for(
    conn: Connection,
    subject_id: str,
    *,
    recorded_until: datetime | None = None,
    after: int = 0,
    limit: int | None = None,
) -> list[ConsentEvent]:
    """A subject's events in ledger order (only those recorded at or before a moment;
    only those after sequence `after`; at most `limit`)."""
    c = consent_events.c
    query = sa.select(consent_events).where(c.subject_id == subject_id, c.id > after)
    if recorded_until is not None:
        query = query.where(c.recorded_at <= to_micros(recorded_until))
    query = query.order_by(c.id)
    if limit is not None:
        query = query.limit(limit)
    return [_event(r._mapping) for r in conn.execute(query)]


def current(conn: Connection, subject_id: str, now: datetime) -> SubjectConsent:
    """The subject's consent now, read inside the caller's transaction."""
    return derive(events_for(conn, subject_id), now)


def current_from_rows(rows: Iterable[Mapping[str, Any]], now: datetime) -> SubjectConsent:
    """The consent now from a subject's ledger rows (column name -> value), in ledger
    order, read by the caller in the same transaction as the subject (the read path's
    one statement, `vault.storage.subject_reads`)."""
    return derive([_event(row) for row in rows], now)


def state_at(conn: Connection, subject_id: str, when: datetime) -> SubjectConsent:
    """The subject's consent as it stood at `when`, rebuilt from the ledger."""
    return derive(events_for(conn, subject_id, recorded_until=when), when)


def current_many(
    conn: Connection, subject_ids: Iterable[str], now: datetime
) -> dict[str, SubjectConsent]:
    """Consent now for many subjects in one query (find and export batches)."""
    ids = list(subject_ids)
    grouped: dict[str, list[ConsentEvent]] = {sid: [] for sid in ids}
    if ids:
        query = (
            sa.select(consent_events)
            .where(consent_events.c.subject_id.in_(ids))
            .order_by(consent_events.c.id)
        )
        for row in conn.execute(query):
            grouped[row.subject_id].append(_event(row._mapping))
    return {sid: derive(events, now) for sid, events in grouped.items()}


def position(conn: Connection) -> str:
    """The ledger's latest event id (what a whole-tenant export starts from)."""
    latest = conn.execute(sa.select(sa.func.max(consent_events.c.id))).scalar_one()
    return str(latest) if latest is not None else EMPTY_VERSION


def append(
    conn: Connection,
    events: Sequence[NewConsentEvent],
    *,
    tenant: str,
    subject_id: str,
    recorded_at: datetime,
    channel: Channel,
    notice_version: str,
    evidence_ref: str,
    jurisdiction: str,
    receipt_id: str,
    actor: str,
) -> list[ConsentEvent]:
    """Append events (one row each, ids in order) and return them as stored."""
    stored = []
    for new in events:
        values: dict[str, Any] = {
            "tenant": tenant,
            "subject_id": subject_id,
            "purpose": new.purpose,
            "action": new.action.value,
            "recorded_at": to_micros(recorded_at),
            "expires_at": to_micros(new.expires_at) if new.expires_at else None,
            "channel": channel.value,
            "notice_version": notice_version,
            "evidence_ref": evidence_ref or None,
            "jurisdiction": jurisdiction,
            "receipt_id": receipt_id,
            "actor": actor,
        }
        key = conn.execute(consent_events.insert().values(**values)).inserted_primary_key
        assert key is not None
        stored.append(_event({**values, "id": int(key[0])}))
    return stored


def receipt_events(conn: Connection, receipt_id: str) -> list[ConsentEvent]:
    """The events a receipt was issued for."""
    query = (
        sa.select(consent_events)
        .where(consent_events.c.receipt_id == receipt_id)
        .order_by(consent_events.c.id)
    )
    return [_event(r._mapping) for r in conn.execute(query)]


def insert_receipt(
    conn: Connection,
    receipt_id: str,
    *,
    tenant: str,
    subject_id: str,
    issued_at: datetime,
    document: str,
) -> None:
    conn.execute(
        consent_receipts.insert().values(
            receipt_id=receipt_id,
            tenant=tenant,
            subject_id=subject_id,
            issued_at=to_micros(issued_at),
            document=document,
        )
    )


def receipt_document(conn: Connection, receipt_id: str, subject_id: str) -> str | None:
    """The signed receipt, only if it was issued for `subject_id`."""
    query = sa.select(consent_receipts.c.document).where(
        consent_receipts.c.receipt_id == receipt_id,
        consent_receipts.c.subject_id == subject_id,
    )
    found: str | None = conn.execute(query).scalar_one_or_none()
    return found


def receipt_documents(conn: Connection, subject_id: str) -> list[str]:
    """Every receipt issued for a subject, oldest first."""
    query = (
        sa.select(consent_receipts.c.document)
        .where(consent_receipts.c.subject_id == subject_id)
        .order_by(consent_receipts.c.issued_at, consent_receipts.c.receipt_id)
    )
    return list(conn.execute(query).scalars())


def _event(row: Mapping[Any, Any]) -> ConsentEvent:
    expires = row["expires_at"]
    return ConsentEvent(
        id=int(row["id"]),
        tenant=row["tenant"],
        subject_id=row["subject_id"],
        purpose=row["purpose"],
        action=ConsentAction(row["action"]),
        recorded_at=from_micros(row["recorded_at"]),
        expires_at=from_micros(expires) if expires is not None else None,
        channel=Channel(row["channel"]),
        notice_version=row["notice_version"],
        evidence_ref=row["evidence_ref"] or "",
        jurisdiction=row["jurisdiction"],
        receipt_id=row["receipt_id"],
        actor=row["actor"],
    )
