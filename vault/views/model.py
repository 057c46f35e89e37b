"""What a masked view is, and what a plan for one caller and one subject looks like."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    """How one field appears in a view's output."""

    CLEAR = "clear"
    MASKED = "masked"
    PSEUDONYMIZED = "pseudonymized"
    TOKENIZED = "tokenized"
    GENERALIZED = "generalized"
    OMITTED = "omitted"
    WITHHELD = "withheld"


class WithheldReason(StrEnum):
    """Why a field the view would show was held back (the response says so)."""

    POLICY = "policy"
    CONSENT = "consent"
    STATE = "state"


class FieldRef(Protocol):
    """A field as the data dictionary describes it; all a view plan needs to know.

    `vault.fields.dictionary.FieldSpec` satisfies it; so does `FieldDescriptor`.
    """

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def sensitivity(self) -> str: ...


@dataclass(frozen=True)
class FieldDescriptor:
    """A plain `FieldRef`: name, type name and sensitivity class."""

    name: str
    type: str
    sensitivity: str


@dataclass(frozen=True)
class FieldRule:
    """What a view does with one field at best: an outcome and, for masked or
    generalized outcomes, the strategy's name."""

    outcome: Outcome
    strategy: str = ""


OMIT = FieldRule(Outcome.OMITTED)


@dataclass(frozen=True)
class ViewDefinition:
    """A named projection from views.yaml; fields it does not list are omitted."""

    name: str
    description: str
    rules: Mapping[str, FieldRule]
    justification_required: bool = False

    @property
    def needs_justification(self) -> bool:
        """Reading through this view needs a stated reason: it says so, or it shows
        every field it lists in clear (a full clear-text view)."""
        return self.justification_required or (
            bool(self.rules) and all(r.outcome is Outcome.CLEAR for r in self.rules.values())
        )

    def rule_for(self, field_name: str) -> FieldRule:
        """The view's rule for a field (omitted when the view does not list it)."""
        return self.rules.get(field_name, OMIT)


@dataclass(frozen=True)
class FieldPlan:
    """The decided outcome for one field, or `WITHHELD` with the reason."""

    field: str
    outcome: Outcome
    strategy: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ViewPlan:
    """Everything `apply_view` needs: one `FieldPlan` per field, decided by policy.

    `rule` is the policy line that allowed the view; `policy_version` the content hash
    of the policy that decided, both for the audit entry.
    """

    view: str
    purpose: str
    rule: str
    policy_version: str
    fields: tuple[FieldPlan, ...]
    _variants: dict[str, ViewPlan] = field(default_factory=dict, compare=False, repr=False)
    _compiled: list[object] = field(default_factory=list, compare=False, repr=False)
    """`vault.views.apply.compiled` keeps this plan's compiled form here (one slot)."""

    def withheld_all(self, reason: WithheldReason) -> ViewPlan:
        """This plan with every field it would show withheld for `reason`.

        Memoized per plan: consent and state refusals are common and the plans they
        derive from are cached, so the derived plan is built once.
        """
        variant = self._variants.get(reason)
        if variant is None:
            fields = tuple(
                f
                if f.outcome is Outcome.OMITTED
                else FieldPlan(f.field, Outcome.WITHHELD, "", reason)
                for f in self.fields
            )
            variant = replace(self, fields=fields, _variants={}, _compiled=[])
            self._variants[reason] = variant
        return variant

    def outcome_of(self, field_name: str) -> FieldPlan | None:
        """The plan of one field, or None when the plan does not mention it."""
        for plan in self.fields:
            if plan.field == field_name:
                return plan
        return None


@dataclass(frozen=True, slots=True)
class ViewResult:
    """A view applied to one subject: shown values, and withheld fields with the reason."""

    fields: dict[str, str]
    withheld: dict[str, str]
