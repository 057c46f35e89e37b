"""A view plan with the subject rules applied: what `PolicyEngine.plan_view` returns."""

from __future__ import annotations

from dataclasses import dataclass

from vault.errors import FailedPreconditionError
from vault.policy.purposes import LegalBasis, Purpose, Purposes
from vault.policy.subject import SubjectContext, consent_refusal, is_gone, state_refusal
from vault.views.model import ViewPlan, WithheldReason

# The consent ledger is consulted only for these bases; for the others the consent
# version is not relied on and the audit entry records none.
_LEDGER_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTEREST})


@dataclass(frozen=True)
class ViewDecision:
    """The plan to render for one subject, and why it looks the way it does.

    `subject_rule` is empty when the subject's state and consent changed nothing;
    otherwise it names the rule that withheld the whole plan (``state:restricted``,
    ``consent:marketing``, ``opt-out:all_sharing``). `consent_version` is the ledger
    version the decision relied on, empty when the purpose's legal basis does not look
    at consent. Both go to the audit entry.
    """

    plan: ViewPlan
    subject_rule: str = ""
    consent_version: str = ""

    @property
    def rule(self) -> str:
        """The policy line that let the caller use the view for the purpose."""
        return self.plan.rule

    @property
    def policy_version(self) -> str:
        """The content hash of the policy that decided."""
        return self.plan.policy_version

    @property
    def withheld(self) -> bool:
        """True when a subject rule withheld every field of the view."""
        return bool(self.subject_rule)


def apply_subject(
    plan: ViewPlan,
    purposes: Purposes,
    purpose: Purpose,
    action: str,
    subject: SubjectContext,
) -> ViewDecision:
    """Narrow a caller's plan by the subject's state, consent and opt-outs.

    An erased or anonymized subject has nothing to show: `FailedPreconditionError`.
    Any other state refusal (restricted for a purpose not allowed then, an unknown
    state) withholds every field with reason ``state``; a consent or opt-out refusal
    withholds every field with reason ``consent``. Withholding instead of raising keeps
    exports streaming past such subjects while telling the caller why.
    """
    consent_version = subject.consent_version if purpose.legal_basis in _LEDGER_BASES else ""
    if is_gone(subject):
        raise FailedPreconditionError(f"subject is {subject.state}")
    refusal = state_refusal(subject, action, purpose)
    if refusal is not None:
        return ViewDecision(plan.withheld_all(WithheldReason.STATE), refusal.rule)
    refusal = consent_refusal(purposes, purpose, subject)
    if refusal is not None:
        return ViewDecision(
            plan.withheld_all(WithheldReason.CONSENT), refusal.rule, consent_version
        )
    return ViewDecision(plan, "", consent_version)
