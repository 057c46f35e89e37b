# One case per line keeps the tables readable; they are wider than the line limit.
# ruff: noqa: E501
"""The real policy, table by table: role x view x purpose, role x field class x purpose,
and role x action for everything that is not a read.

Every combination not listed in a table is expected to be refused.
"""

from __future__ import annotations

import itertools

import pytest

from tests.data import (
    FIELDS,
    PURPOSES,
    READ_GRANTS,
    ROLES,
    SUPPORT_OUTCOMES,
    VIEWS,
)
from tests.unit.policy.helpers import POLICIES, who
from vault.errors import InvalidArgumentError, PermissionDeniedError
from vault.policy import SENSITIVITY_CLASSES, Action, PolicyEngine, SubjectContext
from vault.views.model import Outcome, ViewPlan

# Consent given for everything: these tables are about the policy, not the subject.
SUBJECT = SubjectContext("active", consented_purposes=frozenset(PURPOSES))


def _outcomes(plan: ViewPlan) -> dict[str, str]:
    result = {}
    for item in plan.fields:
        if item.outcome is Outcome.WITHHELD:
            result[item.field] = f"withheld:{item.reason}"
        elif item.strategy:
            result[item.field] = f"{item.outcome}:{item.strategy}"
        else:
            result[item.field] = str(item.outcome)
    return result


@pytest.mark.parametrize(
    ("role", "view", "purpose"), list(itertools.product(ROLES, VIEWS, PURPOSES))
)
def test_read_through_a_view(engine: PolicyEngine, role: str, view: str, purpose: str) -> None:
    expected = READ_GRANTS.get((role, view, purpose))
    caller = who(role)
    if expected is None:
        with pytest.raises(PermissionDeniedError):
            engine.plan_view(caller, view, purpose, Action.SUBJECT_READ, FIELDS, SUBJECT)
        return
    decided = engine.plan_view(caller, view, purpose, Action.SUBJECT_READ, FIELDS, SUBJECT)
    assert _outcomes(decided.plan) == expected
    assert decided.subject_rule == ""
    assert decided.rule.startswith("p, ") and f"view:{view}" in decided.rule
    assert decided.policy_version == engine.version


def test_clearance_2_lets_support_see_confidential_fields_the_view_shows_in_clear(
    engine: PolicyEngine,
) -> None:
    for clearance, notes in (("1", "masked:redact"), ("2", "clear"), ("9", "clear")):
        caller = who("support_agent", clearance=clearance)
        plan = engine.plan_view(caller, "support", "support", Action.SUBJECT_READ, FIELDS, SUBJECT)
        assert _outcomes(plan.plan) == {**SUPPORT_OUTCOMES, "notes": notes}


@pytest.mark.parametrize("role", ["support_agent", "marketing", "analyst", "dpo"])
def test_admin_or_service_alongside_any_role_reads_nothing(engine: PolicyEngine, role: str) -> None:
    view, purpose = next((v, p) for (r, v, p) in READ_GRANTS if r == role)
    for guard in ("admin", "service"):
        with pytest.raises(PermissionDeniedError) as caught:
            engine.plan_view(who(role, guard), view, purpose, Action.SUBJECT_READ, FIELDS, SUBJECT)
        assert caught.value.rule.startswith(f"p, {guard}, ") and caught.value.rule.endswith("deny")


# (role, purpose) -> what fields:clear / fields:masked allow per class, no attributes.
C, M, N = "clear", "masked", "none"
CLASS_GRANTS = {
    ("support_agent", "support"): dict(zip(SENSITIVITY_CLASSES, (C, C, M, M), strict=True)),
    ("support_lead", "support"): dict(zip(SENSITIVITY_CLASSES, (C, C, M, M), strict=True)),
    ("marketing", "marketing"): dict(zip(SENSITIVITY_CLASSES, (C, C, C, N), strict=True)),
    ("marketing", "personalization"): dict(zip(SENSITIVITY_CLASSES, (C, C, M, N), strict=True)),
    ("marketing", "sharing"): dict(zip(SENSITIVITY_CLASSES, (C, C, M, N), strict=True)),
    ("analyst", "analytics"): dict(zip(SENSITIVITY_CLASSES, (C, C, M, N), strict=True)),
    ("fraud_analyst", "fraud"): dict(zip(SENSITIVITY_CLASSES, (C, C, C, M), strict=True)),
    ("dpo", "data_subject_request"): dict.fromkeys(SENSITIVITY_CLASSES, C),
    ("dpo", "legal"): dict.fromkeys(SENSITIVITY_CLASSES, C),
    ("customer", "data_subject_request"): dict.fromkeys(SENSITIVITY_CLASSES, C),
}


@pytest.mark.parametrize(
    ("role", "sensitivity", "purpose"),
    list(itertools.product(ROLES, SENSITIVITY_CLASSES, PURPOSES)),
)
def test_field_class_grants(
    engine: PolicyEngine, role: str, sensitivity: str, purpose: str
) -> None:
    grant = CLASS_GRANTS.get((role, purpose), {}).get(sensitivity, N)
    resource = f"class:{sensitivity}"
    clear = engine.decide(who(role), Action.FIELD_CLEAR, purpose=purpose, resource=resource)
    masked = engine.decide(who(role), Action.FIELD_MASKED, purpose=purpose, resource=resource)
    assert (clear.allowed, masked.allowed) == (grant == C, grant in (C, M))


# Actions that name no purpose: role -> the ones it may perform (resource *).
NO_PURPOSE = (
    Action.SUBJECT_CREATE,
    Action.SUBJECT_UPDATE,
    Action.SUBJECT_ERASE,
    Action.ACTIVITY_RECORD,
    Action.AUDIT_READ,
    Action.AUDIT_VERIFY,
    Action.CONSENT_WRITE,
    Action.CONSENT_READ,
    Action.RIGHTS_ACCESS,
    Action.RIGHTS_RECTIFY,
    Action.RIGHTS_RESTRICT,
    Action.RIGHTS_ERASE,
    Action.RETENTION_ADMIN,
    Action.LEGAL_HOLD,
    Action.KEYS_ADMIN,
    Action.POLICY_ADMIN,
    Action.CUSTOMER_ISSUE,
    Action.AUDIT_READ_OWN,
    Action.NOTICE_READ,
    Action.REQUEST_SUBMIT,
    Action.REQUEST_READ_OWN,
    Action.REQUEST_READ,
    Action.REQUEST_DECIDE,
)
COMPLIANCE = {Action.AUDIT_READ, Action.AUDIT_VERIFY, Action.CONSENT_READ, Action.REQUEST_READ}
ACTION_GRANTS = {
    "service": {
        Action.SUBJECT_CREATE,
        Action.SUBJECT_UPDATE,
        Action.SUBJECT_ERASE,
        Action.ACTIVITY_RECORD,
        Action.CONSENT_WRITE,
        Action.CONSENT_READ,
    },
    "support_agent": {Action.CONSENT_READ},
    "support_lead": {Action.CONSENT_READ},
    "compliance_officer": COMPLIANCE,
    "frontend": {Action.CUSTOMER_ISSUE, Action.NOTICE_READ, Action.REQUEST_READ},
    "dpo": COMPLIANCE
    | {
        Action.SUBJECT_ERASE,
        Action.CONSENT_WRITE,
        Action.RIGHTS_ACCESS,
        Action.RIGHTS_RECTIFY,
        Action.RIGHTS_RESTRICT,
        Action.RIGHTS_ERASE,
        Action.LEGAL_HOLD,
        Action.REQUEST_DECIDE,
    },
    "customer": {
        Action.ACTIVITY_RECORD,
        Action.CONSENT_WRITE,
        Action.CONSENT_READ,
        Action.AUDIT_READ_OWN,
        Action.RIGHTS_ACCESS,
        Action.NOTICE_READ,
        Action.REQUEST_SUBMIT,
        Action.REQUEST_READ_OWN,
    },
    "admin": {
        Action.KEYS_ADMIN,
        Action.POLICY_ADMIN,
        Action.RETENTION_ADMIN,
        Action.LEGAL_HOLD,
        Action.AUDIT_VERIFY,
    },
}


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROLES, NO_PURPOSE)))
def test_actions_without_purpose(engine: PolicyEngine, role: str, action: Action) -> None:
    allowed = action in ACTION_GRANTS.get(role, set())
    assert engine.decide(who(role), action).allowed is allowed
    if allowed:
        rule = engine.authorize(who(role), action).rule
        area = action.value.partition(":")[0]
        assert rule.startswith("p, ") and rule.endswith(", allow") and f", {area}:" in rule
    else:
        with pytest.raises(PermissionDeniedError):
            engine.authorize(who(role), action)


# Who may mint which token (Tokenize names a purpose): (role, purpose) -> per class,
# R = random tokens only, D = random and deterministic, N = none. A deterministic token
# needs fields:clear on the class for the purpose, or the narrow tokens:deterministic.
R, D = "random", "deterministic"
TOKEN_GRANTS = {
    # service: random tokens for any purpose (consent decides per subject), never of
    # a national id for marketing, personalization, sharing or analytics; never
    # deterministic ones (the probe-subject oracle, issue 26).
    **{
        ("service", p): dict(zip(SENSITIVITY_CLASSES, (R, R, R, R), strict=True))
        for p in ("support", "fraud", "legal", "data_subject_request")
    },
    **{
        ("service", p): dict(zip(SENSITIVITY_CLASSES, (R, R, R, N), strict=True))
        for p in ("marketing", "personalization", "sharing", "analytics")
    },
    # fraud analysts: deterministic where they read in clear, and of the national id,
    # which the fraud view already shows as this very token
    ("fraud_analyst", "fraud"): dict(zip(SENSITIVITY_CLASSES, (D, D, D, D), strict=True)),
}


@pytest.mark.parametrize(
    ("role", "sensitivity", "purpose"),
    list(itertools.product(ROLES, SENSITIVITY_CLASSES, PURPOSES)),
)
def test_who_may_mint_which_token(
    engine: PolicyEngine, role: str, sensitivity: str, purpose: str
) -> None:
    grant = TOKEN_GRANTS.get((role, purpose), {}).get(sensitivity, N)
    resource = f"class:{sensitivity}"
    caller = who(role, clearance="3", department="marketing")
    random = engine.decide(caller, Action.TOKENIZE, purpose=purpose, resource=resource).allowed
    deterministic = random and engine.decide_deterministic_token(caller, purpose, resource).allowed
    assert (random, deterministic) == (grant in (R, D), grant == D)


# Searching by a field = reading it in clear for the purpose: (role, purpose) -> the
# searchable fields (dictionary: family_name internal, email and phone confidential,
# national_id restricted) a caller of that role may search by, with clearance 1.
SEARCH_GRANTS = {
    ("support_agent", "support"): {"family_name"},
    ("support_lead", "support"): {"family_name"},
    ("marketing", "marketing"): {"family_name", "email", "phone"},
    ("fraud_analyst", "fraud"): {"family_name", "email", "phone"},
    ("dpo", "data_subject_request"): {"family_name", "email", "phone", "national_id"},
    ("dpo", "legal"): {"family_name", "email", "phone", "national_id"},
}
SEARCHABLE = {
    "family_name": "internal",
    "email": "confidential",
    "phone": "confidential",
    "national_id": "restricted",
}


@pytest.mark.parametrize(("role", "purpose"), sorted(SEARCH_GRANTS))
def test_who_may_search_by_which_field(engine: PolicyEngine, role: str, purpose: str) -> None:
    caller = who(role, clearance="1")
    allowed = {
        name
        for name, sensitivity in SEARCHABLE.items()
        if engine.decide(
            caller, Action.FIELD_CLEAR, purpose=purpose, resource=f"class:{sensitivity}"
        ).allowed
    }
    assert allowed == SEARCH_GRANTS[role, purpose]
    # no search right reaches the national id without a clear read of it
    assert ("national_id" in allowed) is (role == "dpo")


@pytest.mark.parametrize(
    ("role", "action", "resource", "purpose", "attributes", "allowed"),
    [
        # reveal: support leads by clearance, the DPO for rights and legal requests
        ("support_lead", Action.SUBJECT_REVEAL, "class:confidential", "support", {}, False),
        ("support_lead", Action.SUBJECT_REVEAL, "class:confidential", "support", {"clearance": "2"}, True),
        ("support_lead", Action.SUBJECT_REVEAL, "class:restricted", "support", {"clearance": "2"}, False),
        ("support_lead", Action.SUBJECT_REVEAL, "class:restricted", "support", {"clearance": "3"}, True),
        ("support_agent", Action.SUBJECT_REVEAL, "class:confidential", "support", {"clearance": "9"}, False),
        ("dpo", Action.SUBJECT_REVEAL, "class:restricted", "legal", {}, True),
        ("dpo", Action.SUBJECT_REVEAL, "class:restricted", "marketing", {}, False),
        # tokens: fraud analysts reverse tokens with clearance 3, for fraud only
        ("fraud_analyst", Action.TOKENIZE, "class:restricted", "fraud", {}, True),
        ("fraud_analyst", Action.DETOKENIZE, "class:restricted", "fraud", {"clearance": "2"}, False),
        ("fraud_analyst", Action.DETOKENIZE, "class:restricted", "fraud", {"clearance": "3"}, True),
        ("fraud_analyst", Action.DETOKENIZE, "class:restricted", "support", {"clearance": "9"}, False),
        ("service", Action.DETOKENIZE, "class:internal", "fraud", {"clearance": "9"}, False),
        # export: support leads; marketing only from the marketing department
        ("support_lead", Action.SUBJECT_EXPORT, "view:support", "support", {}, True),
        ("support_agent", Action.SUBJECT_EXPORT, "view:support", "support", {}, False),
        ("marketing", Action.SUBJECT_EXPORT, "view:marketing", "marketing", {}, False),
        ("marketing", Action.SUBJECT_EXPORT, "view:marketing", "marketing", {"department": "sales"}, False),
        ("marketing", Action.SUBJECT_EXPORT, "view:marketing", "marketing", {"department": "marketing"}, True),
        ("marketing", Action.SUBJECT_EXPORT, "view:marketing", "sharing", {"department": "marketing"}, False),
        ("marketing", Action.SUBJECT_EXPORT, "view:marketing", "sharing", {"department": "marketing", "clearance": "2"}, True),
        ("analyst", Action.SUBJECT_EXPORT, "view:analytics", "analytics", {}, True),
        ("dpo", Action.SUBJECT_EXPORT, "view:full", "data_subject_request", {}, True),
        ("compliance_officer", Action.SUBJECT_READ, "view:full", "legal", {}, False),
        # find
        ("support_agent", Action.SUBJECT_FIND, "view:support", "support", {}, True),
        ("analyst", Action.SUBJECT_FIND, "view:analytics", "analytics", {}, False),
        # malformed clearances count as 0
        ("support_lead", Action.SUBJECT_REVEAL, "class:confidential", "support", {"clearance": "two"}, False),
        ("support_lead", Action.SUBJECT_REVEAL, "class:confidential", "support", {"clearance": "-5"}, False),
    ],
)  # fmt: skip
def test_actions_with_purpose_and_attributes(
    engine: PolicyEngine,
    role: str,
    action: Action,
    resource: str,
    purpose: str,
    attributes: dict[str, str],
    allowed: bool,
) -> None:
    caller = who(role, **attributes)
    assert engine.decide(caller, action, purpose=purpose, resource=resource).allowed is allowed


def test_the_export_action_needs_its_own_grant_for_a_view(engine: PolicyEngine) -> None:
    caller = who("support_agent")
    with pytest.raises(PermissionDeniedError):
        engine.plan_view(caller, "support", "support", Action.SUBJECT_EXPORT, FIELDS, SUBJECT)
    lead = engine.plan_view(
        who("support_lead"), "support", "support", Action.SUBJECT_EXPORT, FIELDS, SUBJECT
    )
    assert _outcomes(lead.plan) == SUPPORT_OUTCOMES
    assert "subjects:export" in lead.rule


def test_undeclared_view_and_purpose_are_invalid_arguments(engine: PolicyEngine) -> None:
    caller = who("support_agent")
    with pytest.raises(InvalidArgumentError) as caught:
        engine.plan_view(caller, "nope", "support", Action.SUBJECT_READ, FIELDS, SUBJECT)
    assert [v.field for v in caught.value.violations] == ["view"]
    with pytest.raises(InvalidArgumentError) as caught:
        engine.plan_view(caller, "support", "nope", Action.SUBJECT_READ, FIELDS, SUBJECT)
    assert [v.field for v in caught.value.violations] == ["purpose"]
    with pytest.raises(InvalidArgumentError) as caught:
        engine.plan_view(caller, "nope", "nope", Action.SUBJECT_READ, FIELDS, SUBJECT)
    assert sorted(v.field for v in caught.value.violations) == ["purpose", "view"]


@pytest.mark.parametrize("call", ["decide", "authorize"])
def test_purpose_is_checked_before_policy(engine: PolicyEngine, call: str) -> None:
    check = getattr(engine, call)
    with pytest.raises(InvalidArgumentError) as caught:
        check(who("dpo"), Action.AUDIT_READ, purpose="curiosity")
    assert [v.field for v in caught.value.violations] == ["purpose"]
    with pytest.raises(InvalidArgumentError) as caught:
        check(who("support_agent"), Action.SUBJECT_READ, resource="view:support")
    assert [v.field for v in caught.value.violations] == ["purpose"]


def test_decisions_name_the_line_that_decided(engine: PolicyEngine) -> None:
    allowed = engine.authorize(
        who("support_lead"), Action.SUBJECT_READ, purpose="support", resource="view:support"
    )
    # support_lead inherits the support_agent line
    assert allowed.rule == "p, support_agent, *, subjects:read, view:support, support, 0, *, allow"
    assert allowed.reason.startswith("allowed by vault_policy.csv:")
    denied = engine.decide(
        who("marketing"), Action.FIELD_MASKED, purpose="marketing", resource="class:restricted"
    )
    assert denied.rule == "p, *, *, fields:*, class:restricted, marketing, 0, *, deny"
    assert denied.reason.startswith("denied by vault_policy.csv:")
    nothing = engine.decide(who("marketing"), Action.KEYS_ADMIN)
    assert (nothing.allowed, nothing.rule) == (False, "default-deny")
    with pytest.raises(PermissionDeniedError) as caught:
        engine.authorize(who("marketing"), Action.KEYS_ADMIN)
    assert caught.value.rule == "default-deny"


def test_engine_lists_views_and_purposes(engine: PolicyEngine) -> None:
    assert engine.views == VIEWS
    assert set(engine.purposes) == set(PURPOSES)
    assert len(engine.version) == 16
    int(engine.version, 16)
    text = (POLICIES / "vault_policy.csv").read_text(encoding="utf-8")
    assert engine.line_count == sum(line[:2] in ("p,", "g,") for line in text.splitlines())
