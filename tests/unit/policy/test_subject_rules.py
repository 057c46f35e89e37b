"""Subject rules over the real purposes: state, legal hold, consent and opt-outs."""

from __future__ import annotations

import pytest

from tests.data import FIELDS
from tests.unit.policy.helpers import who
from vault.errors import FailedPreconditionError, InvalidArgumentError
from vault.policy import Action, PolicyEngine, SubjectContext
from vault.policy.view_decision import ViewDecision
from vault.views.model import Outcome, WithheldReason

# (role, view, purpose) able to read through a view, one per legal basis
CONSENT = ("marketing", "marketing", "marketing")  # consent, marketing: true
PERSONALIZE = ("marketing", "marketing", "personalization")  # consent, no flags
LEGIT = ("analyst", "analytics", "analytics")  # legitimate interest
CONTRACT = ("support_agent", "support", "support")  # contract
LEGAL = ("dpo", "full", "legal")  # legal obligation, allowed when restricted
DSR = ("dpo", "full", "data_subject_request")  # legal obligation, allowed when restricted
FRAUD = ("fraud_analyst", "fraud", "fraud")  # legal obligation, not when restricted


def _plan(
    engine: PolicyEngine, grant: tuple[str, str, str], subject: SubjectContext
) -> ViewDecision:
    role, view, purpose = grant
    return engine.plan_view(who(role), view, purpose, Action.SUBJECT_READ, FIELDS, subject)


def _withheld_for(decided: ViewDecision) -> set[str]:
    """The reasons the plan withholds fields for (empty: nothing withheld)."""
    return {f.reason for f in decided.plan.fields if f.outcome is Outcome.WITHHELD}


def _shows_something(decided: ViewDecision) -> bool:
    return any(f.outcome not in (Outcome.WITHHELD, Outcome.OMITTED) for f in decided.plan.fields)


def test_a_consent_purpose_is_withheld_without_consent_and_shown_with_it(
    engine: PolicyEngine,
) -> None:
    without = _plan(engine, CONSENT, SubjectContext("active", consent_version="c-1"))
    assert _withheld_for(without) == {WithheldReason.CONSENT}
    assert not _shows_something(without)
    assert (without.subject_rule, without.consent_version) == ("consent:marketing", "c-1")
    assert without.withheld
    # omitted fields stay omitted: withholding must not reveal what the view would list
    omitted = {f.field for f in without.plan.fields if f.outcome is Outcome.OMITTED}
    assert omitted == {"phone", "street_address", "national_id", "notes"}

    granted = SubjectContext(
        "active", consented_purposes=frozenset({"marketing"}), consent_version="c-2"
    )
    shown = _plan(engine, CONSENT, granted)
    assert _shows_something(shown) and _withheld_for(shown) == set()
    assert (shown.subject_rule, shown.consent_version, shown.withheld) == ("", "c-2", False)


def test_consent_for_one_purpose_is_not_consent_for_another(engine: PolicyEngine) -> None:
    subject = SubjectContext("active", consented_purposes=frozenset({"marketing"}))
    assert _plan(engine, PERSONALIZE, subject).subject_rule == "consent:personalization"


def test_legitimate_interest_is_shown_until_the_subject_opts_out(engine: PolicyEngine) -> None:
    shown = _plan(engine, LEGIT, SubjectContext("active", consent_version="c-3"))
    assert _shows_something(shown) and shown.consent_version == "c-3"
    objected = SubjectContext("active", opted_out_purposes=frozenset({"analytics"}))
    withheld = _plan(engine, LEGIT, objected)
    assert _withheld_for(withheld) == {WithheldReason.CONSENT}
    assert withheld.subject_rule == "opt-out:analytics"


def test_an_opt_out_beats_an_earlier_consent(engine: PolicyEngine) -> None:
    subject = SubjectContext(
        "active",
        consented_purposes=frozenset({"marketing"}),
        opted_out_purposes=frozenset({"marketing"}),
    )
    assert _plan(engine, CONSENT, subject).subject_rule == "opt-out:marketing"


@pytest.mark.parametrize(
    ("marker", "purpose", "blocked"),
    [
        ("all_marketing", "marketing", True),
        ("all_marketing", "personalization", False),  # not flagged marketing
        ("all_sharing", "sharing", True),  # GPC / do not sell or share
        ("all_sharing", "marketing", False),
        ("all_marketing", "analytics", False),
    ],
)
def test_opt_out_markers_block_the_purposes_they_flag(
    engine: PolicyEngine, marker: str, purpose: str, blocked: bool
) -> None:
    subject = SubjectContext(
        "active", consented_purposes=frozenset({purpose}), opted_out_purposes=frozenset({marker})
    )
    refusal = engine.check_subject(Action.SUBJECT_READ, purpose, subject)
    if blocked:
        assert refusal is not None and refusal.rule == f"opt-out:{marker}"
    else:
        assert refusal is None


def test_opt_out_markers_apply_to_view_plans(engine: PolicyEngine) -> None:
    subject = SubjectContext(
        "active",
        consented_purposes=frozenset({"marketing"}),
        opted_out_purposes=frozenset({"all_marketing"}),
    )
    assert _plan(engine, CONSENT, subject).subject_rule == "opt-out:all_marketing"


@pytest.mark.parametrize("grant", [CONTRACT, FRAUD, LEGAL])
def test_contract_and_legal_obligation_ignore_consent_and_opt_outs(
    engine: PolicyEngine, grant: tuple[str, str, str]
) -> None:
    subject = SubjectContext(
        "active",
        opted_out_purposes=frozenset({grant[2], "all_marketing", "all_sharing"}),
        consent_version="c-9",
    )
    decided = _plan(engine, grant, subject)
    assert _shows_something(decided) and decided.subject_rule == ""
    assert decided.consent_version == ""  # the ledger was not relied on


@pytest.mark.parametrize(
    ("grant", "allowed"),
    [
        (CONTRACT, False),
        (CONSENT, False),
        (LEGIT, False),
        (FRAUD, False),
        (LEGAL, True),
        (DSR, True),
    ],
)
def test_a_restricted_subject_serves_only_purposes_allowed_when_restricted(
    engine: PolicyEngine, grant: tuple[str, str, str], allowed: bool
) -> None:
    subject = SubjectContext("restricted", consented_purposes=frozenset({grant[2]}))
    decided = _plan(engine, grant, subject)
    if allowed:
        assert _shows_something(decided) and decided.subject_rule == ""
    else:
        assert _withheld_for(decided) == {WithheldReason.STATE}
        assert decided.subject_rule == "state:restricted"
        assert not _shows_something(decided)


@pytest.mark.parametrize("state", ["erased", "anonymized"])
def test_erased_and_anonymized_subjects_refuse_reads(engine: PolicyEngine, state: str) -> None:
    with pytest.raises(FailedPreconditionError, match=state):
        _plan(engine, DSR, SubjectContext(state))
    refusal = engine.check_subject(Action.SUBJECT_REVEAL, "legal", SubjectContext(state))
    assert refusal is not None and refusal.rule == f"state:{state}"
    assert engine.check_subject(Action.SUBJECT_UPDATE, None, SubjectContext(state)) is not None
    # erasing again is idempotent, and the access report still works
    assert engine.check_subject(Action.SUBJECT_ERASE, None, SubjectContext(state)) is None
    assert engine.check_subject(Action.RIGHTS_ACCESS, None, SubjectContext(state)) is None


def test_a_legal_hold_blocks_erasure_only(engine: PolicyEngine) -> None:
    held = SubjectContext("active", legal_hold=True)
    for action in (Action.SUBJECT_ERASE, Action.RIGHTS_ERASE):
        refusal = engine.check_subject(action, None, held)
        assert refusal is not None and refusal.rule == "state:legal_hold"
        assert not refusal.allowed
    assert engine.check_subject(Action.SUBJECT_UPDATE, None, held) is None
    assert _shows_something(_plan(engine, CONTRACT, held))


def test_restriction_freezes_changes_but_not_consent_or_audit(engine: PolicyEngine) -> None:
    restricted = SubjectContext("restricted")
    for action in (Action.SUBJECT_UPDATE, Action.SUBJECT_ERASE, Action.ACTIVITY_RECORD):
        refusal = engine.check_subject(action, None, restricted)
        assert refusal is not None and refusal.rule == "state:restricted"
    for action in (Action.CONSENT_WRITE, Action.CONSENT_READ, Action.AUDIT_READ):
        assert engine.check_subject(action, None, restricted) is None
    assert engine.check_subject(Action.RIGHTS_ERASE, "data_subject_request", restricted) is None


def test_recording_consent_is_never_blocked_by_missing_consent(engine: PolicyEngine) -> None:
    subject = SubjectContext("active", opted_out_purposes=frozenset({"all_marketing"}))
    assert engine.check_subject(Action.CONSENT_WRITE, "marketing", subject) is None
    assert engine.check_subject(Action.SUBJECT_REVEAL, "marketing", subject) is not None


def test_an_unknown_state_fails_closed(engine: PolicyEngine) -> None:
    subject = SubjectContext("frozen-ish", consented_purposes=frozenset({"marketing"}))
    decided = _plan(engine, CONTRACT, subject)
    assert decided.subject_rule == "state:unknown"
    assert not _shows_something(decided)
    refusal = engine.check_subject(Action.CONSENT_READ, None, subject)
    assert refusal is not None and refusal.rule == "state:unknown"


def test_check_subject_refuses_an_undeclared_purpose(engine: PolicyEngine) -> None:
    with pytest.raises(InvalidArgumentError):
        engine.check_subject(Action.SUBJECT_REVEAL, "gossip", SubjectContext("active"))


def test_withheld_plans_are_derived_once_per_cached_plan(engine: PolicyEngine) -> None:
    first = _plan(engine, CONSENT, SubjectContext("active"))
    second = _plan(engine, CONSENT, SubjectContext("active"))
    assert first.plan is second.plan
