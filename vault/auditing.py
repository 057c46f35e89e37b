"""The vault's side of the audit log: turns a CallContext into an `audit.AuditEntry`.

Changes are recorded inside the change's own transaction (`record_in`); reads through
the group-commit writer before any data leaves (`record`), failing closed.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

import audit
from vault.clock import Clock
from vault.context import CallContext
from vault.errors import UnavailableError

log = logging.getLogger(__name__)


class Auditor:
    """Writes one audit entry per call."""

    def __init__(self, writer: audit.GroupCommitWriter, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    def entry(self, call: CallContext, result_code: str) -> audit.AuditEntry:
        principal = call.principal
        return audit.AuditEntry(
            time=self._clock.now(),
            actor=principal.id if principal else "",
            actor_roles=tuple(sorted(principal.roles)) if principal else (),
            tenant=principal.tenant if principal else "",
            action=call.action,
            subject_ids=tuple(call.subject_ids),
            field_names=tuple(call.field_names),
            purpose=call.purpose,
            justification=call.justification,
            decision=call.decision,
            reason=call.reason,
            policy_version=call.policy_version,
            consent_version=call.consent_version,
            result_code=result_code,
            request_id=call.request_id,
            trace_id=call.trace_id,
            caller_address=call.caller_address,
            extra=dict(call.extra),
        )

    def record_in(self, conn: Connection, call: CallContext, result_code: str = "OK") -> None:
        """Append the call's entry inside `conn`'s transaction (commits with the change)."""
        audit.append_in(conn, [self.entry(call, result_code)])
        call.audited = True

    def record(self, call: CallContext, result_code: str = "OK") -> None:
        """Append and wait for the commit; `UnavailableError` if the log cannot be written."""
        try:
            self._writer.append(self.entry(call, result_code))
        except audit.AuditUnavailableError as exc:
            log.error("audit log unavailable; failing the call closed")
            raise UnavailableError("audit log unavailable") from exc
        call.audited = True
