"""The job's queries: set-at-a-time, so a batch of a thousand subjects costs a handful of
statements. Candidates are locked `FOR UPDATE SKIP LOCKED` on PostgreSQL, so runners
(and RPCs holding a subject) never wait for each other or take the same subject; on
SQLite the write transaction (BEGIN IMMEDIATE) already serializes every writer.

Every batch leaves the candidate set it was drawn from (a noticed subject is no longer
in its old state, a closed notice no longer open), so "take the next `limit`" needs no
cursor, and a rerun after a crash simply finds what is left.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.storage.retention_tables import CANCELLED, OPEN, anonymized_records, notices, runs
from vault.storage.subjects import StoredFields, decode_fields
from vault.storage.tables import subjects
from vault.subject import SubjectState

_PENDING_STATE = SubjectState.PENDING_ANONYMIZATION
_PENDING = _PENDING_STATE.value
_STATES = {state.value: state for state in SubjectState}  # faster than SubjectState(value)


@dataclass(frozen=True)
class Dormant:
    """A subject found dormant: enough to notify it, nothing personal."""

    id: str
    state: str
    last_activity_at: int


@dataclass(frozen=True, slots=True)
class DueNotice:
    """An open notice whose deadline has passed and its subject's row as stored, flat:
    a batch reads thousands. `fields` holds only the sealed fields anonymization keeps,
    and only when they were read (not when a batch re-checks what it prepared)."""

    notice_id: str
    prior_state: str
    rule: str
    subject_id: str
    tenant: str
    version: int
    state: SubjectState
    legal_hold: bool
    kek_version: int | None
    wrapped_dek: bytes | None
    dek_id: int
    fields: StoredFields

    @property
    def anonymizable(self) -> bool:
        """Still pending anonymization, and no legal hold."""
        return self.state is _PENDING_STATE and not self.legal_hold


def _skip_locked(conn: Connection, query: sa.Select[Any], *of: sa.Table) -> sa.Select[Any]:
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=list(of) or None)
    return query


def tenants(conn: Connection) -> list[str]:
    """Every tenant with subjects (walks the tenant index once)."""
    return list(conn.execute(sa.select(subjects.c.tenant).distinct()).scalars())


def _dormant(tenant: str, states: Sequence[str], threshold_us: int, held: bool) -> Any:
    # (tenant, state, last_activity_at) is indexed: each batch is a short range scan.
    return sa.and_(
        subjects.c.tenant == tenant,
        subjects.c.state.in_(list(states)),
        subjects.c.last_activity_at <= threshold_us,
        subjects.c.legal_hold == (sa.true() if held else sa.false()),
    )


def lock_dormant(
    conn: Connection, tenant: str, states: Sequence[str], threshold_us: int, limit: int
) -> list[Dormant]:
    """Up to `limit` dormant subjects without a hold, locked for this transaction."""
    query = (
        sa.select(subjects.c.id, subjects.c.state, subjects.c.last_activity_at)
        .where(_dormant(tenant, states, threshold_us, held=False))
        .limit(limit)
    )
    return [Dormant(*r) for r in conn.execute(_skip_locked(conn, query))]


def count_dormant(
    conn: Connection, tenant: str, states: Sequence[str], threshold_us: int, *, held: bool
) -> int:
    query = sa.select(sa.func.count()).where(_dormant(tenant, states, threshold_us, held))
    return int(conn.execute(query).scalar_one())


def held_dormant_ids(
    conn: Connection, tenant: str, states: Sequence[str], threshold_us: int, limit: int
) -> list[str]:
    """Dormant subjects a legal hold keeps from their notice (for the report)."""
    query = (
        sa.select(subjects.c.id)
        .where(_dormant(tenant, states, threshold_us, held=True))
        .order_by(subjects.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def mark_pending(conn: Connection, ids: Sequence[str], states: Sequence[str]) -> int:
    result = conn.execute(
        subjects.update()
        .where(
            subjects.c.id.in_(list(ids)),
            subjects.c.state.in_(list(states)),
            subjects.c.legal_hold == sa.false(),
        )
        .values(state=_PENDING)
    )
    return int(result.rowcount)


def supersede_open(conn: Connection, subject_ids: Sequence[str], now_us: int) -> None:
    """Close notices left open for these subjects (one made pending again after another
    path moved it out, e.g. a restriction lifted), so each has at most one open notice."""
    # The status is compared through coalesce() so that no index on it can be chosen:
    # SQLite without statistics on the notices (a first run) would otherwise walk every
    # open notice through the due index for each batch, a run quadratic in its size.
    conn.execute(
        notices.update()
        .where(
            notices.c.subject_id.in_(list(subject_ids)),
            sa.func.coalesce(notices.c.status, "") == OPEN,
        )
        .values(status=CANCELLED, close_reason="superseded", closed_at=now_us)
    )


def insert_notices(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(notices.insert(), list(rows))


def _due(now_us: int, tenant: str | None) -> Any:
    where = sa.and_(notices.c.status == OPEN, notices.c.deadline_at <= now_us)
    return where if tenant is None else sa.and_(where, notices.c.tenant == tenant)


def _due_query(now_us: int, limit: int, with_fields: bool) -> sa.Select[Any]:
    fields = subjects.c.fields if with_fields else sa.null().label("fields")
    return (
        sa.select(notices.c.id, notices.c.prior_state, notices.c.rule, *_SUBJECT_COLUMNS, fields)
        .join(subjects, subjects.c.id == notices.c.subject_id)
        .where(_due(now_us, None))
        .order_by(notices.c.deadline_at)
        .limit(limit)
    )


def _due_notices(result: Iterable[Any], retained: Container[str]) -> list[DueNotice]:
    return [
        DueNotice(
            notice_id,
            prior_state,
            rule,
            subject_id,
            tenant,
            version,
            _STATES[state],
            bool(hold),
            kek_version,
            wrapped_dek,
            dek_id,
            decode_fields(blob, only=retained)
            if blob is not None and retained
            else StoredFields({}),
        )
        for (
            notice_id,
            prior_state,
            rule,
            subject_id,
            tenant,
            version,
            state,
            hold,
            kek_version,
            wrapped_dek,
            dek_id,
            blob,
        ) in result
    ]


def read_due(
    conn: Connection, now_us: int, limit: int, retained: Container[str], exclude: Sequence[str]
) -> list[DueNotice]:
    """Up to `limit` open notices past their deadline with their subjects, read without
    locks (a read transaction), leaving out the notices in `exclude` (a batch in
    flight): what the write transaction will lock and re-check (`lock_notices`)."""
    query = _due_query(now_us, limit, with_fields=True)
    if exclude:
        query = query.where(notices.c.id.not_in(list(exclude)))
    return _due_notices(conn.execute(query), retained)


def lock_notices(conn: Connection, notice_ids: Sequence[str], now_us: int) -> list[DueNotice]:
    """These notices, if still open and due, with their subjects as they are now (fields
    not read), locked for this transaction; notices another runner holds are left out."""
    query = _due_query(now_us, len(notice_ids), with_fields=False).where(
        notices.c.id.in_(list(notice_ids))
    )
    return _due_notices(conn.execute(_skip_locked(conn, query, notices, subjects)), ())


_SUBJECT_COLUMNS = (
    subjects.c.id,
    subjects.c.tenant,
    subjects.c.version,
    subjects.c.state,
    subjects.c.legal_hold,
    subjects.c.kek_version,
    subjects.c.wrapped_dek,
    subjects.c.dek_id,
)


def count_due(conn: Connection, now_us: int, tenant: str | None) -> int:
    """Due notices whose subject would be anonymized (pending, without a hold)."""
    query = (
        sa.select(sa.func.count())
        .select_from(notices.join(subjects, subjects.c.id == notices.c.subject_id))
        .where(
            _due(now_us, tenant), subjects.c.state == _PENDING, subjects.c.legal_hold == sa.false()
        )
    )
    return int(conn.execute(query).scalar_one())


def count_due_upto(conn: Connection, now_us: int, limit: int) -> int:
    """How many notices are due, counting no further than `limit`."""
    due = sa.select(notices.c.id).where(_due(now_us, None)).limit(limit).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(due)).scalar_one())


def insert_anonymized(conn: Connection, rows: Sequence[tuple[str, str, str, str]]) -> None:
    """(pseudonym, tenant, attributes, anonymized_on) rows, on the driver's bulk path:
    SQLAlchemy's multi-row VALUES compiled afresh for every batch cost more than all the
    other statements of the batch together."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_INSERT_ANONYMIZED.format(values="(?, ?, ?, ?)"), list(rows))
        return
    # One multi-row statement per chunk (psycopg would otherwise send one per row).
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        flat = tuple(value for row in chunk for value in row)
        conn.exec_driver_sql(_INSERT_ANONYMIZED.format(values=values), flat)


# Fixed column names and parameter markers only; every value is bound.
_INSERT_ANONYMIZED = (
    "INSERT INTO anonymized_records (pseudonym, tenant, attributes, anonymized_on) VALUES {values}"
)


def close_notices(
    conn: Connection, notice_ids: Sequence[str], status: str, reason: str, now_us: int
) -> None:
    if notice_ids:
        conn.execute(
            notices.update()
            .where(notices.c.id.in_(list(notice_ids)), notices.c.status == OPEN)
            .values(status=status, close_reason=reason, closed_at=now_us)
        )


def restore_state(conn: Connection, subject_id: str, state: str) -> None:
    conn.execute(
        subjects.update()
        .where(subjects.c.id == subject_id, subjects.c.state == _PENDING)
        .values(state=state)
    )


def count_cancelled(conn: Connection, after_us: int, until_us: int, tenant: str | None) -> int:
    """Notices cancelled (activity, hold, erasure) in (after, until]."""
    query = sa.select(sa.func.count()).where(
        notices.c.status == CANCELLED,
        notices.c.closed_at > after_us,
        notices.c.closed_at <= until_us,
    )
    if tenant is not None:
        query = query.where(notices.c.tenant == tenant)
    return int(conn.execute(query).scalar_one())


def group_sizes(conn: Connection, tenant: str | None) -> Iterator[int]:
    """The size of every (tenant, generalized attributes) group, streamed."""
    query = (
        sa.select(sa.func.count())
        .select_from(anonymized_records)
        .group_by(anonymized_records.c.tenant, anonymized_records.c.attributes)
    )
    if tenant is not None:
        query = query.where(anonymized_records.c.tenant == tenant)
    for (size,) in conn.execute(query):
        yield int(size)


def last_finished(conn: Connection) -> int:
    """When the last real run finished (0 before the first)."""
    value = conn.execute(sa.select(sa.func.max(runs.c.finished_at))).scalar_one()
    return int(value or 0)


def insert_run(
    conn: Connection, run_id: str, started_us: int, finished_us: int, report: str
) -> None:
    conn.execute(
        runs.insert().values(
            id=run_id, started_at=started_us, finished_at=finished_us, report=report
        )
    )
