"""The subject-dependent part of a decision: state, consent and opt-outs.

None of this is a Casbin input. The server builds a `SubjectContext` from storage (the
subject row and the consent ledger), never from the request, and the engine applies
these rules after the policy lines allowed the request. They cost a few set lookups,
so they run on every request, uncached.
"""

from __future__ import annotations

from dataclasses import dataclass

from vault.policy.actions import Action
from vault.policy.decisions import Decision
from vault.policy.purposes import LegalBasis, Purpose, Purposes

ACTIVE = "active"
RESTRICTED = "restricted"
PENDING_ANONYMIZATION = "pending_anonymization"
ANONYMIZED = "anonymized"
ERASED = "erased"
_LIVE = frozenset({ACTIVE, PENDING_ANONYMIZATION})
_GONE = frozenset({ANONYMIZED, ERASED})

STATE_RULE = "state:"
"""Prefix of the `rule` of a decision refused by the subject's state."""

# Erased and anonymized subjects have nothing left to read or change; erasing again is
# idempotent and an access request still reports who saw the data before.
_ALLOWED_WHEN_GONE = frozenset(
    {Action.SUBJECT_ERASE, Action.RIGHTS_ERASE, Action.RIGHTS_ACCESS, Action.AUDIT_READ,
     Action.CONSENT_READ}
)  # fmt: skip
# Restriction freezes processing, not the record of the subject's own choices or the
# audit trail; everything else needs a purpose declared allowed_when_restricted.
_ALLOWED_WHEN_RESTRICTED = frozenset(
    {Action.CONSENT_READ, Action.CONSENT_WRITE, Action.AUDIT_READ, Action.AUDIT_VERIFY,
     Action.LEGAL_HOLD}
)  # fmt: skip
_ERASURES = frozenset({Action.SUBJECT_ERASE, Action.RIGHTS_ERASE})


@dataclass(frozen=True)
class SubjectContext:
    """What the policy needs to know about the subject a request touches.

    `state` is one of active, restricted, pending_anonymization, anonymized, erased;
    consent and opt-outs are the ledger's current state (purpose names, plus opt-out
    markers such as ``all_sharing``). `consent_version` goes to the audit entry.
    """

    state: str
    consented_purposes: frozenset[str] = frozenset()
    opted_out_purposes: frozenset[str] = frozenset()
    legal_hold: bool = False
    consent_version: str = ""


def state_refusal(subject: SubjectContext, action: str, purpose: Purpose | None) -> Decision | None:
    """A refusal because of the subject's state, or None when the state allows it."""
    state = subject.state
    if state in _LIVE:
        refused = False
    elif state in _GONE:
        refused = action not in _ALLOWED_WHEN_GONE
    elif state == RESTRICTED:
        refused = action not in _ALLOWED_WHEN_RESTRICTED and not (
            purpose is not None and purpose.allowed_when_restricted
        )
    else:
        # An unknown state is a bug upstream; fail closed.
        return Decision(False, STATE_RULE + "unknown", "subject state unknown")
    if refused:
        return Decision(False, STATE_RULE + state, f"subject is {state}")
    if subject.legal_hold and action in _ERASURES:
        return Decision(False, STATE_RULE + "legal_hold", "subject is under legal hold")
    return None


def is_gone(subject: SubjectContext) -> bool:
    """Erased or anonymized: a read of such a subject fails as a whole."""
    return subject.state in _GONE


def consent_refusal(
    purposes: Purposes, purpose: Purpose, subject: SubjectContext
) -> Decision | None:
    """A refusal because the legal basis of `purpose` is not met for this subject.

    consent: the subject consented and did not opt out since; legitimate interest:
    no opt-out of the purpose or of a group it belongs to; contract and legal
    obligation: consent and opt-outs do not apply.
    """
    basis = purpose.legal_basis
    if basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        return None
    blocked_by = purposes.opt_out_blocks(purpose, subject.opted_out_purposes)
    if blocked_by is not None:
        return Decision(False, f"opt-out:{blocked_by}", f"subject opted out ({blocked_by})")
    if basis is LegalBasis.CONSENT and purpose.name not in subject.consented_purposes:
        return Decision(False, f"consent:{purpose.name}", f"no consent for purpose {purpose.name}")
    return None
