"""Applying a `ViewPlan` to one subject's decrypted values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from vault.views.masking import GENERALIZERS, MASKS, Strategy
from vault.views.model import FieldPlan, Outcome, ViewPlan, ViewResult

KeyedTransform = Callable[[str, str, str], str]
"""(tenant, field, value) -> pseudonym or token, e.g. `Pseudonymizer.pseudonym`."""


_CLEAR, _STRATEGY, _PSEUDONYMIZE, _TOKENIZE = range(4)
Step = tuple[str, int, Strategy | None]
"""(field, kind, function): `_CLEAR` shows the value as is, `_STRATEGY` applies the
function (a mask or a generalization), `_PSEUDONYMIZE` / `_TOKENIZE` hand the value to
the caller's keyed transform."""


@dataclass(frozen=True)
class CompiledPlan:
    """A `ViewPlan` reduced to what rendering does per subject: the shown fields as a
    tuple of (field, kind, function) steps in plan order, and the withheld fields' reasons."""

    fields: tuple[FieldPlan, ...]
    steps: tuple[Step, ...]
    withheld: Mapping[str, str]
    needed: frozenset[str]
    """The fields whose values rendering reads (`fields_needed`)."""
    outcomes: Mapping[str, tuple[Outcome, str]]
    """Each planned field's outcome and strategy."""


def compiled(plan: ViewPlan) -> CompiledPlan:
    """The compiled form of `plan`, built on first use and kept on the plan (plans are
    cached per caller, view and purpose by the policy engine, so this runs once each)."""
    slot = plan._compiled  # the plan keeps its compiled form for this module
    if slot:
        found = slot[0]
        if isinstance(found, CompiledPlan) and found.fields is plan.fields:
            return found
    steps: list[Step] = []
    withheld: dict[str, str] = {}
    for item in plan.fields:
        outcome = item.outcome
        if outcome is Outcome.OMITTED:
            continue
        if outcome is Outcome.WITHHELD:
            withheld[item.field] = item.reason
        elif outcome is Outcome.CLEAR:
            steps.append((item.field, _CLEAR, None))
        elif outcome is Outcome.MASKED:
            steps.append((item.field, _STRATEGY, MASKS[item.strategy]))
        elif outcome is Outcome.GENERALIZED:
            steps.append((item.field, _STRATEGY, GENERALIZERS[item.strategy]))
        elif outcome is Outcome.PSEUDONYMIZED:
            steps.append((item.field, _PSEUDONYMIZE, None))
        else:
            steps.append((item.field, _TOKENIZE, None))
    result = CompiledPlan(
        plan.fields,
        tuple(steps),
        MappingProxyType(withheld),
        frozenset(name for name, _, _ in steps),
        MappingProxyType({f.field: (f.outcome, f.strategy) for f in plan.fields}),
    )
    slot[:] = [result]
    return result


def apply_view(
    plan: ViewPlan,
    values: Mapping[str, str],
    *,
    tenant: str,
    pseudonymize: KeyedTransform,
    tokenize: KeyedTransform,
    today: date,
) -> ViewResult:
    """Render `values` (decrypted, normalized) through `plan`.

    Fields the subject has no value for are left out; withheld fields are listed with
    their reason whether or not the subject has a value, so the answer does not reveal
    which fields are set.
    """
    plan_steps = compiled(plan)
    get = values.get
    shown: dict[str, str] = {}
    for name, kind, function in plan_steps.steps:
        value = get(name)
        if value is None:
            continue
        if function is not None:
            shown[name] = function(value, today)
        elif kind == _CLEAR:
            shown[name] = value
        elif kind == _PSEUDONYMIZE:
            shown[name] = pseudonymize(tenant, name, value)
        else:
            shown[name] = tokenize(tenant, name, value)
    return ViewResult(fields=shown, withheld=dict(plan_steps.withheld))


def fields_needed(plan: ViewPlan) -> frozenset[str]:
    """The fields whose values `apply_view` will read: decrypt only these."""
    return compiled(plan).needed


def outcomes_of(plan: ViewPlan) -> Mapping[str, tuple[Outcome, str]]:
    """Each field of `plan` -> its outcome and strategy (built once per plan)."""
    return compiled(plan).outcomes
