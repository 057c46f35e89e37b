"""The checks every subject operation goes through: policy, tenant ownership, and the
subject's state (and, for reads, consent), each in this one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from vault import telemetry
from vault.context import CallContext
from vault.crypto import is_subject_id
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from vault.policy import Action, PolicyEngine, SubjectContext
from vault.policy.subject import STATE_RULE
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
    call.policy_action, call.policy_resource = action.value, resource
    call.policy_purpose = purpose or ""
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

    A subject of another tenant, or for a customer any subject but its own, is
    indistinguishable from a missing one to the caller, but the audit log records the
    attempt as denied.
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
    """`row` if it is a subject of the caller's tenant (and, for a customer, its own
    subject); `NotFoundError` otherwise.

    A subject of another tenant, or another customer's, is indistinguishable from a
    missing one to the caller, but the audit log records the attempt as denied.
    """
    if row is None:
        raise NotFoundError("subject not found")
    if row.meta.tenant != principal.tenant:
        call.deny("cross-tenant access refused")
        raise NotFoundError("subject not found")
    if principal.subject is not None and principal.subject != row.meta.id:
        call.deny("customer bound to another subject")
        raise NotFoundError("subject not found")
    return row


def check_subject(
    policy: PolicyEngine,
    call: CallContext,
    action: Action,
    subject: SubjectContext,
    *,
    purpose: str | None = None,
) -> SubjectContext:
    """The subject-state rule (and consent, for reads), the same for every path.

    Every operation that changes or uses one stored subject calls this after loading it
    (vault/policy/subject.py decides): a restricted subject refuses everything but the
    actions and purposes allowed then (the data-subject-request rectification and
    erasure, lifting the restriction, consent records, legal holds); an erased or
    anonymized one everything but erasing again and reading its history; a legal hold
    refuses erasure. A state refusal is FAILED_PRECONDITION, a consent or opt-out
    refusal PERMISSION_DENIED; either is recorded on the call for the audit entry.
    `subject` is built from storage (`vault.consent.models.subject_context`).
    """
    refusal = policy.check_subject(action, purpose, subject)
    if refusal is not None:
        call.deny(refusal.rule, policy.version)
        if refusal.rule.startswith(STATE_RULE):
            raise FailedPreconditionError(refusal.reason)
        raise PermissionDeniedError(refusal.reason, refusal.rule)
    return subject


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


def stated_justification(
    policy: PolicyEngine,
    call: CallContext,
    text: str,
    *,
    purpose: str,
    view: str | None = None,
    field: str = "justification",
    always: bool = False,
) -> str:
    """The caller's justification for a use for `purpose` (through `view`), checked
    against the policy's rule (`PolicyEngine.justification_rule`) and put on the call
    for the audit entry. Refused with INVALID_ARGUMENT when missing where the policy
    needs one (or `always`), or when it cites no case reference where the purpose
    needs one."""
    rule = policy.justification_rule(purpose, view)
    trimmed = justification(text, field, required=always or rule.required)
    if rule.case_reference is not None and not rule.case_reference.search(trimmed):
        raise InvalidArgumentError(
            [FieldViolation(field, "must cite the case reference (e.g. DSR-2026-114)")]
        )
    call.justification = trimmed
    return trimmed
