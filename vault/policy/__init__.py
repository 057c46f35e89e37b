"""Access policy: Casbin RBAC + ABAC over `policies/`, purposes, consent and views.

`PolicyEngine.authorize` raises `PermissionDeniedError` instead of returning a bool
that can be ignored; `plan_view` decides what a caller sees of one subject.
"""

from vault.policy.actions import ANY, SENSITIVITY_CLASSES, Action, class_resource, view_resource
from vault.policy.decisions import DEFAULT_DENY, Decision
from vault.policy.engine import PolicyEngine
from vault.policy.errors import PolicyConfigError
from vault.policy.purposes import LegalBasis, Purpose, Purposes
from vault.policy.subject import SubjectContext
from vault.policy.view_decision import ViewDecision

__all__ = [
    "ANY",
    "DEFAULT_DENY",
    "SENSITIVITY_CLASSES",
    "Action",
    "Decision",
    "LegalBasis",
    "PolicyConfigError",
    "PolicyEngine",
    "Purpose",
    "Purposes",
    "SubjectContext",
    "ViewDecision",
    "class_resource",
    "view_resource",
]
