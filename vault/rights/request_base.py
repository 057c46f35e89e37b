"""What both sides of the request workflow share: a request as a caller may see it,
its id, and loading one the caller may touch (`RequestBase`).

A customer (a principal bound to one subject) sees only its own subject's requests, a
member of staff only its tenant's; anything else is NOT_FOUND, the attempt recorded as
denied. State changes go through `_move`: the state machine decides, a conditional
UPDATE applies it in the caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from vault.audit_trail import Auditor
from vault.clock import Clock, from_micros, to_micros
from vault.context import CallContext
from vault.errors import FailedPreconditionError, NotFoundError
from vault.event_kinds import EventKind
from vault.policy import PolicyEngine
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.rights.deadlines import RequestRules
from vault.rights.request_states import (
    RequestEvent,
    RequestKind,
    RequestState,
    is_request_id,
    next_state,
)
from vault.storage import subject_requests as store
from vault.storage.db import Database
from vault.storage.events import record_event
from vault.storage.subject_requests import RequestRow


@dataclass(frozen=True)
class RequestView:
    """A request as a caller may see it (no proposed value unless `proposed` is set)."""

    id: str
    subject_id: str
    kind: RequestKind
    state: RequestState
    jurisdiction: str
    regulation: str
    created_at: datetime
    deadline_at: datetime
    verified_at: datetime | None
    decided_at: datetime | None
    decided_by: str
    decision_reason: str
    proposed_fields: tuple[str, ...] = ()
    proposed: Mapping[str, str] = field(default_factory=dict)


def new_request_id(now: datetime) -> str:
    """`DSR-<yyyymmdd>-<10 random base32>`: a case reference purposes.yaml accepts."""
    tail = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(10))
    return f"DSR-{now:%Y%m%d}-{tail}"


class RequestBase:
    """What both sides share: loading a request the caller may see, and showing it."""

    def __init__(
        self,
        *,
        db: Database,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        rules: RequestRules,
        sealing: RecordCipher,
    ) -> None:
        self._db = db
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._rules = rules
        self._sealing = sealing

    def _load(
        self,
        conn: Connection,
        call: CallContext,
        principal: Principal,
        request_id: str,
        *,
        lock: bool = False,
    ) -> RequestRow:
        """The request if the caller's tenant (and, for a customer, its own subject) has
        it; NOT_FOUND otherwise, the attempt recorded as denied."""
        row = store.get(conn, request_id, for_update=lock) if is_request_id(request_id) else None
        if row is None:
            raise NotFoundError("request not found")
        call.subject_ids = [row.subject_id]
        call.extra = {**call.extra, "request": row.id, "kind": row.kind}
        if row.tenant != principal.tenant:
            call.deny("cross-tenant access refused")
            raise NotFoundError("request not found")
        if principal.subject is not None and principal.subject != row.subject_id:
            call.deny("customer bound to another subject")
            raise NotFoundError("request not found")
        return row

    def _view(self, row: RequestRow, *, for_customer: bool) -> RequestView:
        rule = self._rules.deadline(row.jurisdiction)
        return RequestView(
            id=row.id,
            subject_id=row.subject_id,
            kind=RequestKind(row.kind),
            state=RequestState(row.state),
            jurisdiction=row.jurisdiction,
            regulation=rule.regulation if rule else "",
            created_at=from_micros(row.created_at),
            deadline_at=from_micros(row.deadline_at),
            verified_at=from_micros(row.verified_at) if row.verified_at else None,
            decided_at=from_micros(row.decided_at) if row.decided_at else None,
            # A customer is told that the DPO decided, not which colleague.
            decided_by="" if for_customer else (row.decided_by or ""),
            decision_reason=row.decision_reason or "",
            proposed_fields=tuple(row.proposed_fields.split(",")) if row.proposed_fields else (),
        )

    def _move(
        self,
        conn: Connection,
        call: CallContext,
        row: RequestRow,
        event: RequestEvent,
        **changes: object,
    ) -> RequestRow:
        """Apply `event` to the locked `row` (the state machine decides), noting the
        transition on the call for its audit entry."""
        target = self._check(call, row, event)
        if not store.move(conn, row.id, row.state, {"state": target.value, **changes}):
            raise FailedPreconditionError("the request was changed concurrently; re-read it")
        call.extra = {**call.extra, "transition": f"{row.state}->{target.value}"}
        moved = RequestRow(**{**row.__dict__, "state": target.value, **changes})
        self._publish(conn, moved, previous=row.state)
        return moved

    def _publish(self, conn: Connection, row: RequestRow, *, previous: str = "") -> None:
        """The request's new state as an event for the organization's systems (the
        outbox), in the same transaction: ids, kind, states and the deadline only."""
        facts = {
            "request_id": row.id,
            "request_type": row.kind,
            "state": row.state,
            "deadline": from_micros(row.deadline_at).isoformat(),
        }
        if previous:
            facts["previous_state"] = previous
        record_event(
            conn,
            tenant=row.tenant,
            subject_id=row.subject_id,
            kind=EventKind.REQUEST_STATE_CHANGED,
            occurred_at=to_micros(self._clock.now()),
            facts=facts,
        )

    def _check(self, call: CallContext, row: RequestRow, event: RequestEvent) -> RequestState:
        """The state `event` leads to; a refusal is recorded on the call as denied."""
        try:
            return next_state(row.id, RequestState(row.state), event)
        except FailedPreconditionError:
            call.deny(f"request is {row.state}", self._policy.version)
            raise
