# One case per line keeps the tables readable; they are wider than the line limit.
# ruff: noqa: E501
"""Every kind of malformed policy file stops loading with the file and line named."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.policy import PolicyConfigError, PolicyEngine
from vault.policy.sources import MODEL_FILE, POLICY_FILE, PURPOSES_FILE, VIEWS_FILE
from vault.policy.views_config import parse_views

MATCHER = 'm = ((p.eft == "allow"'
EFFECT = "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))"
SUPPORT_BASIS = "  support:\n    legal_basis: contract\n"

# (file, text to replace (empty: append), replacement, text on the expected line (None:
# no line), fragment of the message)
CASES = [
    # --- model ---------------------------------------------------------------------------
    (MODEL_FILE, EFFECT, "e = !some(where (p.eft == deny))", "e = !some", "the effect must be"),
    (MODEL_FILE, EFFECT, "e = some(where (p.eft == allow))", "e = some", "the effect must be"),
    (MODEL_FILE, EFFECT, "e = priority(p.eft) || deny", "e = priority", "the effect must be"),
    (MODEL_FILE, "r = sub, dom, act", "r = sub, act", "r = sub, act", "expected 'sub, dom"),
    (MODEL_FILE, "p = sub, dom, act", "p = dom, sub, act", "p = dom", "expected 'sub, dom"),
    (MODEL_FILE, "g = _, _, _", "g = _, _", "g = _, _", "expected '_, _, _'"),
    (MODEL_FILE, "[matchers]", "[matcher]", "[matcher]", "unknown section"),
    (MODEL_FILE, MATCHER, "m = eval(p.sub) && ((p.eft == \"allow\"", "m = eval", "eval()"),
    (MODEL_FILE, MATCHER, 'm = regexMatch(r.sub, "x") && ((p.eft == "allow"', "m = regex", "unknown function"),
    (MODEL_FILE, MATCHER, 'm = r.owner == "x" && ((p.eft == "allow"', "m = r.owner", "unknown 'r_owner'"),
    (MODEL_FILE, MATCHER, 'm = 1 == 1 && ((p.eft == "allow"', "m = 1 == 1", "strings only"),
    (MODEL_FILE, MATCHER, 'm = r.sub[0] == "X" && ((p.eft == "allow"', "m = r.sub[0]", "may not use Subscript"),
    (MODEL_FILE, MATCHER, 'm = (( && (p.eft == "allow"', "m = ((", "not a valid expression"),
    (MODEL_FILE, MATCHER, 'm = p.sub != "#" && ((p.eft == "allow"', "m = p.sub", "'#'"),
    (MODEL_FILE, "[policy_effect]\n", "[policy_effect]\ne = x\n", "e = some", "defined twice"),
    (MODEL_FILE, "[request_definition]\n", "r2\n[request_definition]\n", "r2", "outside a [section]"),
    (MODEL_FILE, "[request_definition]\nr = sub", "[request_definition]\nr sub", "r sub", "'key = value'"),
    (MODEL_FILE, "[policy_effect]\n" + EFFECT, "", None, "missing 'e = ...'"),
    # --- policy ----------------------------------------------------------------------------
    (POLICY_FILE, "", "p, support_agent, *, audit:read, *, *, 0, allow", "audit:read, *, *, 0, allow", "8 values"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, *, *, 0, *, permit", "permit", "allow or deny"),
    (POLICY_FILE, "", "p, *, *, audit:read, *, *, 0, *, allow", "p, *, *, audit:read", "only in deny"),
    (POLICY_FILE, "", "p, Support, *, audit:read, *, *, 0, *, allow", "Support", "invalid role"),
    (POLICY_FILE, "", "p, support_agent, a/b, audit:read, *, *, 0, *, allow", "a/b", "invalid tenant"),
    (POLICY_FILE, "", "p, support_agent, *, subject:read, *, *, 0, *, allow", "subject:read", "unknown action"),
    (POLICY_FILE, "", "p, support_agent, *, *, *, *, 0, *, allow", "p, support_agent, *, *,", "unknown action"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, row:1, *, 0, *, allow", "row:1", "unknown resource"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, class:secret, *, 0, *, allow", "class:secret", "unknown field class"),
    (POLICY_FILE, "", "p, support_agent, *, subjects:read, view:vip, support, 0, *, allow", "view:vip", "unknown view"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, *, fun, 0, *, allow", ", fun,", "unknown purpose"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, *, *, 10, *, allow", ", 10,", "clearance"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, *, *, high, *, allow", "high", "clearance"),
    (POLICY_FILE, "", "p, support_agent, *, audit:read, *, *, 0, Risk!, allow", "Risk!", "invalid department"),
    (POLICY_FILE, "", "x, support_agent, *, audit:read", "x, support_agent", "unknown line type"),
    (POLICY_FILE, "", "g, support_agent, *", "g, support_agent, *", "3 values"),
    (POLICY_FILE, "", "g, support_agent, support_agent, *", "g, support_agent, support_agent", "inherit itself"),
    (POLICY_FILE, "", "g, support_agent, support_lead, *", "g, support_agent, support_lead", "cycle"),
    (POLICY_FILE, "", "g, support_lead, support_agent, *", "g, support_lead, support_agent, *\n", "duplicate of line"),
    # --- purposes ------------------------------------------------------------------------------
    (PURPOSES_FILE, SUPPORT_BASIS, "  support:\n    legal_basis: whim\n", "legal_basis: whim", "legal_basis must be"),
    (PURPOSES_FILE, SUPPORT_BASIS, "  support:\n    legal_basis: contract\n    owner: me\n", "owner: me", "unknown key"),
    (PURPOSES_FILE, SUPPORT_BASIS, "  support:\n    legal_basis: contract\n    marketing: yes please\n", "yes please", "true or false"),
    (PURPOSES_FILE, SUPPORT_BASIS, "  Support:\n    legal_basis: contract\n", "Support:", "invalid purpose name"),
    (PURPOSES_FILE, SUPPORT_BASIS, "  support:\n    legal_basis: contract\n  support:\n", "contract\n  support:", "duplicate key"),
    (PURPOSES_FILE, "    description: Answering the customer's own support requests.\n", "", "legal_basis: contract", "needs a description"),
    (PURPOSES_FILE, "  all_sharing: sharing", "  all_sharing: everything", "all_sharing", "must map to one of"),
    (PURPOSES_FILE, 'notice_versions: ["2025-06", "2026-01"]', "notice_versions: []", "notice_versions: []", "non-empty list"),
    (PURPOSES_FILE, 'notice_versions: ["2025-06", "2026-01"]', 'notice_versions: ["shown to Grace Hopper"]', "notice_versions:", "quoted label"),
    (PURPOSES_FILE, 'notice_versions: ["2025-06", "2026-01"]', "notice_versions: [2026]", "notice_versions:", "quoted label"),
    (PURPOSES_FILE, 'notice_versions: ["2025-06", "2026-01"]', 'notice_versions: ["2026-01", "2026-01"]', "notice_versions:", "listed twice"),
    (PURPOSES_FILE, 'notice_versions: ["2025-06", "2026-01"]\n', "", "version: 1", "'notice_versions' must be"),
    (PURPOSES_FILE, "version: 1", "version: 2", "version: 2", "version must be 1"),
    (PURPOSES_FILE, "    case_reference: true\n    description: Court", "    case_reference: maybe\n    description: Court", "case_reference: maybe", "true or false"),
    (PURPOSES_FILE, "case_reference_pattern: '\\b[A-Z]", "case_reference_pattern: '([A-Z]", "case_reference_pattern:", "regular expression"),
    (PURPOSES_FILE, "version: 1", "version: true", "version: true", "version must be 1"),
    (PURPOSES_FILE, "version: 1", "version: 1: 2", "version: 1: 2", "invalid YAML"),
    # --- views ------------------------------------------------------------------------------------
    (VIEWS_FILE, "      email: masked:email", "      email: masked:blur", "masked:blur", "unknown mask strategy"),
    (VIEWS_FILE, "      email: masked:email", "      email: shown", "email: shown", "unknown outcome"),
    (VIEWS_FILE, "      email: masked:email", "      email: masked", "email: masked\n", "unknown mask strategy"),
    (VIEWS_FILE, "      country: generalized:country", "      country: generalized:planet", "planet", "unknown generalization"),
    (VIEWS_FILE, "  phone: phone_last4", "  phone: phone_first4", "phone_first4", "unknown mask strategy"),
    (VIEWS_FILE, "      given_name: clear\n      family_name: clear\n      email: masked:email\n      phone: masked:phone_last4",
     "      Given_Name: clear\n      family_name: clear\n      email: masked:email\n      phone: masked:phone_last4", "Given_Name", "invalid field name"),
    (VIEWS_FILE, "      given_name: clear\n      family_name: clear\n      email: masked:email\n      phone: masked:phone_last4",
     "      given_name: [clear]\n      family_name: clear\n      email: masked:email\n      phone: masked:phone_last4", "given_name: [clear]", "expected an outcome"),
    (VIEWS_FILE, "    description: Customer support desk", "    summary: Customer support desk", "summary:", "unknown key"),
    (VIEWS_FILE, "version: 1", "version: 1\nextra: 2", "extra: 2", "unknown key"),
    (VIEWS_FILE, "    requires_justification: true", "    requires_justification: always", "always", "true or false"),
    (VIEWS_FILE, "  support:\n", "  support:\n  support:\n", "  support:\n  support:", "duplicate key"),
    (VIEWS_FILE, "      city: clear\n      postal_code: masked", "      city: clear: x\n      postal_code: masked", "clear: x", "invalid YAML"),
]  # fmt: skip


def _expected_line(text: str, marker: str | None, *, appended: bool) -> int | None:
    """The line on which `marker` ends (its last occurrence for an appended line)."""
    if marker is None:
        return None
    marker = marker.rstrip("\n")
    at = text.rindex(marker) if appended else text.index(marker)
    return text[: at + len(marker)].count("\n") + 1


@pytest.mark.parametrize(
    ("file", "old", "new", "marker", "fragment"),
    CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)],
)
def test_a_malformed_file_is_refused_with_file_and_line(
    policy_dir: Path, file: str, old: str, new: str, marker: str | None, fragment: str
) -> None:
    path = policy_dir / file
    text = path.read_text(encoding="utf-8")
    if old:
        assert text.count(old) == 1, "the case must name a unique piece of the real file"
        text = text.replace(old, new)
    else:
        text = text + new + "\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    error = caught.value
    assert error.file == file
    assert fragment in error.detail
    line = _expected_line(text, marker, appended=not old)
    assert error.line == line
    assert str(error).startswith(f"{file}:{line}: " if line is not None else f"{file}: ")


@pytest.mark.parametrize("file", [MODEL_FILE, POLICY_FILE, PURPOSES_FILE, VIEWS_FILE])
def test_a_missing_file_is_refused_naming_it(policy_dir: Path, file: str) -> None:
    (policy_dir / file).unlink()
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    assert caught.value.file == file
    assert "cannot read" in str(caught.value)


def test_a_purpose_the_policy_uses_cannot_be_removed(policy_dir: Path) -> None:
    purposes = policy_dir / PURPOSES_FILE
    text = purposes.read_text(encoding="utf-8")
    start = text.index("  analytics:\n")
    end = text.index("  fraud:\n")
    purposes.write_text(text[:start] + text[end:], encoding="utf-8")
    policy = (policy_dir / POLICY_FILE).read_text(encoding="utf-8")
    first_use = policy[: policy.index(", analytics, ")].count("\n") + 1
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    assert (caught.value.file, caught.value.line) == (POLICY_FILE, first_use)
    assert "unknown purpose 'analytics'" in caught.value.detail


def test_role_chains_deeper_than_casbin_follows_are_refused(policy_dir: Path) -> None:
    chain = [f"g, level{i}, level{i + 1}, *" for i in range(10)]
    path = policy_dir / POLICY_FILE
    before = path.read_text(encoding="utf-8")
    path.write_text(before + "\n".join(chain) + "\n", encoding="utf-8")
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    assert caught.value.line == before.count("\n") + 1
    assert "more than 9 levels" in caught.value.detail


@pytest.mark.parametrize("cycle", [False, True])
def test_role_chains_of_thousands_of_links_are_refused(policy_dir: Path, cycle: bool) -> None:
    # Found by tests/fuzz/fuzz_policy.py: the depth check recursed once per link, and a
    # long chain escaped as RecursionError instead of naming the line.
    chain = [f"g, level{i}, level{i + 1}, *" for i in range(5000)]
    if cycle:
        chain.append("g, level5000, level0, *")
    path = policy_dir / POLICY_FILE
    before = path.read_text(encoding="utf-8")
    path.write_text(before + "\n".join(chain) + "\n", encoding="utf-8")
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    assert caught.value.line == before.count("\n") + 1
    assert "more than 9 levels" in caught.value.detail


def test_policy_value_over_the_csv_field_limit_is_refused(policy_dir: Path) -> None:
    # Found by tests/fuzz/fuzz_policy.py: the csv module's own error escaped parse_policy.
    path = policy_dir / POLICY_FILE
    before = path.read_text(encoding="utf-8")
    path.write_text(before + "p, " + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    assert (caught.value.file, caught.value.line) == (POLICY_FILE, before.count("\n") + 1)
    assert "malformed CSV line" in caught.value.detail


def test_a_mask_that_is_a_mapping_is_refused() -> None:
    # Found by tests/fuzz/fuzz_policy.py: `in` on an unhashable YAML value raised TypeError.
    text = "version: 1\ndefault_masks:\n  email: {a: b}\nviews: {}\n"
    with pytest.raises(PolicyConfigError) as caught:
        parse_views(text)
    assert (caught.value.file, caught.value.line) == (VIEWS_FILE, 3)


def test_deeply_nested_yaml_is_refused(policy_dir: Path) -> None:
    # Found by tests/fuzz/fuzz_policy.py: PyYAML's RecursionError escaped load_yaml.
    path = policy_dir / VIEWS_FILE
    path.write_text(path.read_text(encoding="utf-8") + "x: " + "[" * 5000 + "\n", "utf-8")
    with pytest.raises(PolicyConfigError) as caught:
        PolicyEngine.from_dir(policy_dir)
    assert (caught.value.file, caught.value.detail) == (
        VIEWS_FILE,
        "invalid YAML: nested too deeply",
    )


def test_non_mapping_and_empty_documents_are_refused(policy_dir: Path) -> None:
    for text, line in (("- a list\n", 1), ("", 1)):
        (policy_dir / VIEWS_FILE).write_text(text, encoding="utf-8")
        with pytest.raises(PolicyConfigError) as caught:
            PolicyEngine.from_dir(policy_dir)
        assert (caught.value.file, caught.value.line) == (VIEWS_FILE, line)


def test_the_real_files_load(policy_dir: Path) -> None:
    assert PolicyEngine.from_dir(policy_dir).views
