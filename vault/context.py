"""Per-call facts that travel from the interceptors through the domain to the audit log.

The authentication interceptor fills in the principal; the domain adds what it decided
(subjects, field names, purpose, decision and the rule) and marks the call audited when
it wrote the entry itself (inside its own transaction, or before returning read data).
The audit interceptor writes the entry for every call that ends without one, so each
call leaves exactly one entry, allowed, denied or failed.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from vault.audit_actions import AuditAction
from vault.errors import UnauthenticatedError
from vault.principal import Principal


@dataclass
class CallContext:
    """Everything the audit entry of one RPC needs. Never holds a PII value."""

    method: str
    request_id: str
    caller_address: str = ""
    trace_id: str = ""
    principal: Principal | None = None
    subject_ids: list[str] = field(default_factory=list)
    field_names: list[str] = field(default_factory=list)
    purpose: str = ""
    justification: str = ""
    decision: str = "deny"
    reason: str = ""
    policy_version: str = ""
    consent_version: str = ""
    policy_action: str = ""
    """The policy question the call's decision answered (`vault.access.guard.authorize`
    sets it): its action and resource, so `policy simulate` can ask it again."""
    policy_resource: str = ""
    policy_purpose: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    audited: bool = False

    @property
    def action(self) -> AuditAction:
        """The RPC's action in the catalogue (``GetSubject``), as the audit log records it."""
        return AuditAction.of_method(self.method)

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise UnauthenticatedError("authentication required")
        return self.principal

    def allow(self, rule: str, policy_version: str) -> None:
        self.decision, self.reason, self.policy_version = "allow", rule, policy_version

    def deny(self, reason: str, policy_version: str = "") -> None:
        self.decision, self.reason = "deny", reason
        if policy_version:
            self.policy_version = policy_version


current_call: ContextVar[CallContext | None] = ContextVar("current_call", default=None)


def require_call() -> CallContext:
    """The current call's context; the interceptor chain always sets one before a
    servicer runs, so its absence is a wiring bug."""
    call = current_call.get()
    if call is None:
        raise RuntimeError("no call context")
    return call
