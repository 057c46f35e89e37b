"""The vault's side of the audit log: turns a CallContext into an `audit.AuditEntry`.

Changes are recorded inside the change's own transaction (`record_in`); reads through
the group-commit writer before any data leaves (`record`), failing closed. A server that
runs a read on its event loop sets `deferred_appends` for the call: `record` then hands
the entries over without waiting, and the server awaits them before it sends anything
(`vault.api.runner`).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import audit
from audit.entry_rules import MAX_EXTRA_ITEMS, MAX_LIST_ITEMS
from vault import telemetry
from vault.audit_actions import AuditAction
from vault.clock import Clock, to_micros
from vault.context import CallContext
from vault.crypto import is_subject_id
from vault.errors import UnavailableError
from vault.principal import Principal
from vault.storage.db import translate

log = logging.getLogger(__name__)

UNAUTHENTICATED = "(unauthenticated)"
"""The actor of an entry for a call whose credentials did not verify."""
NO_TENANT = "(none)"
# Characters the log refuses in free text; request text is cleaned, not allowed to fail
# the entry (a refused call with a hostile reason must still be audited).
_FREE_TEXT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ONE_LINE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
# The log takes at most MAX_EXTRA_ITEMS extra items; the auditor adds up to nine itself.
_MAX_CALL_EXTRA = MAX_EXTRA_ITEMS - 9
# The principal's attributes the policy reads, copied into the entry beside the policy
# question so that a past decision can be asked again (`policy simulate`, `audit
# explain`): a clearance level and a department name, never personal data.
POLICY_ATTRIBUTES = ("clearance", "department")

deferred_appends: ContextVar[list[audit.PendingAppend] | None] = ContextVar(
    "deferred_appends", default=None
)
"""Set (to an empty list) by a caller that will itself wait for the call's group-commit
entries before releasing anything: `Auditor.record` appends their `PendingAppend`s
instead of waiting. Unset, `record` waits for the commit."""


class Auditor:
    """Writes one audit entry per call, through the process's `audit.AuditLog`."""

    def __init__(self, log: audit.AuditLog, clock: Clock, *, timeout: float = 10.0) -> None:
        self._log = log
        self._clock = clock
        self._timeout = timeout

    def entries(self, call: CallContext, result_code: str) -> list[audit.AuditEntry]:
        """The call's entry, split when it links more subjects than one entry may hold
        (`MAX_LIST_ITEMS`): every part carries the same facts and a ``part`` of
        ``n/total``, so a call touching any number of subjects is audited in full
        instead of failing on its entry."""
        ids = [sid for sid in call.subject_ids if is_subject_id(sid)]
        if len(ids) <= MAX_LIST_ITEMS:
            return [self.entry(call, result_code)]
        chunks = [ids[i : i + MAX_LIST_ITEMS] for i in range(0, len(ids), MAX_LIST_ITEMS)]
        return [
            self.entry(
                replace(
                    call,
                    subject_ids=chunk,
                    extra={**call.extra, "part": f"{number}/{len(chunks)}"},
                ),
                result_code,
            )
            for number, chunk in enumerate(chunks, start=1)
        ]

    def entry(self, call: CallContext, result_code: str) -> audit.AuditEntry:
        """The call's one entry; a list or extra too large for the log is cut to fit
        (`entries` splits the subject list instead, so none is lost)."""
        principal = call.principal
        return audit.AuditEntry(
            time=self._clock.now(),
            actor=principal.id if principal else UNAUTHENTICATED,
            actor_roles=tuple(sorted(principal.roles)) if principal else (),
            tenant=principal.tenant if principal else NO_TENANT,
            action=call.action.value,
            subject_ids=tuple(sid for sid in call.subject_ids if is_subject_id(sid))[
                :MAX_LIST_ITEMS
            ],
            field_names=tuple(n for n in call.field_names if _is_name(n))[:MAX_LIST_ITEMS],
            purpose=call.purpose if not call.purpose or _is_name(call.purpose) else "",
            justification=_clean(call.justification, _FREE_TEXT_FORBIDDEN, audit.MAX_JUSTIFICATION),
            decision=audit.ALLOW if call.decision == audit.ALLOW else audit.DENY,
            reason=_clean(call.reason, _ONE_LINE_FORBIDDEN, 4 * audit.MAX_SHORT),
            policy_version=call.policy_version,
            consent_version=call.consent_version,
            result_code=result_code,
            request_id=call.request_id,
            trace_id=call.trace_id,
            caller_address=call.caller_address,
            extra=_extra(call),
        )

    def record_in(self, conn: Connection, call: CallContext, result_code: str = "OK") -> None:
        """Append the call's entry inside `conn`'s transaction (commits with the change).

        If the log refuses the entry, the change fails with it: `UnavailableError`, or
        what the driver error means (a full disk is `ResourceExhaustedError`).
        """
        try:
            with telemetry.audit_write("in_transaction"):
                self._log.append_in(conn, self.entries(call, result_code))
        except sa.exc.SQLAlchemyError as exc:
            log.error("audit log refused an entry (%s); failing the change", type(exc).__name__)  # noqa: TRY400
            translated = translate(exc)
            if translated is exc:
                raise UnavailableError("audit log unavailable") from exc
            raise translated from exc
        call.audited = True

    def record_entries_in(self, conn: Connection, entries: list[audit.AuditEntry]) -> None:
        """Append entries the vault's own background work built (`system_entry`) inside
        `conn`'s transaction: they commit with its change, or neither does."""
        if entries:
            with telemetry.audit_write("in_transaction"):
                self._log.append_in(conn, entries)

    def record(self, call: CallContext, result_code: str = "OK") -> None:
        """Append and wait for the commit (or, under `deferred_appends`, hand the entries
        to the one who will wait); `UnavailableError` if the log cannot be written."""
        deferred = deferred_appends.get()
        try:
            with telemetry.audit_write("group_commit"):
                for entry in self.entries(call, result_code):
                    if deferred is None:
                        self._log.append(entry, timeout=self._timeout)
                    else:
                        deferred.append(self._log.submit(entry))
        except audit.AuditUnavailableError as exc:
            log.error("audit log unavailable; failing the call closed")  # noqa: TRY400
            raise UnavailableError("audit log unavailable") from exc
        call.audited = True


def _is_name(value: str) -> bool:
    return audit.NAME_PATTERN.fullmatch(value) is not None


def _clean(text: str, forbidden: re.Pattern[str], limit: int) -> str:
    return forbidden.sub("\ufffd", text)[:limit]


def _extra(call: CallContext) -> dict[str, str]:
    """The call's extra facts; a subject id not shaped like one is noted, never copied
    (request text must not reach the log: it could be an e-mail address)."""
    extra = {
        key: _clean(value, _ONE_LINE_FORBIDDEN, audit.MAX_SHORT)
        for key, value in list(call.extra.items())[:_MAX_CALL_EXTRA]
        if _is_name(key)
    }
    if len(extra) < len(call.extra):
        extra["extra_dropped"] = str(len(call.extra) - len(extra))
    if any(not is_subject_id(sid) for sid in call.subject_ids):
        extra["malformed_subject_id"] = "true"
    names = [*call.field_names, *([call.purpose] if call.purpose else [])]
    if not all(_is_name(n) for n in names):
        extra["malformed_name"] = "true"
    if call.policy_action:
        extra["policy_action"] = call.policy_action
        extra["policy_resource"] = _clean(
            call.policy_resource, _ONE_LINE_FORBIDDEN, audit.MAX_SHORT
        )
        if call.policy_purpose != call.purpose:  # asked without (or with another) purpose
            extra["policy_purpose"] = call.policy_purpose if _is_name(call.policy_purpose) else ""
        attributes = call.principal.attributes if call.principal else {}
        for name in POLICY_ATTRIBUTES:
            value = attributes.get(name, "")
            if value:
                extra[name] = _clean(value, _ONE_LINE_FORBIDDEN, audit.MAX_SHORT)
    return extra


def checkpoint_lag(engine: Engine, now: datetime) -> tuple[int, float]:
    """How far the signed checkpoints trail the log: entries not yet integrated, and the
    oldest one's age in seconds."""
    pending = audit.backlog(engine)
    oldest = pending.oldest_time_us
    age = 0.0 if oldest is None else max(0.0, (to_micros(now) - oldest) / 1_000_000)
    return pending.count, age


def system_entry(
    time: datetime,
    principal: Principal,
    action: AuditAction,
    subject_id: str,
    *,
    reason: str,
    policy_version: str,
    request_id: str,
    field_names: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> audit.AuditEntry:
    """The allowed, successful entry of one step of the vault's own background work
    (the retention job writes one per subject), built without a `CallContext`: the
    same entry `Auditor.entry` would make, for names and ids the vault chose itself."""
    return audit.AuditEntry(
        time=time,
        actor=principal.id,
        actor_roles=tuple(sorted(principal.roles)),
        tenant=principal.tenant,
        action=action.value,
        subject_ids=(subject_id,),
        field_names=field_names,
        decision=audit.ALLOW,
        reason=reason,
        policy_version=policy_version,
        result_code="OK",
        request_id=request_id,
        extra=extra or {},
    )
