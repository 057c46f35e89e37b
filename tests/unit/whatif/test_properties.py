"""Properties of the replay (hypothesis): replaying a log against the very policy that
produced it changes nothing, and neither does a draft equal in meaning with its lines
in another order; the matrix agrees."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import audit
from tests.data import FIELDS, PURPOSES, ROLES, VIEWS
from tests.unit.policy.helpers import real_texts
from vault.policy import Action, PolicyEngine
from vault.policy.actions import SENSITIVITY_CLASSES
from vault.policy.sources import POLICY_FILE
from vault.whatif.changes import Side
from vault.whatif.matrix import matrix_diff
from vault.whatif.replay import Replayer

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RESOURCES = ("*", *(f"class:{c}" for c in SENSITIVITY_CLASSES), *(f"view:{v}" for v in VIEWS))
BASE = PolicyEngine.from_texts(real_texts())


def _entry(
    question: tuple[frozenset[str], str, str, Action, str, str], version: str, index: int
) -> tuple[int, dict[str, object]]:
    roles, clearance, department, action, purpose, resource = question
    extra = {"policy_action": action.value, "policy_resource": resource}
    if clearance:
        extra["clearance"] = clearance
    if department:
        extra["department"] = department
    entry = audit.AuditEntry(
        time=datetime(2026, 12, 1, tzinfo=UTC),
        actor="caller-1",
        actor_roles=tuple(sorted(roles)),
        tenant="acme",
        action="GetSubject",
        decision=audit.ALLOW,
        purpose=purpose,
        policy_version=version,
        subject_ids=(f"sub_{index:032d}",),
        extra=extra,
    )
    return index, entry.to_dict()


questions = st.tuples(
    st.frozensets(st.sampled_from((*ROLES, "no_such_role")), min_size=1, max_size=3),
    st.sampled_from(("", "0", "2", "3", "9")),
    st.sampled_from(("", "marketing", "risk")),
    st.sampled_from(tuple(Action)),
    st.sampled_from(PURPOSES),
    st.sampled_from(RESOURCES),
)


def _replay(
    draft: PolicyEngine, log: list[tuple[frozenset[str], str, str, Action, str, str]]
) -> Replayer:
    kept = Side(BASE, FIELDS)
    replayer = Replayer(Side(draft, FIELDS), lambda v: kept if v == BASE.version else None)
    replayer.add_all(_entry(q, BASE.version, i) for i, q in enumerate(log))
    return replayer


@SETTINGS
@given(st.lists(questions, min_size=1, max_size=60))
def test_replaying_against_the_producing_policy_changes_nothing(
    log: list[tuple[frozenset[str], str, str, Action, str, str]],
) -> None:
    same = PolicyEngine.from_texts(real_texts())
    report = _replay(same, log).report
    assert report.replayed == len(log)
    assert report.changed == 0 and report.groups == []


def _reordered(order: list[int]) -> dict[str, str]:
    texts = real_texts()
    lines = texts[POLICY_FILE].splitlines(keepends=True)
    rules = [line for line in lines if line.startswith(("p,", "g,"))]
    others = [line for line in lines if not line.startswith(("p,", "g,"))]
    texts[POLICY_FILE] = "".join(others) + "".join(rules[i % len(rules)] for i in order)
    return texts


@SETTINGS
@given(
    st.permutations(
        range(
            len([x for x in real_texts()[POLICY_FILE].splitlines() if x.startswith(("p,", "g,"))])
        )
    ),
    st.lists(questions, min_size=1, max_size=60),
)
def test_a_reordered_draft_equal_in_meaning_changes_nothing(
    order: list[int], log: list[tuple[frozenset[str], str, str, Action, str, str]]
) -> None:
    draft = PolicyEngine.from_texts(_reordered(order))
    report = _replay(draft, log).report
    assert report.changed == 0 and report.groups == []


def test_the_matrix_of_a_reordered_draft_is_unchanged() -> None:
    count = len([x for x in real_texts()[POLICY_FILE].splitlines() if x.startswith(("p,", "g,"))])
    draft = PolicyEngine.from_texts(_reordered(list(reversed(range(count)))))
    assert draft.version != BASE.version
    diff = matrix_diff(BASE, draft)
    assert diff.cells > 10_000 and diff.changes == ()


def test_identical_questions_are_decided_once() -> None:
    question = (
        frozenset({"support_agent"}),
        "2",
        "",
        Action.SUBJECT_READ,
        "support",
        "view:support",
    )
    replayer = _replay(BASE, [question] * 500)
    assert replayer.report.distinct_questions == 1 and replayer.report.replayed == 500


def test_a_new_role_shows_in_the_matrix_only_as_what_it_gains() -> None:
    texts = real_texts()
    texts[POLICY_FILE] += "p, auditor, *, audit:read, *, *, 0, *, allow\n"
    draft = PolicyEngine.from_texts(texts)
    changes = matrix_diff(BASE, draft).changes
    assert [(c.role, c.action, c.resource, c.before, c.after) for c in changes] == [
        ("auditor", "audit:read", r, "deny", "allow") for r in RESOURCES[:5]
    ] + [("auditor", "audit:read", f"view:{v}", "deny", "allow") for v in sorted(VIEWS)]


def _rules() -> list[str]:
    return [x for x in real_texts()[POLICY_FILE].splitlines() if x.startswith(("p,", "g,"))]


EXTRA_LINES = (
    "g, analyst, support_agent, *",
    "g, marketing, analyst, acme",
    "p, analyst, *, fields:clear, class:restricted, analytics, 3, *, allow",
    "p, support_agent, *, subjects:export, view:support, support, 2, marketing, allow",
    "p, *, *, subjects:read, view:support, *, 3, *, deny",
    "p, auditor, *, audit:*, *, *, 0, *, allow",
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sets(st.integers(0, len(_rules()) - 1), max_size=6),
    st.sets(st.sampled_from(EXTRA_LINES), max_size=3),
)
def test_skipping_unchanged_rows_gives_the_matrix_asking_every_cell_gives(
    removed: set[int], added: set[str]
) -> None:
    texts = real_texts()
    lines = texts[POLICY_FILE].splitlines(keepends=True)
    rules = _rules()
    kept = [line for line in lines if line.rstrip("\n") not in {rules[i] for i in removed}]
    texts[POLICY_FILE] = "".join(kept) + "".join(f"{line}\n" for line in sorted(added))
    draft = PolicyEngine.from_texts(texts)
    assert matrix_diff(BASE, draft) == matrix_diff(BASE, draft, skip_unchanged=False)
