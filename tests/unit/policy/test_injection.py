"""Request values that try to smuggle policy syntax never widen access.

Casbin builds its matcher from the model and compares request values as strings, but a
value with a comma could split a CSV line and one with matcher syntax could be evaluated
if anything ever formatted it into an expression. Neither happens: every such value,
in any position of the request, is refused (denied, or rejected as an unknown purpose),
never allowed. Tokens and the identity map already refuse such names; this checks the
engine itself, as if a principal had reached it with them anyway.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

from tests.unit.policy.helpers import who
from vault.errors import InvalidArgumentError
from vault.policy import Action, PolicyEngine
from vault.principal import Principal

INJECTIONS = [
    "support_agent, *",
    "support_agent,*,subjects:read,*,*,0,*,allow",
    '*" || "1" == "1',
    "r.sub == p.sub || true",
    ") || (true",
    "true",
    "*",
    "admin\nadmin",
    "p, intern, *, *, *, *, 0, *, allow",
    "g, intern, admin, *",
    "eval(p.sub)",
    "keyMatch(r.act, p.act)",
    "' OR 1=1 --",
    "admin ",
    "ADMIN",
]


GRID = [
    (action, purpose, resource)
    for action in (
        Action.SUBJECT_READ,
        Action.SUBJECT_REVEAL,
        Action.SUBJECT_ERASE,
        Action.AUDIT_READ,
    )
    for purpose in ("support", "marketing", "data_subject_request")
    for resource in ("*", "view:support", "view:full", "class:restricted")
]


def _answers(engine: PolicyEngine, principal: Principal) -> list[bool]:
    """Allowed or not, for every request of the grid."""
    answers = []
    for action, purpose, resource in GRID:
        try:
            decision = engine.decide(principal, action, purpose=purpose, resource=resource)
        except InvalidArgumentError:
            answers.append(False)
        else:
            answers.append(decision.allowed)
    return answers


def _refused(engine: PolicyEngine, principal: Principal, purpose: str, resource: str) -> bool:
    try:
        decision = engine.decide(principal, Action.SUBJECT_READ, purpose=purpose, resource=resource)
    except InvalidArgumentError:
        return True
    return not decision.allowed


@pytest.mark.parametrize("value", INJECTIONS)
def test_an_injected_role_tenant_or_attribute_gains_nothing(
    engine: PolicyEngine, value: str
) -> None:
    # As a role: no more than holding no role at all (which is nothing).
    injected_role = Principal("intern", "acme", frozenset({value}), MappingProxyType({}))
    assert not any(_answers(engine, injected_role))
    # As a tenant: exactly what the same role gets in an ordinary other tenant.
    assert _answers(engine, who("support_lead", tenant=value, clearance="3")) == _answers(
        engine, who("support_lead", tenant="globex", clearance="3")
    )
    # As an attribute: no more than the lowest clearance, or an unknown department.
    for role in ("support_lead", "fraud_analyst", "dpo"):
        lowest = _answers(engine, who(role, clearance="0"))
        assert _no_wider(_answers(engine, who(role, clearance=value)), lowest)
        elsewhere = _answers(engine, who(role, clearance="3", department="nowhere"))
        assert _no_wider(_answers(engine, who(role, clearance="3", department=value)), elsewhere)


def _no_wider(answers: list[bool], baseline: list[bool]) -> bool:
    """Nothing allowed in `answers` that `baseline` refuses."""
    return not any(a and not b for a, b in zip(answers, baseline, strict=True))


@pytest.mark.parametrize("value", INJECTIONS)
def test_an_injected_purpose_or_resource_is_refused(engine: PolicyEngine, value: str) -> None:
    lead = who("support_lead", clearance="3")
    assert _refused(engine, lead, value, "view:support")
    assert _refused(engine, lead, "support", value)
    assert _refused(engine, lead, "support", f"view:{value}")


def test_the_same_requests_without_injection_are_allowed(engine: PolicyEngine) -> None:
    """The control: the values above are refused for what they are, not because these
    requests could never be allowed."""
    lead = who("support_lead", clearance="3")
    assert not _refused(engine, lead, "support", "view:support")
    assert any(_answers(engine, who("support_lead", tenant="globex", clearance="3")))
    assert any(_answers(engine, who("dpo", clearance="0")))
