"""Writes to subjects: create, batch create, update, erase, record activity.

Each change and its audit entry commit in one transaction; nothing is half-written.
Authorization comes first, then validation, then the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from vault.access.guard import authorize, check_subject, justification, load_own_subject
from vault.audit_trail import Auditor
from vault.clock import Clock, to_micros
from vault.consent.models import subject_context
from vault.context import CallContext
from vault.errors import (
    FieldViolation,
    InvalidArgumentError,
    VersionConflictError,
)
from vault.fields.dictionary import DataDictionary
from vault.fields.normalizers import violation_path
from vault.policy import Action, PolicyEngine
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.records.limits import RateLimiter
from vault.storage import notices as retention_notices
from vault.storage import shredding
from vault.storage import subjects as repo
from vault.storage.db import Database
from vault.subject import ItemResult, SubjectMeta, SubjectState

Within = Callable[[Connection], None]
"""More work of the caller's, in a change's own transaction before its audit entry."""

# Activity timestamps may run slightly ahead of our clock on another machine.
_CLOCK_SKEW = timedelta(minutes=5)


class RecordService:
    """The domain service behind VaultService's write RPCs."""

    def __init__(
        self,
        *,
        db: Database,
        sealing: RecordCipher,
        dictionary: DataDictionary,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        max_batch_size: int,
        erase_limit: RateLimiter | None = None,
    ) -> None:
        self._db = db
        self._sealing = sealing
        self._dictionary = dictionary
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._max_batch_size = max_batch_size
        self._erase_limit = erase_limit or RateLimiter("erasure", 0, 1, clock)

    def create(self, call: CallContext, fields: Mapping[str, str]) -> SubjectMeta:
        """Store one subject."""
        principal = authorize(self._policy, call, Action.SUBJECT_CREATE)
        now = self._clock.now()
        values = self._dictionary.normalize(fields, require_all=True, today=now.date())
        call.field_names = sorted(values)
        prepared = self._sealing.prepare_new(principal.tenant, principal.id, values, to_micros(now))
        call.subject_ids = [prepared.subject_id]
        with self._db.write() as conn:
            repo.insert_subjects(conn, [prepared.row])
            repo.insert_blind_indexes(conn, prepared.index_rows)
            self._auditor.record_in(conn, call)
        return prepared.meta(principal.tenant, now)

    def batch_create(
        self, call: CallContext, items: Sequence[Mapping[str, str]], *, all_or_nothing: bool
    ) -> list[ItemResult]:
        """Store many subjects in one transaction, with one result per item.

        Items fail only on validation, before anything is written; with
        `all_or_nothing` one bad item rejects the whole batch.
        """
        principal = self.admit_batch(call)
        self._check_batch_size(len(items))
        now = self._clock.now()
        today, now_us = now.date(), to_micros(now)
        results: list[ItemResult] = []
        prepared = []
        violations: list[FieldViolation] = []
        for index, fields in enumerate(items):
            try:
                values = self._dictionary.normalize(
                    fields, require_all=True, today=today, path=f"items[{index}].fields"
                )
            except InvalidArgumentError as exc:
                violations.extend(exc.violations)
                results.append(ItemResult(index, error=exc))
                continue
            item = self._sealing.prepare_new(principal.tenant, principal.id, values, now_us)
            prepared.append(item)
            results.append(ItemResult(index, subject_id=item.subject_id))
        if all_or_nothing and violations:
            raise InvalidArgumentError(violations, "batch rejected: no item was stored")
        call.subject_ids = [p.subject_id for p in prepared]
        call.extra = {"items": str(len(items)), "created": str(len(prepared))}
        with self._db.write() as conn:
            repo.insert_subjects(conn, [p.row for p in prepared])
            repo.insert_blind_indexes(conn, [r for p in prepared for r in p.index_rows])
            self._auditor.record_in(conn, call)
        return results

    def admit_batch(self, call: CallContext) -> Principal:
        """May the caller batch-create at all: the question `batch_create` asks first,
        asked by the server too before a batch waits its turn (`CallLimits.bulk_methods`),
        so a caller who may not create holds no place in the queue. Recorded on the call."""
        return authorize(self._policy, call, Action.SUBJECT_CREATE)

    def _check_batch_size(self, size: int) -> None:
        if size == 0:
            raise InvalidArgumentError([FieldViolation("items", "must not be empty")])
        if size > self._max_batch_size:
            raise InvalidArgumentError(
                [FieldViolation("items", f"at most {self._max_batch_size} items per call")]
            )

    def update(
        self,
        call: CallContext,
        subject_id: str,
        *,
        expected_version: int,
        set_fields: Mapping[str, str],
        clear_fields: Sequence[str],
        reason: str,
        action: Action = Action.SUBJECT_UPDATE,
        purpose: str | None = None,
        within: Within | None = None,
    ) -> SubjectMeta:
        """Change and clear fields, if the subject is still at `expected_version`.

        `action` is the permission asked for: a rectification request (rights:rectify,
        purpose data_subject_request) is the same change under its own permission, and
        the only one a restricted subject accepts. `within` runs in the change's own
        transaction, before its audit entry (a request's decision commits with it).
        """
        principal = authorize(self._policy, call, action)
        call.subject_ids = [subject_id]
        call.justification = justification(reason, "reason", required=False)
        now = self._clock.now()
        values = self._validate_update(set_fields, clear_fields, expected_version, now)
        call.field_names = sorted({*values, *clear_fields})
        now_us = to_micros(now)
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            check_subject(self._policy, call, action, subject_context(row.meta), purpose=purpose)
            if row.meta.version != expected_version:
                raise VersionConflictError(
                    "subject was changed by someone else; re-read it",
                    subject_id=subject_id,
                    expected=expected_version,
                    current=row.meta.version,
                )
            new_version = expected_version + 1
            blob = self._sealing.sealed_update(
                row,
                values,
                clear_fields,
                writer=principal.id,
                now_us=now_us,
                new_version=new_version,
            )
            changed = {"version": new_version, "updated_at": now_us, "fields": blob}
            if not repo.update_row(conn, subject_id, expected_version, changed):
                raise VersionConflictError(
                    "subject was changed by someone else; re-read it",
                    subject_id=subject_id,
                    expected=expected_version,
                )
            indexed = [n for n in call.field_names if self._sealing.is_searchable(n)]
            key_version, digests = self._sealing.index_digests(principal.tenant, values)
            repo.replace_blind_indexes(
                conn, subject_id, principal.tenant, indexed, digests, key_version=key_version
            )
            # A token stands for the value it was issued for: changed fields lose theirs.
            repo.delete_tokens(conn, subject_id, call.field_names)
            if within is not None:
                within(conn)
            self._auditor.record_in(conn, call)
        return _with(row.meta, version=new_version, updated_at=now)

    def _validate_update(
        self,
        set_fields: Mapping[str, str],
        clear_fields: Sequence[str],
        expected_version: int,
        now: datetime,
    ) -> dict[str, str]:
        violations = []
        if expected_version < 1:
            violations.append(FieldViolation("expected_version", "must be the version you read"))
        if not set_fields and not clear_fields:
            violations.append(FieldViolation("set_fields", "nothing to change"))
        for name in clear_fields:
            spec = self._dictionary.fields.get(name)
            if spec is None:
                where = violation_path("clear_fields", name)
                violations.append(FieldViolation(where, "unknown field"))
            elif spec.required:
                violations.append(FieldViolation(f"clear_fields.{name}", "required field"))
            elif name in set_fields:
                violations.append(FieldViolation(f"clear_fields.{name}", "also being set"))
        try:
            values = self._dictionary.normalize(
                set_fields, require_all=False, today=now.date(), path="set_fields"
            )
        except InvalidArgumentError as exc:
            violations.extend(exc.violations)
        if violations:
            raise InvalidArgumentError(violations)
        return values

    def erase(
        self,
        call: CallContext,
        subject_id: str,
        reason: str,
        action: Action = Action.SUBJECT_ERASE,
        purpose: str | None = None,
        *,
        within: Within | None = None,
    ) -> SubjectMeta:
        """Crypto-shred: drop the data key, the sealed fields and the blind indexes.

        Idempotent: erasing an erased subject changes nothing (and is still audited).
        A subject under legal hold is not erased. `action` is the permission asked for
        (rights:erase for a data-subject request). Every erasure states a reason; outside
        the data-subject-request path each spends the principal's erasure budget, so
        bulk erasure goes through that path only.
        """
        principal = authorize(self._policy, call, action)
        call.subject_ids = [subject_id]
        call.justification = justification(reason, "reason", required=True)
        if action is not Action.RIGHTS_ERASE:
            self._erase_limit.charge(call, principal)
        now = self._clock.now()
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            if row.meta.state is SubjectState.ERASED:
                call.extra = {"noop": "already erased"}
                if within is not None:
                    within(conn)
                self._auditor.record_in(conn, call)
                return row.meta
            # Restriction (only the data-subject request erases then) and legal holds.
            check_subject(self._policy, call, action, subject_context(row.meta), purpose=purpose)
            new_version = row.meta.version + 1
            if not shredding.erase(conn, subject_id, row.meta.version, to_micros(now)):
                raise VersionConflictError(
                    "subject was changed concurrently; retry", subject_id=subject_id
                )
            retention_notices.cancel_open(conn, subject_id, to_micros(now), "erased")
            if within is not None:
                within(conn)
            self._auditor.record_in(conn, call)
        self._sealing.forget_key(row)
        self._db.after_shred()
        return _with(row.meta, version=new_version, updated_at=now, state=SubjectState.ERASED)

    def record_activity(
        self, call: CallContext, subject_id: str, occurred_at: datetime | None
    ) -> SubjectMeta:
        """Note customer activity: moves last-activity forward, never back."""
        principal = authorize(self._policy, call, Action.ACTIVITY_RECORD)
        call.subject_ids = [subject_id]
        now = self._clock.now()
        when = occurred_at or now
        if when > now + _CLOCK_SKEW:
            raise InvalidArgumentError([FieldViolation("occurred_at", "is in the future")])
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            check_subject(self._policy, call, Action.ACTIVITY_RECORD, subject_context(row.meta))
            latest = max(row.meta.last_activity_at, when)
            changed: dict[str, object] = {"last_activity_at": to_micros(latest)}
            state = row.meta.state
            if state is SubjectState.PENDING_ANONYMIZATION:
                # Activity before the deadline cancels the notice; a subject restricted
                # before its notice goes back to restricted, not active.
                prior = retention_notices.cancel_open(conn, subject_id, to_micros(now), "activity")
                state = prior or SubjectState.ACTIVE
                changed["state"] = state.value
                call.extra = {"retention_notice": "cancelled"}
            if not repo.update_row(conn, subject_id, row.meta.version, changed):
                raise VersionConflictError(
                    "subject was changed concurrently; retry", subject_id=subject_id
                )
            self._auditor.record_in(conn, call)
        return _with(row.meta, last_activity_at=latest, state=state)


def _with(meta: SubjectMeta, **changes: object) -> SubjectMeta:
    return replace(meta, **changes)  # type: ignore[arg-type]
