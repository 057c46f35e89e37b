"""What a consent receipt may claim a purpose uses: the fields some role may see through
some view for that purpose, under the policy in force."""

from __future__ import annotations

from pathlib import Path

from tests.data import FIELDS
from vault.policy import PolicyEngine

ALL = tuple(f.name for f in FIELDS)


def test_marketing_and_sharing_use_the_marketing_view_without_restricted_fields(
    engine: PolicyEngine,
) -> None:
    marketing = engine.fields_usable_for("acme", "marketing", FIELDS)
    assert "email" in marketing and "given_name" in marketing
    assert "national_id" not in marketing and "phone" not in marketing
    assert engine.fields_usable_for("acme", "sharing", FIELDS) == marketing
    analytics = engine.fields_usable_for("acme", "analytics", FIELDS)
    assert "given_name" not in analytics and "email" in analytics  # pseudonymized
    assert engine.fields_usable_for("acme", "data_subject_request", FIELDS) == ALL


def test_a_policy_change_changes_what_a_purpose_uses(policy_dir: Path) -> None:
    policy = policy_dir / "vault_policy.csv"
    text = policy.read_text(encoding="utf-8")
    text = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith("p, marketing, *, subjects:") or "sharing" not in line
    )
    policy.write_text(text + "\n", encoding="utf-8")
    engine = PolicyEngine.from_dir(policy_dir)
    assert engine.fields_usable_for("acme", "sharing", FIELDS) == ()
