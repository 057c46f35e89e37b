"""Applying a `ViewPlan` to one subject's decrypted values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from vault.views.masking import GENERALIZERS, MASKS
from vault.views.model import Outcome, ViewPlan, ViewResult

KeyedTransform = Callable[[str, str, str], str]
"""(tenant, field, value) -> pseudonym or token, e.g. `Pseudonymizer.pseudonym`."""


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
    shown: dict[str, str] = {}
    withheld: dict[str, str] = {}
    for item in plan.fields:
        outcome = item.outcome
        if outcome is Outcome.OMITTED:
            continue
        if outcome is Outcome.WITHHELD:
            withheld[item.field] = item.reason
            continue
        value = values.get(item.field)
        if value is None:
            continue
        if outcome is Outcome.CLEAR:
            shown[item.field] = value
        elif outcome is Outcome.MASKED:
            shown[item.field] = MASKS[item.strategy](value, today)
        elif outcome is Outcome.GENERALIZED:
            shown[item.field] = GENERALIZERS[item.strategy](value, today)
        elif outcome is Outcome.PSEUDONYMIZED:
            shown[item.field] = pseudonymize(tenant, item.field, value)
        else:
            shown[item.field] = tokenize(tenant, item.field, value)
    return ViewResult(fields=shown, withheld=withheld)


def fields_needed(plan: ViewPlan) -> frozenset[str]:
    """The fields whose values `apply_view` will read: decrypt only these."""
    return frozenset(
        f.field for f in plan.fields if f.outcome not in (Outcome.OMITTED, Outcome.WITHHELD)
    )
