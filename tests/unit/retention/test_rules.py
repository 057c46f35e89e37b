"""Retention rules: the real file loads; every kind of mistake names its line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import REPO_ROOT
from vault.retention.rules import RetentionRules, RetentionRulesError
from vault.subject import SubjectState

GOOD = """\
version: 1
tenants: [acme, globex]
rules:
  - tenant: "*"
    anonymize_after_days: 1095
    notice_days: 30
  - tenant: globex
    anonymize_after_days: 730
    notice_days: 60
    applies_to: [active, restricted]
"""


def test_the_shipped_rules_load() -> None:
    rules = RetentionRules.from_file(REPO_ROOT / "policies" / "retention.yaml")
    assert set(rules.tenants) == {"acme", "globex"}
    assert rules.rule_for("acme") is rules.rule_for("some-new-tenant")  # the "*" rule
    assert rules.rule_for("globex") is not rules.rule_for("acme")


def test_rules_are_found_by_tenant_with_the_default() -> None:
    rules = RetentionRules.parse(GOOD)
    globex, default = rules.rule_for("globex"), rules.rule_for("acme")
    assert globex is not None and default is not None
    assert globex.applies_to == (SubjectState.ACTIVE, SubjectState.RESTRICTED)
    assert default.applies_to == (SubjectState.ACTIVE,)
    assert default.name == "retention.yaml:4"
    only_acme = GOOD.split("  - tenant: globex", maxsplit=1)[0].replace('"*"', "acme")
    assert RetentionRules.parse(only_acme).rule_for("globex") is None  # no rule: kept


def test_the_notice_period_is_always_given_in_full() -> None:
    rule = RetentionRules.parse(GOOD).rule_for("acme")
    assert rule is not None
    last = datetime(2020, 1, 1, tzinfo=UTC)
    on_time = last + timedelta(days=1095 - 30)
    assert rule.notice_threshold(on_time) == last
    assert rule.deadline(last, on_time) == last + timedelta(days=1095)
    late = last + timedelta(days=2000)  # the job was off for years
    assert rule.deadline(last, late) == late + timedelta(days=30)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("version: 2\ntenants: [a]\nrules: []\n", 1, "version must be 1"),
        ("version: 1\ntenants: [a]\nrules: []\nextra: 1\n", 4, "unknown key 'extra'"),
        ("version: 1\ntenants: []\nrules: []\n", 2, "non-empty list"),
        ("version: 1\ntenants: [a, a]\nrules: []\n", 2, "listed twice"),
        ("version: 1\ntenants: [A B]\nrules: []\n", 2, "invalid tenant name"),
        ("version: 1\ntenants: [a]\nrules: {}\n", 3, "must be a list"),
        ("version: 1\ntenants: [a]\nrules:\n  - x\n", 3, "must be a mapping"),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: b\n"
            "    anonymize_after_days: 10\n    notice_days: 1\n",
            4,
            "unknown tenant 'b'",
        ),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: a\n"
            "    anonymize_after_days: 10\n    notice_days: 1\n    applies_to: [sleeping]\n",
            7,
            "unknown state 'sleeping'",
        ),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: a\n"
            "    anonymize_after_days: 10\n    notice_days: 1\n    applies_to: [anonymized]\n",
            7,
            "cannot be retained",
        ),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: a\n"
            "    anonymize_after_days: 10\n    notice_days: 30\n",
            6,
            "notice_days must be shorter",
        ),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: a\n"
            "    anonymize_after_days: ten\n    notice_days: 1\n",
            5,
            "whole number of days",
        ),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: a\n    notice_days: 1\n",
            4,
            "missing 'anonymize_after_days'",
        ),
        (
            "version: 1\ntenants: [a]\nrules:\n  - tenant: a\n    anonymize_after_days: 9\n"
            "    notice_days: 1\n  - tenant: a\n    anonymize_after_days: 8\n"
            "    notice_days: 1\n",
            7,
            "a second rule for tenant 'a'",
        ),
        ("version: 1\ntenants: [a]\nrules: [\n", 4, "invalid YAML"),
    ],
)
def test_a_bad_rule_names_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(RetentionRulesError) as caught:
        RetentionRules.parse(text)
    assert caught.value.line == line
    assert words in caught.value.detail
    assert str(caught.value).startswith(f"retention.yaml:{line}: ")


def test_a_state_that_is_a_mapping_is_refused() -> None:
    # Found by tests/fuzz/fuzz_policy.py: `in` on an unhashable YAML value raised TypeError.
    text = GOOD.replace("applies_to: [active, restricted]", "applies_to: [{a: b}]")
    with pytest.raises(RetentionRulesError, match="unknown state"):
        RetentionRules.parse(text)
