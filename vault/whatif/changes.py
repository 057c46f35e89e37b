"""What changes between two policies for one question: the decision, and for a view
the disclosure of each field (clear > masked, pseudonymized, tokenized or generalized >
withheld or omitted), with the lines of the draft that cause each change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from vault.errors import InvalidArgumentError, PermissionDeniedError
from vault.policy import DEFAULT_DENY, Action, Decision, PolicyEngine, class_resource
from vault.views.model import FieldPlan, FieldRef, FieldRule, Outcome, ViewPlan
from vault.whatif.question import Question


class ChangeKind(StrEnum):
    """How a decision or a field's disclosure changed."""

    ALLOW_TO_DENY = "allow->deny"
    DENY_TO_ALLOW = "deny->allow"
    WIDENED = "widened"
    NARROWED = "narrowed"
    CHANGED = "changed"
    """Shown as much as before, differently (another mask)."""


WIDENING = frozenset({ChangeKind.DENY_TO_ALLOW, ChangeKind.WIDENED})
NARROWING = frozenset({ChangeKind.ALLOW_TO_DENY, ChangeKind.NARROWED})

_RANK = {
    Outcome.CLEAR: 2,
    Outcome.MASKED: 1,
    Outcome.PSEUDONYMIZED: 1,
    Outcome.TOKENIZED: 1,
    Outcome.GENERALIZED: 1,
}  # withheld, omitted and absent: 0


@dataclass(frozen=True)
class GroupKey:
    """What a report groups changes by."""

    kind: ChangeKind
    roles: str
    action: str
    purpose: str
    sensitivity: str


@dataclass(frozen=True)
class Change:
    """One question's change under one group, the draft's causes, and what it touched."""

    key: GroupKey
    causes: tuple[str, ...]
    resource: str
    fields: tuple[str, ...] = ()


class Side:
    """One policy with the data dictionary's fields it decides views over."""

    def __init__(self, engine: PolicyEngine, fields: Sequence[FieldRef]) -> None:
        self.engine = engine
        self.fields = tuple(fields)
        self.classes = {f.name: f.sensitivity for f in self.fields}

    def decide(
        self, question: Question, action: Action | None = None, resource: str = ""
    ) -> Decision:
        """The engine's decision; a purpose or view it does not declare is a denial."""
        try:
            return self.engine.decide(
                question.principal,
                action or question.action,
                purpose=question.purpose or None,
                resource=resource or question.resource,
            )
        except InvalidArgumentError:
            return Decision(False, DEFAULT_DENY, "purpose or view not declared by this policy")

    def plan(self, question: Question) -> ViewPlan | None:
        """The caller's plan of the question's view (None when it may not use it)."""
        try:
            return self.engine.caller_plan(
                question.principal, question.view, question.purpose, question.action, self.fields
            )
        except (InvalidArgumentError, PermissionDeniedError):
            return None

    def sensitivity(self, field: str) -> str:
        return self.classes.get(field, "-")


def cause(decision: Decision) -> str:
    """A decision's line as a report cites it: ``allowed by vault_policy.csv:12: p, ...``."""
    if decision.rule == DEFAULT_DENY:
        return f"{DEFAULT_DENY}: {decision.reason}"
    return f"{decision.reason}: {decision.rule}"


def changes(question: Question, before: Side, after: Side) -> tuple[Change, ...]:
    """Every change `after` makes to `question` compared with `before`."""
    was, now = before.decide(question), after.decide(question)
    found: list[Change] = []
    if was.allowed != now.allowed:
        kind = ChangeKind.ALLOW_TO_DENY if was.allowed else ChangeKind.DENY_TO_ALLOW
        why = cause(now) if now.rule != DEFAULT_DENY else f"{cause(now)} (was {cause(was)})"
        key = GroupKey(
            kind, question.role_key, question.action, question.purpose, question.sensitivity
        )
        found.append(Change(key, (why,), question.resource))
    if question.view:
        found.extend(_field_changes(question, before, after, was, now))
    return tuple(found)


def _field_changes(
    question: Question, before: Side, after: Side, was: Decision, now: Decision
) -> list[Change]:
    old = before.plan(question) if was.allowed else None
    new = after.plan(question) if now.allowed else None
    names = dict.fromkeys(f.name for f in (*before.fields, *after.fields))
    grouped: dict[GroupKey, tuple[list[str], set[str]]] = {}
    for name in names:
        a, b = _outcome(old, name), _outcome(new, name)
        if (a.outcome, a.strategy) == (b.outcome, b.strategy):
            continue
        ra, rb = _RANK.get(a.outcome, 0), _RANK.get(b.outcome, 0)
        if ra == rb == 0:
            continue  # withheld either way (a reason changed, nothing shown)
        kind = (
            ChangeKind.WIDENED
            if rb > ra
            else ChangeKind.NARROWED
            if rb < ra
            else ChangeKind.CHANGED
        )
        sensitivity = after.sensitivity(name) if name in after.classes else before.sensitivity(name)
        key = GroupKey(kind, question.role_key, question.action, question.purpose, sensitivity)
        fields, causes = grouped.setdefault(key, ([], set()))
        fields.append(name)
        causes.update(_field_causes(question, name, before=before, after=after, was=was, now=now))
    return [
        Change(key, tuple(sorted(causes)), question.resource, tuple(fields))
        for key, (fields, causes) in grouped.items()
    ]


_ABSENT = FieldPlan("", Outcome.OMITTED)


def _outcome(plan: ViewPlan | None, name: str) -> FieldPlan:
    if plan is None:
        return _ABSENT
    return plan.outcome_of(name) or _ABSENT


def _field_causes(
    question: Question, name: str, *, before: Side, after: Side, was: Decision, now: Decision
) -> list[str]:
    """The draft's lines behind one field's change: the view decision, the field class
    grants (fields:clear, fields:masked), the view's rule and the field's class."""
    found = []
    if was.allowed != now.allowed:
        found.append(cause(now))
    old_class, new_class = before.sensitivity(name), after.sensitivity(name)
    if old_class != new_class:
        found.append(f"data_dictionary.yaml: field {name} class {old_class} -> {new_class}")
    for action in (Action.FIELD_CLEAR, Action.FIELD_MASKED):
        a = before.decide(question, action, class_resource(old_class))
        b = after.decide(question, action, class_resource(new_class))
        if a.allowed != b.allowed or (b.allowed and a.rule != b.rule):
            found.append(f"{action.value} on class:{new_class}: {cause(b)}")
    old_rule = before.engine.view_rule(question.view, name)
    new_rule = after.engine.view_rule(question.view, name)
    if old_rule != new_rule:
        change = f"{_rule(old_rule)} -> {_rule(new_rule)}"
        found.append(f"views.yaml: view {question.view}, field {name}: {change}")
    return found or [f"unchanged lines; plan of view {question.view} differs"]


def _rule(rule: FieldRule | None) -> str:
    if rule is None:
        return "(no such view)"
    return f"{rule.outcome.value}({rule.strategy})" if rule.strategy else rule.outcome.value
