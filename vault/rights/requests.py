"""Data-subject requests a customer makes for itself: rectification, restriction, erasure.

A customer (a token bound to its own subject) creates a request; it waits for the
customer to re-verify with a single-use code the organization's front end delivers out
of band (`issue_code`, permission customers:issue; stored like a one-time link, its
hash only), then for the DPO's decision (`vault.rights.request_decisions`). Every step
is one transaction with its audit entry; a request names ids, kinds and states only,
and a rectification's proposed values are sealed under the subject's own data key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from vault.access.guard import authorize, load_own_subject
from vault.clock import to_micros
from vault.context import CallContext
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    PreconditionViolation,
    ResourceExhaustedError,
)
from vault.fields.dictionary import DataDictionary
from vault.policy import Action
from vault.rights.request_base import RequestBase, RequestView, new_request_id
from vault.rights.request_states import (
    RequestEvent,
    RequestKind,
    RequestState,
)
from vault.storage import customer_links
from vault.storage import subject_requests as store
from vault.storage.subject_requests import RequestRow

MAX_OPEN_PER_SUBJECT = 5
DEFAULT_OWN_PAGE = 20
MAX_OWN_PAGE = 100
MAX_CODE_FAILURES = 5
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_CODE_LENGTH = 10  # 50 bits, single use, short-lived, five tries


@dataclass(frozen=True)
class VerificationCode:
    code: str
    expires_at: datetime


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _code_hash(request_id: str, code: str) -> str:
    return hashlib.sha256(f"dsr:{request_id}:{normalize_code(code)}".encode()).hexdigest()


class CustomerRequests(RequestBase):
    """The customer's side (create, verify, cancel, list) and the front end's code."""

    def __init__(self, *, dictionary: DataDictionary, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._dictionary = dictionary

    def create(
        self,
        call: CallContext,
        subject_id: str,
        kind: str,
        proposed: Mapping[str, str],
        jurisdiction: str,
    ) -> RequestView:
        """A new request of the subject's own, awaiting re-verification."""
        principal = authorize(self._policy, call, Action.REQUEST_SUBMIT)
        call.subject_ids = [subject_id]
        now = self._clock.now()
        request_kind, values, code = self._validate(kind, proposed, jurisdiction, now)
        rule = self._rules.deadline(code)
        assert rule is not None  # checked by _validate
        call.field_names = sorted(values)
        request_id = new_request_id(now)
        call.extra = {"request": request_id, "kind": request_kind.value}
        with self._db.write() as conn:
            subject = load_own_subject(conn, call, principal, subject_id, for_update=True)
            if subject.meta.state.is_terminal:
                call.deny(f"state:{subject.meta.state.value}")
                raise FailedPreconditionError(f"subject is {subject.meta.state.value}")
            open_now = [
                r for r in store.for_subject(conn, subject_id) if RequestState(r.state).is_open
            ]
            if len(open_now) >= MAX_OPEN_PER_SUBJECT:
                raise ResourceExhaustedError(
                    f"at most {MAX_OPEN_PER_SUBJECT} open requests at a time"
                )
            sealed = (
                self._sealing.seal_proposal(
                    subject, request_id, values, by=principal.id, at_us=to_micros(now)
                )
                if values
                else None
            )
            row = RequestRow(
                id=request_id,
                tenant=principal.tenant,
                subject_id=subject_id,
                kind=request_kind.value,
                state=RequestState.AWAITING_VERIFICATION.value,
                jurisdiction=code,
                created_by=principal.id,
                created_at=to_micros(now),
                deadline_at=to_micros(rule.deadline_at(now)),
                verified_at=None,
                decided_at=None,
                decided_by=None,
                decision_reason=None,
                proposed=sealed,
                verification_failures=0,
                proposed_fields=",".join(sorted(values)) or None,
            )
            store.insert(conn, row)
            self._publish(conn, row)
            call.extra = {**call.extra, "transition": "->awaiting_verification"}
            self._auditor.record_in(conn, call)
        return self._view(row, for_customer=True)

    def _validate(
        self, kind: str, proposed: Mapping[str, str], jurisdiction: str, now: datetime
    ) -> tuple[RequestKind, dict[str, str], str]:
        violations = []
        try:
            request_kind = RequestKind(kind)
        except ValueError:
            request_kind = RequestKind.ERASURE
            violations.append(FieldViolation("kind", "rectification, restriction or erasure"))
        code = jurisdiction.strip() or self._rules.default
        if self._rules.deadline(code) is None:
            known = ", ".join(sorted(self._rules.jurisdictions))
            violations.append(FieldViolation("jurisdiction", f"one of {known}"))
        values: dict[str, str] = {}
        if request_kind is RequestKind.RECTIFICATION and not violations:
            if not proposed:
                violations.append(FieldViolation("proposed_values", "name the corrected values"))
            else:
                try:
                    values = self._dictionary.normalize(
                        proposed, require_all=False, today=now.date(), path="proposed_values"
                    )
                except InvalidArgumentError as exc:
                    violations.extend(exc.violations)
        elif proposed and request_kind is not RequestKind.RECTIFICATION:
            violations.append(FieldViolation("proposed_values", "only for a rectification"))
        if violations:
            raise InvalidArgumentError(violations)
        return request_kind, values, code

    def issue_code(self, call: CallContext, request_id: str) -> VerificationCode:
        """A single-use code for the customer to confirm `request_id`, for the front end
        to deliver out of band (permission customers:issue). A new code resets the
        count of wrong tries; earlier codes stay valid until they expire."""
        principal = authorize(self._policy, call, Action.CUSTOMER_ISSUE)
        now = self._clock.now()
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        expires = now + self._rules.verification
        with self._db.write() as conn:
            row = self._load(conn, call, principal, request_id, lock=True)
            if row.state != RequestState.AWAITING_VERIFICATION.value:
                self._check(call, row, RequestEvent.VERIFY)
            customer_links.purge_expired(conn, to_micros(now))
            customer_links.put(
                conn,
                link_hash=_code_hash(row.id, code),
                tenant=row.tenant,
                subject_id=row.subject_id,
                created_at=to_micros(now),
                expires_at=to_micros(expires),
            )
            store.move(conn, row.id, row.state, {"verification_failures": 0})
            self._auditor.record_in(conn, call)
        return VerificationCode(f"{code[:5]}-{code[5:]}", expires)

    def verify(self, call: CallContext, request_id: str, code: str) -> RequestView:
        """Confirm the request with the code the customer received: it waits for the
        DPO's decision from now on. A wrong code counts; five lock the request until the
        front end issues a new one."""
        principal = authorize(self._policy, call, Action.REQUEST_SUBMIT)
        now = self._clock.now()
        refused = False
        with self._db.write() as conn:
            row = self._load(conn, call, principal, request_id, lock=True)
            state = RequestState(row.state)
            if state is RequestState.AWAITING_VERIFICATION and to_micros(now) > row.deadline_at:
                # Never re-verified within the statutory period: the request lapses.
                row = self._move(conn, call, row, RequestEvent.EXPIRE)
                self._auditor.record_in(conn, call)
                return self._view(row, for_customer=True)
            self._check(call, row, RequestEvent.VERIFY)
            if row.verification_failures >= MAX_CODE_FAILURES:
                raise FailedPreconditionError(
                    "too many wrong codes: ask for a new one",
                    [
                        PreconditionViolation(
                            "VERIFICATION_LOCKED", f"requests/{row.id}", "ask for a new code"
                        )
                    ],
                )
            text = normalize_code(code)
            redeemed = len(text) == _CODE_LENGTH and customer_links.redeem(
                conn,
                _code_hash(row.id, text),
                subject_id=row.subject_id,
                tenant=row.tenant,
                now=to_micros(now),
            )
            if redeemed:
                row = self._move(conn, call, row, RequestEvent.VERIFY, verified_at=to_micros(now))
                self._auditor.record_in(conn, call)
            else:
                store.count_failure(conn, row.id)
                # A keyed call runs in a unit of work its error rolls back: count anyway.
                failed = row.id
                self._db.redo_if_rolled_back(lambda c: store.count_failure(c, failed))
                call.deny("verification code refused", self._policy.version)
                self._auditor.record_in(conn, call, "INVALID_ARGUMENT")
                refused = True
        if refused:
            raise InvalidArgumentError([FieldViolation("code", "not valid, used or expired")])
        return self._view(row, for_customer=True)

    def cancel(self, call: CallContext, request_id: str) -> RequestView:
        """Withdraw a request that is not decided yet."""
        principal = authorize(self._policy, call, Action.REQUEST_SUBMIT)
        with self._db.write() as conn:
            row = self._load(conn, call, principal, request_id, lock=True)
            row = self._move(conn, call, row, RequestEvent.CANCEL)
            self._auditor.record_in(conn, call)
        return self._view(row, for_customer=True)

    def list_own(
        self, call: CallContext, subject_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[RequestView], str]:
        """The subject's requests, newest first, with state, deadline and reason: one
        page, and the cursor of the next ("" on the last). The runner seals the cursor
        into the page token (`vault.api.page_tokens`)."""
        principal = authorize(self._policy, call, Action.REQUEST_READ_OWN)
        call.subject_ids = [subject_id]
        size = page_size or DEFAULT_OWN_PAGE
        if not 0 < size <= MAX_OWN_PAGE:
            raise InvalidArgumentError([FieldViolation("page_size", f"1 to {MAX_OWN_PAGE}")])
        before = _own_cursor(page_token)
        with self._db.read() as conn:
            load_own_subject(conn, call, principal, subject_id)
            rows = store.for_subject(conn, subject_id, size + 1, before=before)
        more = len(rows) > size
        rows = rows[:size]
        self._auditor.record(call)
        cursor = f"{rows[-1].created_at}.{rows[-1].id}" if more else ""
        return [self._view(r, for_customer=True) for r in rows], cursor


def _own_cursor(cursor: str) -> tuple[int, str] | None:
    """(created_at, id) from a cursor `list_own` gave (the runner checked its seal)."""
    if not cursor:
        return None
    created, _, request_id = cursor.partition(".")
    if not created.isdigit() or not request_id:
        raise InvalidArgumentError([FieldViolation("page_token", "not a token of this list")])
    return int(created), request_id
