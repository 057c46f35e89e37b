"""What a data-subject request is, and the one table of how its state may change.

    awaiting_verification --verify--> pending_decision --approve--> fulfilled
            |                              |         \\--reject---> rejected
            +--cancel--> cancelled <--cancel+
            +--expire--> expired  (the deadline passed before the customer re-verified)

Only a request the customer re-verified can be decided; fulfilled, rejected, cancelled
and expired are final.
"""

from __future__ import annotations

import re
from enum import StrEnum

from vault.errors import FailedPreconditionError, PreconditionViolation


class RequestKind(StrEnum):
    """What the customer asks for (GDPR art. 16, 18, 17; PIPL art. 46, 47)."""

    RECTIFICATION = "rectification"
    RESTRICTION = "restriction"
    ERASURE = "erasure"


class RequestState(StrEnum):
    """Where a request stands."""

    AWAITING_VERIFICATION = "awaiting_verification"
    PENDING_DECISION = "pending_decision"
    FULFILLED = "fulfilled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_open(self) -> bool:
        return self not in _FINAL


class RequestEvent(StrEnum):
    """What happens to a request."""

    VERIFY = "verify"
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"


_FINAL = frozenset(
    {RequestState.FULFILLED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.EXPIRED}
)

TRANSITIONS: dict[tuple[RequestState, RequestEvent], RequestState] = {
    (RequestState.AWAITING_VERIFICATION, RequestEvent.VERIFY): RequestState.PENDING_DECISION,
    (RequestState.AWAITING_VERIFICATION, RequestEvent.CANCEL): RequestState.CANCELLED,
    (RequestState.AWAITING_VERIFICATION, RequestEvent.EXPIRE): RequestState.EXPIRED,
    (RequestState.PENDING_DECISION, RequestEvent.APPROVE): RequestState.FULFILLED,
    (RequestState.PENDING_DECISION, RequestEvent.REJECT): RequestState.REJECTED,
    (RequestState.PENDING_DECISION, RequestEvent.CANCEL): RequestState.CANCELLED,
}
"""Every allowed change; anything else is refused."""

_ID = re.compile(r"DSR-[0-9]{8}-[A-Z2-7]{10}")


def is_request_id(text: str) -> bool:
    """True for text shaped like a request id (`DSR-<yyyymmdd>-<10 base32>`): checked
    before any lookup, so no other text reaches a query or the audit log."""
    return _ID.fullmatch(text) is not None


def next_state(request_id: str, state: RequestState, event: RequestEvent) -> RequestState:
    """The state after `event`; FAILED_PRECONDITION with PreconditionFailure details when
    the request's state does not allow it (deciding an unverified request names the
    missing re-verification)."""
    target = TRANSITIONS.get((state, event))
    if target is not None:
        return target
    subject = f"requests/{request_id}"
    if state is RequestState.AWAITING_VERIFICATION and event in (
        RequestEvent.APPROVE,
        RequestEvent.REJECT,
    ):
        raise FailedPreconditionError(
            "the customer has not re-verified this request yet",
            [
                PreconditionViolation(
                    "VERIFICATION", subject, "the customer must confirm the request first"
                )
            ],
        )
    raise FailedPreconditionError(
        f"the request is {state.value}",
        [PreconditionViolation("STATE", subject, f"cannot {event.value} a {state.value} request")],
    )
