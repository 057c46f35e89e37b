"""Rendering a subject through a masked view: policy plan, decrypt what is needed, mask.

The plan comes from the policy engine (cached per caller, view and purpose, then
adjusted for the subject's state and consent). Only the fields the plan shows are
decrypted; withheld and omitted fields are never opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from vault import telemetry
from vault.consent.models import SubjectConsent, subject_context
from vault.crypto import KeyRing
from vault.errors import FieldViolation, InvalidArgumentError
from vault.fields.dictionary import DataDictionary
from vault.policy import Action, PolicyEngine, ViewDecision
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.storage.subjects import SubjectRow
from vault.subject import SubjectMeta
from vault.views import Outcome, apply_view, fields_needed, outcomes_of


class Disclosure(StrEnum):
    """How a returned value relates to the stored one."""

    CLEAR = "clear"
    MASKED = "masked"
    PSEUDONYMIZED = "pseudonymized"
    TOKENIZED = "tokenized"
    GENERALIZED = "generalized"


_DISCLOSURE = {
    Outcome.CLEAR: Disclosure.CLEAR,
    Outcome.MASKED: Disclosure.MASKED,
    Outcome.PSEUDONYMIZED: Disclosure.PSEUDONYMIZED,
    Outcome.TOKENIZED: Disclosure.TOKENIZED,
    Outcome.GENERALIZED: Disclosure.GENERALIZED,
}


@dataclass(frozen=True)
class DisclosedField:
    """One field as a view shows it, with the provenance of the stored value."""

    value: str
    disclosure: Disclosure
    strategy: str
    written_by: str
    written_at: datetime


@dataclass(frozen=True)
class SubjectView:
    """What a caller gets back: the fields the view disclosed and why others were withheld."""

    meta: SubjectMeta
    view: str
    fields: dict[str, DisclosedField]
    withheld: dict[str, str]
    rule: str = ""
    subject_rule: str = ""
    consent_version: str = ""


class ViewRenderer:
    """Applies a view to stored subjects for one caller and purpose."""

    def __init__(
        self,
        policy: PolicyEngine,
        dictionary: DataDictionary,
        sealing: RecordCipher,
        keyring: KeyRing,
    ) -> None:
        self._policy = policy
        self._fields = tuple(dictionary.fields.values())
        self._sealing = sealing
        self._pseudonymizer = keyring.pseudonymizer()
        self._keyring = keyring  # tokens follow the active token-key version

    def check_view(self, view: str) -> None:
        """Refuse an undeclared view before any policy decision is taken."""
        if view not in self._policy.views:
            raise InvalidArgumentError([FieldViolation("view", "undeclared view")])

    def plan(
        self,
        principal: Principal,
        view: str,
        purpose: str,
        *,
        action: Action,
        meta: SubjectMeta,
        consent: SubjectConsent | None = None,
    ) -> ViewDecision:
        """The plan for this subject (raises PermissionDeniedError if the view is refused)."""
        with telemetry.span("policy.plan_view"):
            return self._policy.plan_view(
                principal, view, purpose, action, self._fields, subject_context(meta, consent)
            )

    def render(
        self,
        principal: Principal,
        view: str,
        purpose: str,
        row: SubjectRow,
        *,
        today: date,
        action: Action = Action.SUBJECT_READ,
        consent: SubjectConsent | None = None,
    ) -> SubjectView:
        """Decrypt only what the plan shows, then mask, tokenize or generalize it."""
        decision = self.plan(
            principal, view, purpose, action=action, meta=row.meta, consent=consent
        )
        plan = decision.plan
        opened = self._sealing.open(row, fields_needed(plan))
        result = apply_view(
            plan,
            {name: value.value for name, value in opened.items()},
            tenant=row.meta.tenant,
            pseudonymize=self._pseudonymizer.pseudonym,
            tokenize=self._keyring.tokenizer().deterministic,
            today=today,
        )
        shown: dict[str, DisclosedField] = {}
        outcomes = outcomes_of(plan)
        for name, value in result.fields.items():
            outcome, strategy = outcomes[name]
            source = opened[name]
            shown[name] = DisclosedField(
                value, _DISCLOSURE[outcome], strategy, source.written_by, source.written_at
            )
        return SubjectView(
            row.meta,
            view,
            shown,
            dict(result.withheld),
            decision.rule,
            decision.subject_rule,
            decision.consent_version,
        )
