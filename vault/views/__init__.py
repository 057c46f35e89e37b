"""Masked views: named projections of a subject's fields, and the masking strategies.

The policy engine (`vault.policy`) decides a `ViewPlan` per caller, view, purpose and
subject; `apply_view` renders decrypted values through it.
"""

from vault.views.apply import KeyedTransform, apply_view, fields_needed, outcomes_of
from vault.views.masking import GENERALIZERS, MASKS, Strategy
from vault.views.model import (
    FieldDescriptor,
    FieldPlan,
    FieldRef,
    FieldRule,
    Outcome,
    ViewDefinition,
    ViewPlan,
    ViewResult,
    WithheldReason,
)

__all__ = [
    "GENERALIZERS",
    "MASKS",
    "FieldDescriptor",
    "FieldPlan",
    "FieldRef",
    "FieldRule",
    "KeyedTransform",
    "Outcome",
    "Strategy",
    "ViewDefinition",
    "ViewPlan",
    "ViewResult",
    "WithheldReason",
    "apply_view",
    "fields_needed",
    "outcomes_of",
]
