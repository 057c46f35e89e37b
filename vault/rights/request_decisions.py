"""The DPO's side of data-subject requests: the queue, one request, the decision.

Only a role the policy grants requests:read sees the queue (compliance officers and the
DPO), only requests:decide decides (the DPO). An approval carries out the request
through the rights code (`RightsService.erase`, `restrict`, `rectify`) and marks the
request fulfilled inside that change's own transaction, under one audit entry; a
rejection keeps the data and records the reason the customer is shown. A request the
customer has not re-verified cannot be decided (FAILED_PRECONDITION).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection

from vault.access.guard import authorize, justification
from vault.clock import to_micros
from vault.context import CallContext
from vault.errors import FieldViolation, InvalidArgumentError, PermissionDeniedError
from vault.policy import Action
from vault.rights.request_base import RequestBase, RequestView
from vault.rights.request_expiry import RequestExpiry
from vault.rights.request_states import RequestEvent, RequestKind, RequestState
from vault.rights.requests import CustomerRequests
from vault.rights.service import RightsService
from vault.storage import subject_requests as store
from vault.storage import subjects as subjects_repo

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_DECISION_REASON = 400
OPEN_STATES = (RequestState.AWAITING_VERIFICATION, RequestState.PENDING_DECISION)


@dataclass(frozen=True)
class RequestDesk:
    """Both sides of the request workflow, as one process serves them."""

    customers: CustomerRequests
    decisions: RequestDecisions
    expiry: RequestExpiry


class RequestDecisions(RequestBase):
    """The queue, one request with what it proposes, and approve or reject."""

    def __init__(self, *, rights: RightsService, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rights = rights

    def queue(
        self,
        call: CallContext,
        states: list[str],
        page_size: int,
        page_token: str,
    ) -> tuple[list[RequestView], str]:
        """The tenant's requests in `states` (the open ones by default), the nearest
        deadline first, one page, and the token of the next page ("" at the end)."""
        principal = authorize(self._policy, call, Action.REQUEST_READ)
        wanted = _states(states)
        size = page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            raise InvalidArgumentError([FieldViolation("page_size", f"1 to {MAX_PAGE}")])
        after = _decode_token(page_token)
        with self._db.read() as conn:
            rows = store.queue(conn, principal.tenant, wanted, after=after, limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        call.subject_ids = [r.subject_id for r in rows]
        call.extra = {"requests": str(len(rows))}
        self._auditor.record(call)
        token = _encode_token(rows[-1].deadline_at, rows[-1].id) if more else ""
        return [self._view(r, for_customer=False) for r in rows], token

    def get(self, call: CallContext, request_id: str) -> RequestView:
        """One request; a rectification's proposed values only for a caller who may
        decide it (they are personal data, opened for the data-subject-request purpose)."""
        principal = authorize(self._policy, call, Action.REQUEST_READ)
        with self._db.read() as conn:
            row = self._load(conn, call, principal, request_id)
            view = self._view(row, for_customer=False)
            if row.proposed is not None and self._may_decide(call):
                subject = subjects_repo.get(conn, row.subject_id)
                if subject is not None and not subject.meta.state.is_terminal:
                    values = self._sealing.open_proposal(
                        subject, row.id, row.proposed, by=row.created_by, at_us=row.created_at
                    )
                    view = replace(view, proposed=values)
                    call.field_names = sorted(values)
                    call.purpose = "data_subject_request"
        self._auditor.record(call)
        return view

    def _may_decide(self, call: CallContext) -> bool:
        try:
            self._policy.authorize(call.require_principal(), Action.REQUEST_DECIDE)
        except PermissionDeniedError:
            return False
        return True

    def decide(self, call: CallContext, request_id: str, approve: bool, reason: str) -> RequestView:
        """Approve (carry the request out, then fulfilled) or reject, with a reason the
        customer sees. Refused unless the customer re-verified the request."""
        principal = authorize(self._policy, call, Action.REQUEST_DECIDE)
        text = justification(reason, "reason", required=True)
        if len(text) > MAX_DECISION_REASON:
            raise InvalidArgumentError(
                [FieldViolation("reason", f"at most {MAX_DECISION_REASON} characters")]
            )
        event = RequestEvent.APPROVE if approve else RequestEvent.REJECT
        # A write, though it only reads: a keyed call claims its idempotency key here,
        # before the state is checked, so a retry of a done decision replays it.
        with self._db.write() as conn:
            row = self._load(conn, call, principal, request_id)
            self._check(call, row, event)  # before any effect
        now = self._clock.now()
        changes = {
            "decided_at": to_micros(now),
            "decided_by": principal.id,
            "decision_reason": text,
        }
        decided: list[RequestView] = []
        case = f"{row.id}: {text}"  # the case reference the purpose asks for

        def mark(conn: Connection) -> None:
            locked = store.get(conn, row.id, for_update=True)
            assert locked is not None
            moved = self._move(conn, call, locked, event, **changes)
            call.extra = {**call.extra, "request": row.id, "kind": row.kind}
            decided.append(self._view(moved, for_customer=False))

        if not approve:
            call.subject_ids = [row.subject_id]
            call.justification = case
            with self._db.write() as conn:
                mark(conn)
                self._auditor.record_in(conn, call)
        elif row.kind == RequestKind.ERASURE.value:
            self._rights.erase(call, row.subject_id, case, within=mark)
        elif row.kind == RequestKind.RESTRICTION.value:
            self._rights.restrict(call, row.subject_id, case, within=mark)
        else:
            values, version = self._proposal(row)
            self._rights.rectify(
                call,
                row.subject_id,
                expected_version=version,
                set_fields=values,
                clear_fields=[],
                reason=case,
                within=mark,
            )
        return decided[0]

    def _proposal(self, row: store.RequestRow) -> tuple[dict[str, str], int]:
        with self._db.read() as conn:
            subject = subjects_repo.get(conn, row.subject_id)
        if subject is None or row.proposed is None:
            raise InvalidArgumentError([FieldViolation("request_id", "nothing to rectify")])
        values = self._sealing.open_proposal(
            subject, row.id, row.proposed, by=row.created_by, at_us=row.created_at
        )
        return values, subject.meta.version


def _states(states: list[str]) -> list[str]:
    if not states:
        return [s.value for s in OPEN_STATES]
    try:
        return [RequestState(s).value for s in states]
    except ValueError:
        raise InvalidArgumentError([FieldViolation("states", "unknown state")]) from None


def _encode_token(deadline: int, request_id: str) -> str:
    return base64.urlsafe_b64encode(f"{deadline}.{request_id}".encode()).decode()


def _decode_token(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    try:
        deadline, request_id = base64.urlsafe_b64decode(token.encode()).decode().split(".", 1)
        return int(deadline), request_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError(
            [FieldViolation("page_token", "not a token of this list")]
        ) from None
