"""What the consent ledger records, and the state derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from vault.policy import SubjectContext
from vault.subject import SubjectMeta


class Channel(StrEnum):
    """How the subject expressed the choice (the receipt's collection method)."""

    WEB = "web"
    APP = "app"
    CALL_CENTRE = "call_centre"
    API = "api"
    GPC = "gpc"
    """A Global Privacy Control signal: an opt-out of all sharing, never a grant."""


class ConsentAction(StrEnum):
    """One ledger event: the subject said yes, or no, to a purpose or a group of them."""

    GRANT = "grant"
    WITHDRAW = "withdraw"


@dataclass(frozen=True)
class ConsentEvent:
    """One row of the ledger. `purpose` is a declared purpose or an opt-out marker."""

    id: int
    tenant: str
    subject_id: str
    purpose: str
    action: ConsentAction
    recorded_at: datetime
    expires_at: datetime | None
    channel: Channel
    notice_version: str
    evidence_ref: str
    jurisdiction: str
    receipt_id: str
    actor: str

    def in_force_at(self, moment: datetime) -> bool:
        """A grant counts until it expires; a withdrawal until a later event replaces it."""
        return self.expires_at is None or moment < self.expires_at


@dataclass(frozen=True)
class NewConsentEvent:
    """An event about to be appended (the ledger assigns the id)."""

    purpose: str
    action: ConsentAction
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ConsentChange:
    """What a grant, withdrawal or opt-out appended: its events and the signed receipt."""

    subject_id: str
    consent_version: str
    events: tuple[ConsentEvent, ...]
    receipt_id: str
    receipt_document: str


@dataclass(frozen=True)
class PurposeConsent:
    """The derived state of one purpose (or opt-out marker) of one subject."""

    purpose: str
    granted: bool
    withdrawn: bool
    expires_at: datetime | None
    effective: bool
    """Whether processing for this purpose may rely on the subject's choice right now."""
    blocked_by: str
    """The opt-out (the purpose itself or a marker) that stops it, empty when none."""
    legal_basis: str = ""
    """The purpose's legal basis (purposes.yaml); empty for an opt-out marker."""


@dataclass(frozen=True)
class ConsentStatus:
    """A subject's consent at one moment, rebuilt from the ledger."""

    subject_id: str
    at: datetime
    consent_version: str
    purposes: tuple[PurposeConsent, ...]
    opted_out_markers: tuple[str, ...]


@dataclass(frozen=True)
class SubjectConsent:
    """A subject's current consent state (empty until the consent ledger says more)."""

    consented: frozenset[str] = frozenset()
    opted_out: frozenset[str] = frozenset()
    version: str = ""


def subject_context(meta: SubjectMeta, consent: SubjectConsent | None = None) -> SubjectContext:
    """What the policy needs to know about a subject, built from storage only."""
    consent = consent or SubjectConsent()
    return SubjectContext(
        state=meta.state.value,
        consented_purposes=consent.consented,
        opted_out_purposes=consent.opted_out,
        legal_hold=meta.legal_hold,
        consent_version=consent.version,
    )
