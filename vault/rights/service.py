"""Data-subject rights (GDPR art. 15-20, PIPL art. 44-47, CCPA) as domain operations.

Each right needs its own permission (rights:access, rights:rectify, rights:restrict,
rights:erase), is carried out for the purpose ``data_subject_request`` (which a
restriction does not freeze), requires a reason (the request's reference) and is
audited: changes in their own transaction, the access package before it leaves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

import audit
from vault.access.guard import authorize, check_subject, load_own_subject, stated_justification
from vault.audit_trail import Auditor
from vault.clock import Clock, to_micros
from vault.consent import ledger
from vault.consent.models import subject_context
from vault.consent.receipts import ReceiptIssuer
from vault.context import CallContext
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    VersionConflictError,
)
from vault.fields.dictionary import DataDictionary
from vault.policy import Action, PolicyEngine
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.records.service import RecordService, Within
from vault.rights.package import build_package
from vault.storage import subjects as repo
from vault.storage.db import Database
from vault.storage.subjects import SubjectRow
from vault.subject import SubjectMeta, SubjectState

log = logging.getLogger(__name__)

DSR_PURPOSE = "data_subject_request"
MAX_REASON = 500
_RESTRICTABLE = frozenset({SubjectState.ACTIVE, SubjectState.PENDING_ANONYMIZATION})
_LIFTABLE = frozenset({SubjectState.RESTRICTED})


@dataclass(frozen=True)
class AccessPackage:
    """The access package as JSON text, and the same package as a signed document."""

    json: str
    signed: str


class RightsService:
    """Access/export, rectification, restriction (and lifting it) and erasure."""

    def __init__(
        self,
        *,
        db: Database,
        records: RecordService,
        sealing: RecordCipher,
        dictionary: DataDictionary,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        controller: str,
        signer: ReceiptIssuer | None = None,
    ) -> None:
        self._signer = signer
        self._db = db
        self._records = records
        self._sealing = sealing
        self._dictionary = dictionary
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._controller = controller

    def access(self, call: CallContext, subject_id: str, reason: str) -> AccessPackage:
        """The access package (JSON): every field in clear, consents, access history;
        signed with the receipt key when this vault has one. A customer's own download
        names teams in its history, not colleagues."""
        principal = self._begin(call, Action.RIGHTS_ACCESS, subject_id, reason)
        now = self._clock.now()
        with self._db.read() as conn:
            row = self._load(conn, call, principal, subject_id, Action.RIGHTS_ACCESS)
            events = ledger.events_for(conn, subject_id)
            receipts = ledger.receipt_documents(conn, subject_id)
        consent = ledger.derive(events, now)
        # Erased and anonymized subjects have nothing left to open; the rest still counts.
        fields = {} if row.meta.state.is_terminal else self._sealing.open(row, row.fields)
        history = list(
            audit.iter_query(self._db.engine, subject_id=subject_id, tenant=principal.tenant)
        )
        omitted = 0
        mac = audit.entry_mac_for(self._db.engine)
        if mac is not None:
            # An entry the vault did not write (no valid MAC) is no part of the history
            # a subject is given; how many were left out is said, never what they said.
            history, omitted = audit.authentic(self._db.engine, history, mac)
            if omitted:
                log.error("access package: %d audit entries without a valid MAC left out", omitted)
        package = build_package(
            generated_at=now,
            controller=self._controller,
            meta=row.meta,
            fields=fields,
            consent=consent,
            events=events,
            receipts=receipts,
            history=history,
            unauthenticated_omitted=omitted,
            for_customer=principal.subject is not None,
        )
        signed = self._signer.sign_package(json.loads(package)) if self._signer else ""
        call.field_names = sorted(fields)
        call.consent_version = consent.version
        self._auditor.record(call)
        return AccessPackage(package, signed)

    def rectify(
        self,
        call: CallContext,
        subject_id: str,
        *,
        expected_version: int,
        set_fields: Mapping[str, str],
        clear_fields: Sequence[str],
        reason: str,
        within: Within | None = None,
    ) -> SubjectMeta:
        """Correct fields; the reason is recorded with the change. `within` runs in the
        change's transaction (a request's decision commits with its effect)."""
        self._begin(call, Action.RIGHTS_RECTIFY, subject_id, reason)
        return self._records.update(
            call,
            subject_id,
            expected_version=expected_version,
            set_fields=set_fields,
            clear_fields=clear_fields,
            reason=reason.strip(),
            action=Action.RIGHTS_RECTIFY,
            purpose=DSR_PURPOSE,
            within=within,
        )

    def erase(
        self, call: CallContext, subject_id: str, reason: str, within: Within | None = None
    ) -> SubjectMeta:
        """Crypto-shred the subject (a second erasure is a no-op, still audited)."""
        self._begin(call, Action.RIGHTS_ERASE, subject_id, reason)
        return self._records.erase(
            call,
            subject_id,
            reason.strip(),
            action=Action.RIGHTS_ERASE,
            purpose=DSR_PURPOSE,
            within=within,
        )

    def restrict(
        self, call: CallContext, subject_id: str, reason: str, within: Within | None = None
    ) -> SubjectMeta:
        """Freeze processing: only storage, the subject's own requests and legal claims."""
        return self._set_state(call, subject_id, reason, SubjectState.RESTRICTED, within)

    def lift_restriction(self, call: CallContext, subject_id: str, reason: str) -> SubjectMeta:
        """End a restriction: the subject is active again."""
        return self._set_state(call, subject_id, reason, SubjectState.ACTIVE)

    def _set_state(
        self,
        call: CallContext,
        subject_id: str,
        reason: str,
        target: SubjectState,
        within: Within | None = None,
    ) -> SubjectMeta:
        principal = self._begin(call, Action.RIGHTS_RESTRICT, subject_id, reason)
        allowed_from = _RESTRICTABLE if target is SubjectState.RESTRICTED else _LIFTABLE
        now = self._clock.now()
        with self._db.write() as conn:
            row = self._load(conn, call, principal, subject_id, Action.RIGHTS_RESTRICT, lock=True)
            meta = row.meta
            if meta.state is target:
                call.extra = {"noop": f"already {target.value}"}
                if within is not None:
                    within(conn)
                self._auditor.record_in(conn, call)
                return meta
            if meta.state not in allowed_from:
                call.deny(f"state:{meta.state.value}")
                raise FailedPreconditionError(f"subject is {meta.state.value}")
            changed = {
                "version": meta.version + 1,
                "state": target.value,
                "updated_at": to_micros(now),
            }
            if not repo.update_row(conn, subject_id, meta.version, changed):
                raise VersionConflictError(
                    "subject was changed concurrently; retry", subject_id=subject_id
                )
            call.extra = {"state": f"{meta.state.value}->{target.value}"}
            if within is not None:
                within(conn)
            self._auditor.record_in(conn, call)
        return SubjectMeta(
            meta.id,
            meta.tenant,
            meta.version + 1,
            target,
            meta.created_at,
            now,
            meta.last_activity_at,
            meta.legal_hold,
        )

    def _begin(self, call: CallContext, action: Action, subject_id: str, reason: str) -> Principal:
        call.subject_ids, call.purpose = [subject_id], DSR_PURPOSE
        principal = authorize(self._policy, call, action, purpose=DSR_PURPOSE)
        _check_reason(reason)
        # The request's reference: purposes.yaml asks data_subject_request for a case
        # reference, and the reason is where a rights call states it.
        stated_justification(
            self._policy, call, reason, purpose=DSR_PURPOSE, field="reason", always=True
        )
        return principal

    def _load(
        self,
        conn: Connection,
        call: CallContext,
        principal: Principal,
        subject_id: str,
        action: Action,
        *,
        lock: bool = False,
    ) -> SubjectRow:
        row = load_own_subject(conn, call, principal, subject_id, for_update=lock)
        check_subject(self._policy, call, action, subject_context(row.meta), purpose=DSR_PURPOSE)
        return row


def _check_reason(reason: str) -> None:
    text = reason.strip()
    if not text:
        raise InvalidArgumentError([FieldViolation("reason", "must name the request")])
    if len(text) > MAX_REASON:
        raise InvalidArgumentError([FieldViolation("reason", f"at most {MAX_REASON} characters")])
