"""The policy question an audit entry recorded, and a caller that asks it again.

`vault.access.guard.authorize` records the question on the call (action and resource)
and the auditor copies it into the entry's `extra`, with the caller's clearance and
department (`vault.audit_trail.POLICY_ATTRIBUTES`). Entries without it (written before
this was recorded, or calls that never reached the policy) cannot be asked again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import audit
from vault.audit_trail import POLICY_ATTRIBUTES
from vault.policy import Action
from vault.policy.actions import CLASS_PREFIX, VIEW_PREFIX
from vault.principal import Principal

VIEW_ACTIONS = frozenset({Action.SUBJECT_READ, Action.SUBJECT_FIND, Action.SUBJECT_EXPORT})


@dataclass(frozen=True)
class Question:
    """Everything a policy decision reads: who (roles, tenant, attributes), what,
    for which purpose, on which resource. Hashable: identical questions are cached."""

    roles: frozenset[str]
    tenant: str
    clearance: str
    department: str
    action: Action
    purpose: str
    resource: str

    @property
    def principal(self) -> Principal:
        """A caller carrying exactly what the policy reads (no id: decisions never use it)."""
        attributes = {
            name: value
            for name, value in zip(
                POLICY_ATTRIBUTES, (self.clearance, self.department), strict=True
            )
            if value
        }
        return Principal("", self.tenant, self.roles, MappingProxyType(attributes))

    @property
    def view(self) -> str:
        """The view a subjects:read/find/export asked for, else empty."""
        if self.action in VIEW_ACTIONS and self.resource.startswith(VIEW_PREFIX):
            return self.resource[len(VIEW_PREFIX) :]
        return ""

    @property
    def sensitivity(self) -> str:
        """The sensitivity class the resource names, ``-`` for none."""
        if self.resource.startswith(CLASS_PREFIX):
            return self.resource[len(CLASS_PREFIX) :]
        return "-"

    @property
    def role_key(self) -> str:
        """The roles, sorted and joined by ``+`` (how reports group callers)."""
        return "+".join(sorted(self.roles)) or "(none)"


def question_of(entry: audit.AuditEntry) -> Question | None:
    """The question `entry` recorded, or None when it recorded none."""
    return question_from(entry.actor_roles, entry.tenant, entry.purpose, entry.extra)


def question_in(document: Mapping[str, Any]) -> Question | None:
    """The question an entry's JSON document (`audit.iter_documents`) recorded."""
    return question_from(
        document.get("actor_roles", ()),
        document.get("tenant", ""),
        document.get("purpose", ""),
        document.get("extra", {}),
    )


@functools.lru_cache(maxsize=65_536)
def _question(
    roles: tuple[str, ...], tenant: str, purpose: str, extra: tuple[tuple[str, str], ...]
) -> Question | None:
    return _build(roles, tenant, purpose, dict(extra))


def question_from(
    roles: Iterable[str], tenant: str, purpose: str, extra: Mapping[str, str]
) -> Question | None:
    """The question recorded by an entry's roles, tenant, purpose and extra."""
    if "policy_action" not in extra:
        return None
    keys = ("policy_action", "policy_resource", "policy_purpose", *POLICY_ATTRIBUTES)
    recorded = tuple((k, extra[k]) for k in keys if k in extra)
    return _question(tuple(roles), tenant, purpose, recorded)


def _build(
    roles: tuple[str, ...], tenant: str, purpose: str, extra: Mapping[str, str]
) -> Question | None:
    raw = extra.get("policy_action", "")
    if not raw:
        return None
    try:
        action = Action(raw)
    except ValueError:
        return None
    return Question(
        roles=frozenset(roles),
        tenant=tenant,
        clearance=extra.get("clearance", ""),
        department=extra.get("department", ""),
        action=action,
        purpose=extra.get("policy_purpose", purpose),
        resource=extra.get("policy_resource", "*") or "*",
    )
