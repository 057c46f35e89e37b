"""One batch of the retention job, in one transaction: the state changes and one audit
entry per subject commit together or not at all.

Notice batches move dormant subjects to pending_anonymization and record their notices;
anonymization batches take due notices, keep the generalized attributes (read while the
data key still exists), then crypto-shred, drop blind indexes and tokens, and close the
notices. A due notice whose subject may no longer be anonymized (a hold, a state change
by another path) is cancelled instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.engine import Connection

import audit
from vault.auditing import Auditor
from vault.clock import from_micros, to_micros
from vault.context import CallContext
from vault.errors import VersionConflictError
from vault.principal import Principal
from vault.records.models import SubjectState
from vault.retention import store
from vault.retention.anonymizer import Anonymizer, encode_attributes, new_pseudonym
from vault.retention.notices import new_notice_id
from vault.retention.rules import RetentionRule
from vault.retention.tables import CANCELLED, COMPLETED, OPEN
from vault.storage.db import Database
from vault.storage.subjects import SubjectRow

JOB_PRINCIPAL = "retention-job"
_SYSTEM_ROLES = frozenset({"system"})
_PENDING = SubjectState.PENDING_ANONYMIZATION
# Pseudonymous records are shuffled so their order in a batch says nothing of the subjects'.
_shuffle = random.SystemRandom().shuffle


@dataclass(frozen=True)
class AnonymizeOutcome:
    """What one anonymization batch did (0 notices: nothing was due)."""

    notices: int
    anonymized: int
    without_attributes: int


class Batches:
    """Runs single batches; `RetentionJob` loops over them."""

    def __init__(
        self,
        *,
        db: Database,
        anonymizer: Anonymizer,
        auditor: Auditor,
        rules_version: str,
        batch_size: int,
    ) -> None:
        self._db = db
        self._anonymizer = anonymizer
        self._auditor = auditor
        self._rules_version = rules_version
        self._batch_size = batch_size
        self._principals: dict[str, Principal] = {}

    def _entry(
        self,
        action: str,
        row_tenant: str,
        subject_id: str,
        *,
        rule: str,
        run_id: str,
        fields: Sequence[str] = (),
        **extra: str,
    ) -> audit.AuditEntry:
        principal = self._principals.get(row_tenant)
        if principal is None:
            principal = self._principals[row_tenant] = Principal(
                JOB_PRINCIPAL, row_tenant, _SYSTEM_ROLES
            )
        call = CallContext(
            method=f"retention/{action}",
            request_id=run_id,
            principal=principal,
            subject_ids=[subject_id],
            field_names=sorted(fields),
            extra=extra,
        )
        call.allow(rule, self._rules_version)
        return self._auditor.entry(call, "OK")

    def notify(
        self,
        tenant: str,
        rule: RetentionRule,
        now: datetime,
        run_id: str,
        sequence: Iterator[int],
    ) -> int:
        """Notice up to one batch of the tenant's dormant subjects; how many (0: none left)."""
        states = states_of(rule)
        now_us = to_micros(now)
        with self._db.write() as conn:
            found = store.lock_dormant(
                conn, tenant, states, to_micros(rule.notice_threshold(now)), self._batch_size
            )
            if not found:
                return 0
            if store.mark_pending(conn, [d.id for d in found], states) != len(found):
                raise VersionConflictError("subjects changed during the retention batch; retry")
            notices, entries = [], []
            for dormant in found:
                notice_id = new_notice_id(now_us, next(sequence))
                deadline = rule.deadline(from_micros(dormant.last_activity_at), now)
                notices.append(
                    {
                        "id": notice_id,
                        "tenant": tenant,
                        "subject_id": dormant.id,
                        "status": OPEN,
                        "prior_state": dormant.state,
                        "rule": rule.name,
                        "created_at": now_us,
                        "deadline_at": to_micros(deadline),
                    }
                )
                entries.append(
                    self._entry(
                        "NotifySubject",
                        tenant,
                        dormant.id,
                        rule=rule.name,
                        run_id=run_id,
                        notice=notice_id,
                        deadline=deadline.isoformat(),
                    )
                )
            store.supersede_open(conn, [d.id for d in found], now_us)
            store.insert_notices(conn, notices)
            audit.append_in(conn, entries)
        return len(found)

    def anonymize(self, now: datetime, run_id: str) -> AnonymizeOutcome:
        """Take up to one batch of due notices: anonymize their subjects or cancel them."""
        now_us = to_micros(now)
        with self._db.write() as conn:
            due = store.lock_due(conn, now_us, self._batch_size, self._anonymizer.retained)
            if not due:
                return AnonymizeOutcome(0, 0, 0)
            doomed = [d for d in due if _anonymizable(d.row)]
            others = [d for d in due if not _anonymizable(d.row)]
            entries, unreadable = self._anonymize(conn, doomed, now_us, now.date(), run_id)
            entries += self._cancel(conn, others, now_us, run_id)
            audit.append_in(conn, entries)
        return AnonymizeOutcome(len(due), len(doomed), unreadable)

    def _anonymize(
        self,
        conn: Connection,
        doomed: Sequence[store.DueNotice],
        now_us: int,
        today: date,
        run_id: str,
    ) -> tuple[list[audit.AuditEntry], int]:
        """Generalize first (the data key still exists), then shred; one transaction."""
        records, entries, unreadable = [], [], 0
        for notice in doomed:
            row = notice.row
            attributes = self._anonymizer.attributes(row, today)
            extra = {"notice": notice.notice_id}
            if attributes is None:
                unreadable += 1
                extra["attributes"] = "unreadable"
            else:
                records.append(
                    {
                        "pseudonym": new_pseudonym(),
                        "tenant": row.meta.tenant,
                        "attributes": encode_attributes(attributes),
                        "anonymized_on": today.isoformat(),
                    }
                )
            entries.append(
                self._entry(
                    "AnonymizeSubject",
                    row.meta.tenant,
                    row.meta.id,
                    rule=notice.rule,
                    run_id=run_id,
                    # What survives, generalized; every other field is destroyed.
                    fields=list(attributes or ()),
                    **extra,
                )
            )
        if not doomed:
            return entries, unreadable
        _shuffle(records)
        ids = [notice.row.meta.id for notice in doomed]
        if store.shred(conn, ids, now_us) != len(ids):
            raise VersionConflictError("subjects changed during the retention batch; retry")
        store.delete_links(conn, ids)
        store.insert_anonymized(conn, records)
        store.close_notices(conn, [n.notice_id for n in doomed], COMPLETED, "anonymized", now_us)
        return entries, unreadable

    def _cancel(
        self,
        conn: Connection,
        others: Sequence[store.DueNotice],
        now_us: int,
        run_id: str,
    ) -> list[audit.AuditEntry]:
        """Due notices whose subject may not be anonymized (held, or no longer pending)."""
        entries = []
        for notice in others:
            meta = notice.row.meta
            reason = "legal_hold" if meta.legal_hold else f"state_{meta.state.value}"
            if meta.state is _PENDING:
                store.restore_state(conn, meta.id, notice.prior_state)
            store.close_notices(conn, [notice.notice_id], CANCELLED, reason, now_us)
            entries.append(
                self._entry(
                    "CancelNotice",
                    meta.tenant,
                    meta.id,
                    rule=notice.rule,
                    run_id=run_id,
                    notice=notice.notice_id,
                    cancelled_because=reason,
                )
            )
        return entries


def states_of(rule: RetentionRule) -> list[str]:
    return [s.value for s in rule.applies_to]


def _anonymizable(row: SubjectRow) -> bool:
    return row.meta.state is _PENDING and not row.meta.legal_hold
