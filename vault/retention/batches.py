"""One batch of the retention job, in one transaction: the state changes and one audit
entry per subject commit together or not at all.

Notice batches move dormant subjects to pending_anonymization and record their notices;
anonymization batches take due notices, keep the generalized attributes (read while the
data key still exists), then crypto-shred, drop blind indexes and tokens, and close the
notices. A due notice whose subject may no longer be anonymized (a hold, a state change
by another path) is cancelled instead.

The per-subject work of an anonymization batch (`prepare`: decrypt and generalize, draw
pseudonyms, build and encode audit entries) needs no lock: it runs ahead of the batch's
transaction from an unlocked read (in a child process on a large run:
`vault.retention.preparer`), and then `apply` locks the notices and uses what was
prepared only for subjects unchanged since; the rest is left for a later batch.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

import audit
from vault.audit_actions import AuditAction
from vault.audit_trail import system_entry
from vault.clock import Clock, from_micros, to_micros
from vault.crypto.derived import b32
from vault.errors import VersionConflictError
from vault.event_kinds import EventKind
from vault.principal import Principal
from vault.retention import store
from vault.retention.anonymizer import Anonymizer, encode_attributes, new_pseudonym
from vault.retention.rules import RetentionRule
from vault.storage import shredding
from vault.storage.db import Database
from vault.storage.events import record_events
from vault.storage.retention_tables import CANCELLED, COMPLETED, OPEN
from vault.subject import SubjectState

JOB_PRINCIPAL = "retention-job"
_SYSTEM_ROLES = frozenset({"system"})
_PENDING = SubjectState.PENDING_ANONYMIZATION
# Pseudonymous records are shuffled so their order in a batch says nothing of the subjects'.
_shuffle = random.SystemRandom().shuffle


NOTICE_PREFIX = "ntc"


def new_notice_id(now_us: int, sequence: int) -> str:
    """`ntc_` + 26 base32 characters: the notice's time, a sequence number and 40 random
    bits. Ids sort in the order notices are made, which is the order the job closes
    them in, so closing a notice appends to the indexes instead of writing all over them.
    """
    raw = now_us.to_bytes(8, "big") + (sequence % 2**24).to_bytes(3, "big") + os.urandom(5)
    return f"{NOTICE_PREFIX}_{b32(raw)}"


@dataclass(frozen=True, slots=True)
class Prepared:
    """One due notice made ready outside the write transaction: the subject's version it
    was made from, its encoded audit entry and its anonymized record (None: unreadable
    fields). Nothing personal: it may cross a process boundary."""

    version: int
    entry: audit.EncodedEntry
    record: tuple[str, str, str, str] | None


@dataclass(frozen=True)
class AnonymizeOutcome:
    """What one anonymization batch did (0 notices: nothing was due)."""

    notices: int
    anonymized: int
    without_attributes: int
    # Subjects anonymized, per tenant.
    by_tenant: Mapping[str, int] = field(default_factory=dict)


class RetentionBatchRunner:
    """Runs single batches; `RetentionJob` loops over them."""

    def __init__(
        self,
        *,
        db: Database,
        anonymizer: Anonymizer,
        clock: Clock,
        rules_version: str,
        batch_size: int,
    ) -> None:
        self._db = db
        self._anonymizer = anonymizer
        self._clock = clock
        self._rules_version = rules_version
        self._batch_size = batch_size
        self._principals: dict[str, Principal] = {}

    def _entry(
        self,
        action: AuditAction,
        row_tenant: str,
        subject_id: str,
        *,
        rule: str,
        run_id: str,
        fields: Sequence[str] = (),
        at: datetime | None = None,
        **extra: str,
    ) -> audit.AuditEntry:
        principal = self._principals.get(row_tenant)
        if principal is None:
            principal = self._principals[row_tenant] = Principal(
                JOB_PRINCIPAL, row_tenant, _SYSTEM_ROLES
            )
        return system_entry(
            at or self._clock.now(),
            principal,
            action,
            subject_id,
            reason=rule,
            policy_version=self._rules_version,
            request_id=run_id,
            field_names=tuple(sorted(fields)),
            extra=extra,
        )

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
            notices, entries, published = [], [], []
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
                        AuditAction.NOTIFY_SUBJECT,
                        tenant,
                        dormant.id,
                        rule=rule.name,
                        run_id=run_id,
                        notice=notice_id,
                        deadline=deadline.isoformat(),
                    )
                )
                facts = {
                    "notice_id": notice_id,
                    "deadline": deadline.isoformat(),
                    "rule": rule.name,
                    "run_id": run_id,
                }
                published.append(
                    (tenant, dormant.id, EventKind.DORMANCY_NOTICE_CREATED, now_us, facts)
                )
            store.supersede_open(conn, [d.id for d in found], now_us)
            store.insert_notices(conn, notices)
            record_events(conn, published)
            audit.append_in(conn, entries)
        return len(found)

    def read_due(self, now: datetime, exclude: Sequence[str] = ()) -> list[store.DueNotice]:
        """Up to one batch of due notices read without locks, leaving out `exclude`."""
        with self._db.read() as conn:
            return store.read_due(
                conn, to_micros(now), self._batch_size, self._anonymizer.retained, exclude
            )

    def prepare(
        self,
        due: Sequence[store.DueNotice],
        now: datetime,
        run_id: str,
        at: datetime | None = None,
    ) -> dict[str, Prepared]:
        """Decrypt and generalize what anonymization keeps, draw the pseudonyms and build
        the audit entries (stamped `at`, default the clock's now): the per-subject work,
        which needs no lock (see `apply`)."""
        today = now.date()
        day = today.isoformat()
        prepared = {}
        for notice in due:
            if not notice.anonymizable:
                continue
            attributes = self._anonymizer.attributes(notice, today)
            extra = {"notice": notice.notice_id}
            record = None
            if attributes is None:
                extra["attributes"] = "unreadable"
            else:
                record = (new_pseudonym(), notice.tenant, encode_attributes(attributes), day)
            entry = self._entry(
                AuditAction.ANONYMIZE_SUBJECT,
                notice.tenant,
                notice.subject_id,
                rule=notice.rule,
                run_id=run_id,
                # What survives, generalized; every other field is destroyed.
                fields=list(attributes or ()),
                at=at,
                **extra,
            )
            prepared[notice.notice_id] = Prepared(notice.version, audit.encode(entry), record)
        return prepared

    def apply(
        self,
        prepared: Mapping[str, Prepared],
        notice_ids: Sequence[str],
        now: datetime,
        run_id: str,
        checkpoint_pages: int | None = None,
    ) -> AnonymizeOutcome:
        """Apply a batch prepared from an unlocked read of `notice_ids`: each notice is
        locked and checked again, and only a subject unchanged since (same version, still
        pending, no hold) is anonymized with what was prepared; a notice closed or locked
        meanwhile is left alone, a subject changed in the meantime is left for the next
        batch. `checkpoint_pages`: see `Database.write`."""
        if not notice_ids:
            return AnonymizeOutcome(0, 0, 0)
        with self._db.write(checkpoint_pages=checkpoint_pages) as conn:
            current = store.lock_notices(conn, notice_ids, to_micros(now))
            return self._apply(conn, prepared, current, now, run_id)

    def _apply(
        self,
        conn: Connection,
        prepared: Mapping[str, Prepared],
        current: Sequence[store.DueNotice],
        now: datetime,
        run_id: str,
    ) -> AnonymizeOutcome:
        """In the write transaction, `current` locked: shred what was prepared, cancel the
        notices whose subject may no longer be anonymized, one audit entry each."""
        if not current:
            return AnonymizeOutcome(0, 0, 0)
        now_us = to_micros(now)
        doomed: list[tuple[str, store.DueNotice, Prepared]] = []
        others = []
        for notice in current:
            ready = prepared.get(notice.notice_id)
            if not notice.anonymizable:
                others.append(notice)
            elif ready is not None and ready.version == notice.version:
                doomed.append((notice.notice_id, notice, ready))
        entries = [ready.entry for _, _, ready in doomed]
        self._shred(conn, doomed, now_us)
        record_events(
            conn,
            [
                (
                    notice.tenant,
                    notice.subject_id,
                    EventKind.SUBJECT_ANONYMIZED,
                    now_us,
                    {"notice_id": notice_id, "run_id": run_id},
                )
                for notice_id, notice, _ in doomed
            ],
        )
        entries += [audit.encode(e) for e in self._cancel(conn, others, now_us, run_id)]
        audit.append_encoded_in(conn, entries)
        unreadable = sum(1 for _, _, ready in doomed if ready.record is None)
        by_tenant = Counter(notice.tenant for _, notice, _ in doomed)
        return AnonymizeOutcome(len(doomed) + len(others), len(doomed), unreadable, by_tenant)

    def _shred(
        self, conn: Connection, doomed: Sequence[tuple[str, store.DueNotice, Prepared]], now_us: int
    ) -> None:
        """The generalized records were made while the data key existed; now it goes."""
        if not doomed:
            return
        records = [ready.record for _, _, ready in doomed if ready.record is not None]
        _shuffle(records)
        ids = [notice.subject_id for _, notice, _ in doomed]
        if shredding.anonymize(conn, ids, now_us) != len(ids):
            raise VersionConflictError("subjects changed during the retention batch; retry")
        shredding.delete_links(conn, ids)
        store.insert_anonymized(conn, records)
        store.close_notices(conn, [n for n, _, _ in doomed], COMPLETED, "anonymized", now_us)

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
            reason = "legal_hold" if notice.legal_hold else f"state_{notice.state.value}"
            if notice.state is _PENDING:
                store.restore_state(conn, notice.subject_id, notice.prior_state)
            store.close_notices(conn, [notice.notice_id], CANCELLED, reason, now_us)
            entries.append(
                self._entry(
                    AuditAction.CANCEL_NOTICE,
                    notice.tenant,
                    notice.subject_id,
                    rule=notice.rule,
                    run_id=run_id,
                    notice=notice.notice_id,
                    cancelled_because=reason,
                )
            )
        return entries


def states_of(rule: RetentionRule) -> list[str]:
    return [s.value for s in rule.applies_to]
