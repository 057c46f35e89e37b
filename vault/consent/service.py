"""ConsentService's domain side: grant, withdraw, opt out, and read the ledger back.

Every change appends to the ledger, signs a receipt and writes its audit entry in one
transaction (nothing is appended when anything fails). Reads of consent are audited
before they return, like every read about a subject.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Connection

from vault.access.guard import authorize, check_subject, load_own_subject
from vault.audit_trail import Auditor
from vault.clock import Clock, to_micros
from vault.consent import checks, ledger
from vault.consent.checks import ConsentRequest
from vault.consent.models import (
    Channel,
    ConsentAction,
    ConsentChange,
    ConsentEvent,
    ConsentStatus,
    NewConsentEvent,
    subject_context,
)
from vault.consent.receipts import ReceiptContext, ReceiptIssuer
from vault.consent.status import build_status
from vault.context import CallContext
from vault.crypto import new_random_id
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from vault.event_kinds import EventKind
from vault.policy import Action, PolicyEngine
from vault.principal import Principal
from vault.storage.db import Database
from vault.storage.events import record_event
from vault.storage.subjects import SubjectRow

_MAX_LISTED = 200
# ListConsentEvents pages: the default and the largest page size.
DEFAULT_EVENTS_PAGE = 100
MAX_EVENTS_PAGE = 1000


class ConsentService:
    """The consent ledger's writes and reads for one vault process."""

    def __init__(
        self,
        *,
        db: Database,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        issuer: ReceiptIssuer,
        jurisdiction: str,
    ) -> None:
        self._db = db
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._issuer = issuer
        self._jurisdiction = jurisdiction

    # --- changes ------------------------------------------------------------------------

    def grant(self, call: CallContext, request: ConsentRequest) -> ConsentChange:
        """Record consent to purposes (or lift a blanket opt-out by naming its marker)."""
        principal = self._begin(call, request, "grant")
        now = self._clock.now()
        declared = self._policy.purposes
        _raise_if(
            checks.common(request, declared.notice_versions)
            + checks.purposes(request.purposes, declared, markers_allowed=True)
            + checks.grant_terms(request, now)
        )
        events = [
            NewConsentEvent(name, ConsentAction.GRANT, request.expires_at)
            for name in request.purposes
        ]
        return self._append(
            call, principal, request, now, lambda _conn: events, kind=EventKind.CONSENT_GRANTED
        )

    def withdraw(self, call: CallContext, request: ConsentRequest) -> ConsentChange:
        """Withdraw consent to purposes, or every purpose one earlier receipt granted."""
        principal = self._begin(call, request, "withdraw")
        now = self._clock.now()
        declared = self._policy.purposes
        _raise_if(
            checks.common(request, declared.notice_versions)
            + checks.withdrawal_target(request)
            + checks.purposes(request.purposes, declared, markers_allowed=False, required=False)
            + checks.no_expiry(request)
        )

        def events(conn: Connection) -> list[NewConsentEvent]:
            names = request.purposes or self._granted_by(conn, call, request)
            return [NewConsentEvent(name, ConsentAction.WITHDRAW) for name in names]

        return self._append(call, principal, request, now, events, kind=EventKind.CONSENT_WITHDRAWN)

    def opt_out(self, call: CallContext, request: ConsentRequest) -> ConsentChange:
        """Opt out of purposes and/or whole groups (``all_marketing``, ``all_sharing``).

        A Global Privacy Control signal always opts out of all sharing, whatever else
        it names.
        """
        declared = self._policy.purposes
        if request.channel is Channel.GPC:
            sharing = [m for m, flag in declared.markers.items() if flag == "sharing"]
            extra = [m for m in sharing if m not in request.purposes]
            request = replace(request, purposes=[*request.purposes, *extra])
        principal = self._begin(call, request, "opt_out")
        now = self._clock.now()
        _raise_if(
            checks.common(request, declared.notice_versions)
            + checks.purposes(request.purposes, declared, markers_allowed=True)
            + checks.no_expiry(request)
        )
        events = [NewConsentEvent(name, ConsentAction.WITHDRAW) for name in request.purposes]
        return self._append(
            call, principal, request, now, lambda _conn: events, kind=EventKind.CONSENT_OPTED_OUT
        )

    def _begin(self, call: CallContext, request: ConsentRequest, kind: str) -> Principal:
        call.subject_ids = [request.subject_id] if request.subject_id else []
        call.extra = {"consent": kind}
        return authorize(self._policy, call, Action.CONSENT_WRITE)

    def _granted_by(
        self, conn: Connection, call: CallContext, request: ConsentRequest
    ) -> list[str]:
        found = ledger.receipt_events(conn, request.receipt_id)
        if not found or found[0].subject_id != request.subject_id:
            call.deny("receipt not issued for this subject")
            raise NotFoundError("receipt not found")
        granted = [e.purpose for e in found if e.action is ConsentAction.GRANT]
        if not granted:
            raise FailedPreconditionError("that receipt granted nothing to withdraw")
        return granted

    def _append(
        self,
        call: CallContext,
        principal: Principal,
        request: ConsentRequest,
        now: datetime,
        events_in: Callable[[Connection], list[NewConsentEvent]],
        *,
        kind: EventKind,
    ) -> ConsentChange:
        assert request.channel is not None  # checks.common refused a missing channel
        jurisdiction = request.jurisdiction or self._jurisdiction
        receipt_id = new_random_id("rcpt")
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, request.subject_id, for_update=True)
            self._check_state(call, Action.CONSENT_WRITE, row)
            stored = ledger.append(
                conn,
                events_in(conn),
                tenant=principal.tenant,
                subject_id=row.meta.id,
                recorded_at=now,
                channel=request.channel,
                notice_version=request.notice_version,
                evidence_ref=request.evidence_ref,
                jurisdiction=jurisdiction,
                receipt_id=receipt_id,
                actor=principal.id,
            )
            version = str(stored[-1].id)
            facts = ReceiptContext(
                receipt_id,
                row.meta.id,
                principal.tenant,
                now,
                request.channel,
                jurisdiction,
                request.notice_version,
                request.evidence_ref,
                version,
                stored,
            )
            document = self._issuer.issue(
                facts, self._policy.purposes, self._categories(principal.tenant, stored)
            )
            ledger.insert_receipt(
                conn,
                receipt_id,
                tenant=principal.tenant,
                subject_id=row.meta.id,
                issued_at=now,
                document=document,
            )
            record_event(
                conn,
                tenant=principal.tenant,
                subject_id=row.meta.id,
                kind=kind,
                occurred_at=to_micros(now),
                facts={
                    "purposes": ",".join(e.purpose for e in stored),
                    "channel": request.channel.value,
                    "notice_version": request.notice_version,
                    "jurisdiction": jurisdiction,
                    "receipt_id": receipt_id,
                    "consent_version": version,
                },
            )
            call.consent_version = version
            call.extra = {
                **call.extra,
                "purposes": _listed(e.purpose for e in stored),
                "channel": request.channel.value,
                "receipt_id": receipt_id,
            }
            self._auditor.record_in(conn, call)
        return ConsentChange(row.meta.id, version, tuple(stored), receipt_id, document)

    # --- reads ----------------------------------------------------------------------------

    def _categories(
        self, tenant: str, events: Sequence[ConsentEvent]
    ) -> dict[str, tuple[str, ...]]:
        """Per purpose of `events`, the fields it can use under the policy in force; an
        opt-out marker covers every purpose it stops."""
        declared = self._policy.purposes
        fields = self._issuer.fields
        found: dict[str, tuple[str, ...]] = {}
        for name in {e.purpose for e in events}:
            if name in declared.markers:
                flag = declared.markers[name]
                covered = [p for p in declared if getattr(declared.get(p), flag, False)]
            else:
                covered = [name]
            usable = {f for p in covered for f in self._policy.fields_usable_for(tenant, p, fields)}
            found[name] = tuple(f.name for f in fields if f.name in usable)
        return found

    def status(
        self, call: CallContext, subject_id: str, at: datetime | None = None
    ) -> ConsentStatus:
        """The subject's consent now, or as it stood at a past moment `at`."""
        now = self._clock.now()
        if at is not None and at > now:
            raise InvalidArgumentError([FieldViolation("at", "must not be in the future")])
        when = at or now
        events = self._read(call, subject_id, recorded_until=at)
        status = build_status(subject_id, events, when, self._policy.purposes)
        call.consent_version = status.consent_version
        self._auditor.record(call)
        return status

    def history(
        self, call: CallContext, subject_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[ConsentEvent], str]:
        """A page of the subject's ledger events, oldest first, and the cursor of the
        next page ("" on the last): the last event's sequence."""
        violations = []
        if not 0 <= page_size <= MAX_EVENTS_PAGE:
            violations.append(FieldViolation("page_size", f"must be 0 to {MAX_EVENTS_PAGE}"))
        if page_token and not page_token.isdigit():
            violations.append(FieldViolation("page_token", "not a token this call gave"))
        _raise_if(violations)
        limit = page_size or DEFAULT_EVENTS_PAGE
        found = self._read(call, subject_id, after=int(page_token or 0), limit=limit + 1)
        events = found[:limit]
        call.consent_version = str(events[-1].id) if events else ledger.EMPTY_VERSION
        self._auditor.record(call)
        return events, (str(events[-1].id) if len(found) > limit else "")

    def receipt(self, call: CallContext, subject_id: str, receipt_id: str) -> str:
        """A receipt issued earlier for this subject (NOT_FOUND for anyone else's)."""
        if not checks.is_receipt_id(receipt_id):
            raise InvalidArgumentError([FieldViolation("receipt_id", "not a receipt id")])
        call.extra = {"receipt_id": receipt_id}
        principal = self._begin_read(call, subject_id)
        with self._db.read() as conn:
            load_own_subject(conn, call, principal, subject_id)
            document = ledger.receipt_document(conn, receipt_id, subject_id)
        if document is None:
            call.deny("receipt not issued for this subject")
            raise NotFoundError("receipt not found")
        self._auditor.record(call)
        return document

    def _begin_read(self, call: CallContext, subject_id: str) -> Principal:
        if not subject_id:
            raise InvalidArgumentError([FieldViolation("subject_id", "required")])
        call.subject_ids = [subject_id]
        return authorize(self._policy, call, Action.CONSENT_READ)

    def _read(
        self,
        call: CallContext,
        subject_id: str,
        *,
        recorded_until: datetime | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[ConsentEvent]:
        principal = self._begin_read(call, subject_id)
        with self._db.read() as conn:
            row = load_own_subject(conn, call, principal, subject_id)
            self._check_state(call, Action.CONSENT_READ, row)
            return ledger.events_for(
                conn, subject_id, recorded_until=recorded_until, after=after, limit=limit
            )

    def _check_state(self, call: CallContext, action: Action, row: SubjectRow) -> None:
        check_subject(self._policy, call, action, subject_context(row.meta))


def _listed(names: Iterable[str]) -> str:
    """Purpose names for the audit entry (whose values are short); the ledger has them all."""
    joined = ",".join(names)
    return joined if len(joined) <= _MAX_LISTED else f"{joined.count(',') + 1} purposes"


def _raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgumentError(violations)
