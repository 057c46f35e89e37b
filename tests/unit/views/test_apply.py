"""`apply_view`: rendering decrypted values through a plan."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from vault.views import (
    FieldPlan,
    Outcome,
    ViewPlan,
    WithheldReason,
    apply_view,
    fields_needed,
)
from vault.views.masking import GENERALIZERS, MASKS

TODAY = date(2025, 6, 15)
PLAN = ViewPlan(
    view="test",
    purpose="support",
    rule="p, support_agent, *, subjects:read, view:test, support, 0, *, allow",
    policy_version="0123456789abcdef",
    fields=(
        FieldPlan("given_name", Outcome.CLEAR),
        FieldPlan("email", Outcome.MASKED, "email"),
        FieldPlan("date_of_birth", Outcome.GENERALIZED, "decade_band"),
        FieldPlan("phone", Outcome.PSEUDONYMIZED),
        FieldPlan("national_id", Outcome.TOKENIZED),
        FieldPlan("notes", Outcome.WITHHELD, "", WithheldReason.POLICY),
        FieldPlan("street_address", Outcome.OMITTED),
    ),
)
VALUES = {
    "given_name": "Jane",
    "email": "jane@example.com",
    "date_of_birth": "1984-06-15",
    "phone": "+14155552671",
    "national_id": "123-45-6789",
    "notes": "secret note",
    "street_address": "1 Main St",
}


def _pseudonym(tenant: str, field: str, value: str) -> str:
    return f"pseudo({tenant},{field},{len(value)})"


def _token(tenant: str, field: str, value: str) -> str:
    return f"tok({tenant},{field},{len(value)})"


def _apply(plan: ViewPlan, values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    result = apply_view(
        plan, values, tenant="acme", pseudonymize=_pseudonym, tokenize=_token, today=TODAY
    )
    return result.fields, result.withheld


def test_each_outcome_is_rendered() -> None:
    shown, withheld = _apply(PLAN, VALUES)
    assert shown == {
        "given_name": "Jane",
        "email": "j***@example.com",
        "date_of_birth": "1980-1989",
        "phone": "pseudo(acme,phone,12)",
        "national_id": "tok(acme,national_id,11)",
    }
    # withheld fields are listed with the reason; omitted ones are not mentioned at all
    assert withheld == {"notes": "policy"}
    assert "street_address" not in shown and "street_address" not in withheld


def test_missing_values_are_left_out_but_withheld_fields_are_still_listed() -> None:
    shown, withheld = _apply(PLAN, {"given_name": "Jane"})
    assert shown == {"given_name": "Jane"}
    assert withheld == {"notes": "policy"}  # says nothing about whether notes is set


def test_a_plan_withheld_for_consent_shows_nothing_and_says_why() -> None:
    shown, withheld = _apply(PLAN.withheld_all(WithheldReason.CONSENT), VALUES)
    assert shown == {}
    assert withheld == dict.fromkeys(
        ["given_name", "email", "date_of_birth", "phone", "national_id", "notes"], "consent"
    )


def test_withheld_all_is_memoized_and_keeps_the_rule_and_version() -> None:
    variant = PLAN.withheld_all(WithheldReason.STATE)
    assert PLAN.withheld_all(WithheldReason.STATE) is variant
    assert (variant.rule, variant.policy_version) == (PLAN.rule, PLAN.policy_version)
    assert variant.outcome_of("street_address") == FieldPlan("street_address", Outcome.OMITTED)
    assert variant.outcome_of("nope") is None


def test_only_fields_to_render_are_decrypted() -> None:
    assert fields_needed(PLAN) == {
        "given_name",
        "email",
        "date_of_birth",
        "phone",
        "national_id",
    }
    assert fields_needed(PLAN.withheld_all(WithheldReason.CONSENT)) == frozenset()


def _reference(plan: ViewPlan, values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The plan interpreted field by field, as apply_view did before plans were compiled."""
    shown: dict[str, str] = {}
    withheld: dict[str, str] = {}
    for item in plan.fields:
        if item.outcome is Outcome.OMITTED:
            continue
        if item.outcome is Outcome.WITHHELD:
            withheld[item.field] = item.reason
            continue
        value = values.get(item.field)
        if value is None:
            continue
        if item.outcome is Outcome.CLEAR:
            shown[item.field] = value
        elif item.outcome is Outcome.MASKED:
            shown[item.field] = MASKS[item.strategy](value, TODAY)
        elif item.outcome is Outcome.GENERALIZED:
            shown[item.field] = GENERALIZERS[item.strategy](value, TODAY)
        elif item.outcome is Outcome.PSEUDONYMIZED:
            shown[item.field] = _pseudonym("acme", item.field, value)
        else:
            shown[item.field] = _token("acme", item.field, value)
    return shown, withheld


_NAMES = ("a", "b", "c", "d", "e", "f")


@st.composite
def _field_plans(draw: st.DrawFn) -> tuple[FieldPlan, ...]:
    plans = []
    for name in draw(st.lists(st.sampled_from(_NAMES), unique=True, max_size=6)):
        outcome = draw(st.sampled_from(list(Outcome)))
        strategy = ""
        if outcome is Outcome.MASKED:
            strategy = draw(st.sampled_from(sorted(MASKS)))
        elif outcome is Outcome.GENERALIZED:
            strategy = draw(st.sampled_from(sorted(GENERALIZERS)))
        reason = draw(st.sampled_from(list(WithheldReason))) if outcome is Outcome.WITHHELD else ""
        plans.append(FieldPlan(name, outcome, strategy, reason))
    return tuple(plans)


@given(
    fields=_field_plans(),
    values=st.dictionaries(st.sampled_from(_NAMES), st.text(max_size=20)),
    withhold=st.sampled_from([None, *WithheldReason]),
)
def test_the_compiled_plan_renders_like_the_plan_interpreted_field_by_field(
    fields: tuple[FieldPlan, ...], values: dict[str, str], withhold: WithheldReason | None
) -> None:
    plan = ViewPlan("v", "support", "rule", "0123456789abcdef", fields)
    for _ in range(2):  # the second call uses the compiled form kept on the plan
        assert _apply(plan, values) == _reference(plan, values)
    if withhold is not None:  # a derived plan is compiled on its own, never shares it
        variant = plan.withheld_all(withhold)
        assert _apply(variant, values) == _reference(variant, values)
        assert _apply(plan, values) == _reference(plan, values)
