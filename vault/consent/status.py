"""A subject's consent per purpose, as a caller (or the subject) wants to see it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vault.consent.ledger import derive
from vault.consent.models import ConsentAction, ConsentEvent, ConsentStatus, PurposeConsent
from vault.policy import LegalBasis, Purposes

_LEDGER_BASES = (LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTEREST)


def build_status(
    subject_id: str, events: Sequence[ConsentEvent], at: datetime, purposes: Purposes
) -> ConsentStatus:
    """Every purpose the ledger governs, and each opt-out marker, as of `at`.

    `effective` applies the same rules the policy engine applies at read time: a
    consent-based purpose needs an unexpired grant and no opt-out that covers it; a
    legitimate-interest purpose only needs no such opt-out. Purposes based on contract
    or legal obligation are not listed: consent does not govern them.
    """
    consent = derive(events, at)
    latest = {e.purpose: e for e in events}
    listed = []
    for name in purposes:
        declared = purposes.get(name)
        if declared.legal_basis not in _LEDGER_BASES:
            continue
        event = latest.get(name)
        granted = name in consent.consented
        blocked_by = purposes.opt_out_blocks(declared, consent.opted_out) or ""
        needs_grant = declared.legal_basis is LegalBasis.CONSENT
        listed.append(
            PurposeConsent(
                purpose=name,
                granted=granted,
                withdrawn=name in consent.opted_out,
                expires_at=_expiry(event),
                effective=not blocked_by and (granted or not needs_grant),
                blocked_by=blocked_by,
                legal_basis=declared.legal_basis.value,
            )
        )
    for marker in purposes.markers:
        withdrawn = marker in consent.opted_out
        listed.append(
            PurposeConsent(
                purpose=marker,
                granted=False,
                withdrawn=withdrawn,
                expires_at=None,
                effective=not withdrawn,
                blocked_by=marker if withdrawn else "",
            )
        )
    markers = tuple(sorted(m for m in purposes.markers if m in consent.opted_out))
    return ConsentStatus(subject_id, at, consent.version, tuple(listed), markers)


def _expiry(event: ConsentEvent | None) -> datetime | None:
    if event is None or event.action is not ConsentAction.GRANT:
        return None
    return event.expires_at
