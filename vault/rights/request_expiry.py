"""Requests that lapse on their own: one whose statutory deadline passed while it still
awaited the customer's re-verification becomes `expired` without anyone touching it.

The leader process runs `RequestExpiry.expire_due` in its background work (every
`request_expiry_interval_seconds`). Each lapse is the state machine's `expire`, applied
like any other transition: a conditional UPDATE, a `request_state_changed` event and an
audit entry (action ExpireDataSubjectRequest, actor `request-expiry`) in the same
transaction, a batch at a time. A customer who verifies an overdue request first gets
the same outcome from `CustomerRequests.verify`.
"""

from __future__ import annotations

import logging
import uuid

from vault.audit_actions import AuditAction
from vault.audit_trail import system_entry
from vault.clock import to_micros
from vault.principal import Principal
from vault.rights.request_base import RequestBase
from vault.rights.request_states import RequestEvent, RequestState, next_state
from vault.storage import subject_requests as store
from vault.storage.subject_requests import RequestRow

log = logging.getLogger(__name__)

EXPIRY_PRINCIPAL = "request-expiry"
"""The actor of the entries this work writes."""
BATCH = 200
_ROLES = frozenset({"system"})
_REASON = "deadline passed before the customer re-verified the request"


class RequestExpiry(RequestBase):
    """Moves overdue requests still awaiting verification to `expired`."""

    def expire_due(self) -> bool:
        """One batch of overdue requests expired; True while more are waiting (a
        `PeriodicTask` runs again at once)."""
        now = self._clock.now()
        awaiting = RequestState.AWAITING_VERIFICATION
        run = uuid.uuid4().hex
        with self._db.write() as conn:
            due = store.overdue(conn, awaiting.value, to_micros(now), limit=BATCH)
            entries = []
            for row in due:
                target = next_state(row.id, awaiting, RequestEvent.EXPIRE)
                if not store.move(conn, row.id, row.state, {"state": target.value}):
                    continue  # verified or cancelled meanwhile
                moved = RequestRow(**{**row.__dict__, "state": target.value})
                self._publish(conn, moved, previous=row.state)
                entries.append(
                    system_entry(
                        now,
                        Principal(EXPIRY_PRINCIPAL, row.tenant, _ROLES),
                        AuditAction.EXPIRE_DATA_SUBJECT_REQUEST,
                        row.subject_id,
                        reason=_REASON,
                        policy_version=self._policy.version,
                        request_id=run,
                        extra={
                            "request": row.id,
                            "kind": row.kind,
                            "transition": f"{row.state}->{target.value}",
                        },
                    )
                )
            self._auditor.record_entries_in(conn, entries)
        if entries:
            log.info("expired %d requests never re-verified before their deadline", len(entries))
        return len(due) >= BATCH
