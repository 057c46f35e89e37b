"""The two checks every subject operation starts with: policy, then tenant ownership."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from vault import telemetry
from vault.context import CallContext
from vault.crypto import is_subject_id
from vault.errors import FieldViolation, InvalidArgumentError, NotFoundError, PermissionDeniedError
from vault.policy import Action, PolicyEngine
from vault.principal import Principal
from vault.storage import subjects as repo
from vault.storage.subject_reads import subject_with_consent
from vault.storage.subjects import SubjectRow


def authorize(
    policy: PolicyEngine,
    call: CallContext,
    action: Action,
    *,
    purpose: str | None = None,
    resource: str = "*",
) -> Principal:
    """Ask the policy; record the decision and its rule on the call either way."""
    principal = call.require_principal()
    try:
        with telemetry.span("policy.authorize", action=action.value):
            decision = policy.authorize(principal, action, purpose=purpose, resource=resource)
    except PermissionDeniedError as exc:
        call.deny(exc.rule or exc.reason, policy.version)
        raise
    call.allow(decision.rule, policy.version)
    return principal


def load_own_subject(
    conn: Connection,
    call: CallContext,
    principal: Principal,
    subject_id: str,
    *,
    for_update: bool = False,
) -> SubjectRow:
    """The subject, if it belongs to the caller's tenant.

    A subject of another tenant is indistinguishable from a missing one to the caller,
    but the audit log records the attempt as denied.
    """
    row = repo.get(conn, subject_id, for_update=for_update) if is_subject_id(subject_id) else None
    return own_subject(call, principal, row)


def load_own_subject_with_consent(
    conn: Connection, call: CallContext, principal: Principal, subject_id: str
) -> tuple[SubjectRow, list[dict[str, Any]]]:
    """`load_own_subject` and the subject's consent ledger rows, in one statement."""
    row, events = (
        subject_with_consent(conn, subject_id) if is_subject_id(subject_id) else (None, [])
    )
    return own_subject(call, principal, row), events


def own_subject(call: CallContext, principal: Principal, row: SubjectRow | None) -> SubjectRow:
    """`row` if it is a subject of the caller's tenant; `NotFoundError` otherwise.

    A subject of another tenant is indistinguishable from a missing one to the caller,
    but the audit log records the attempt as denied.
    """
    if row is None:
        raise NotFoundError("subject not found")
    if row.meta.tenant != principal.tenant:
        call.deny("cross-tenant access refused")
        raise NotFoundError("subject not found")
    return row


MAX_JUSTIFICATION = 500


def justification(text: str, field: str, *, required: bool) -> str:
    """A caller's reason or justification, trimmed; refused when missing or too long.

    It goes to the audit log as written, so callers must cite tickets or cases, not
    personal data (docs/security.md).
    """
    trimmed = text.strip()
    if required and not trimmed:
        raise InvalidArgumentError([FieldViolation(field, "must say why")])
    if len(trimmed) > MAX_JUSTIFICATION:
        raise InvalidArgumentError(
            [FieldViolation(field, f"at most {MAX_JUSTIFICATION} characters")]
        )
    return trimmed
