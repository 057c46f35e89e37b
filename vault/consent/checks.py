"""Validation of consent requests: every violation at once, before anything is written.

Nothing a caller types freely reaches the ledger, which outlives erasure inside signed
receipts. An evidence reference is an opaque random id, `ev_` and 26 lower-case base32
characters (the shape of the vault's own ids, e.g. `new_random_id("ev")` or
`customer-vault consent new-evidence-ref`): the caller's system keeps the proof (a form
submission, a call recording) under that id, so the ledger never holds a name, an
address, a path or a number that could be one. A notice version must be one of the
`notice_versions` configured in `policies/purposes.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vault.consent.models import Channel
from vault.errors import FieldViolation
from vault.policy import LegalBasis, Purposes

MAX_PURPOSES = 32
EVIDENCE_REF_PATTERN = r"ev_[a-z2-7]{26}"
_EVIDENCE_REF = re.compile(EVIDENCE_REF_PATTERN)
_JURISDICTION = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?")
_RECEIPT_ID = re.compile(r"rcpt_[a-z2-7]{26}")
_LEDGER_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTEREST})


@dataclass(frozen=True)
class ConsentRequest:
    """A grant, withdrawal or opt-out as the caller sent it (not yet validated)."""

    subject_id: str
    purposes: Sequence[str]
    channel: Channel | None
    notice_version: str
    evidence_ref: str = ""
    jurisdiction: str = ""
    expires_at: datetime | None = None
    receipt_id: str = ""


def common(request: ConsentRequest, notice_versions: frozenset[str]) -> list[FieldViolation]:
    """Checks every kind of change shares: subject, channel, notice, evidence, jurisdiction.

    `notice_versions` are the configured ones (`Purposes.notice_versions`)."""
    violations = []
    if not request.subject_id:
        violations.append(FieldViolation("subject_id", "required"))
    if request.channel is None:
        violations.append(FieldViolation("channel", "must name how the subject chose"))
    if request.notice_version not in notice_versions:
        violations.append(
            FieldViolation("notice_version", "not a configured notice version (purposes.yaml)")
        )
    if request.evidence_ref and not is_evidence_ref(request.evidence_ref):
        violations.append(
            FieldViolation("evidence_ref", "must be an opaque id: ev_ and 26 base32 characters")
        )
    if request.jurisdiction and not _JURISDICTION.fullmatch(request.jurisdiction):
        violations.append(FieldViolation("jurisdiction", "an ISO 3166 code such as EU or US-CA"))
    return violations


def purposes(
    names: Sequence[str], declared: Purposes, *, markers_allowed: bool, required: bool = True
) -> list[FieldViolation]:
    """Each name must be a purpose the ledger governs (consent or legitimate interest),
    or, where allowed, an opt-out marker; no repeats."""
    violations = []
    if required and not names:
        violations.append(FieldViolation("purposes", "name at least one purpose"))
    if len(names) > MAX_PURPOSES:
        violations.append(FieldViolation("purposes", f"at most {MAX_PURPOSES}"))
    seen: set[str] = set()
    for index, name in enumerate(names):
        path = f"purposes[{index}]"
        if name in seen:
            violations.append(FieldViolation(path, "repeated"))
        seen.add(name)
        if name in declared.markers:
            if not markers_allowed:
                violations.append(FieldViolation(path, "an opt-out marker: use OptOut"))
        elif name not in declared:
            violations.append(FieldViolation(path, "undeclared purpose"))
        elif declared.get(name).legal_basis not in _LEDGER_BASES:
            violations.append(
                FieldViolation(path, "consent does not apply to this purpose's legal basis")
            )
    return violations


def grant_terms(request: ConsentRequest, now: datetime) -> list[FieldViolation]:
    """A grant needs an affirmative channel and, if it expires, a future expiry."""
    violations = []
    if request.channel is Channel.GPC:
        violations.append(FieldViolation("channel", "a GPC signal can only opt out"))
    if request.expires_at is not None and request.expires_at <= now:
        violations.append(FieldViolation("expires_at", "must be in the future"))
    return violations


def no_expiry(request: ConsentRequest) -> list[FieldViolation]:
    if request.expires_at is not None:
        return [FieldViolation("expires_at", "only grants expire")]
    return []


def withdrawal_target(request: ConsentRequest) -> list[FieldViolation]:
    """A withdrawal names purposes or the receipt of the grant it revokes, not both."""
    if bool(request.purposes) == bool(request.receipt_id):
        return [FieldViolation("purposes", "name purposes or a receipt_id (one of them)")]
    if request.receipt_id and not is_receipt_id(request.receipt_id):
        return [FieldViolation("receipt_id", "not a receipt id")]
    return []


def is_evidence_ref(text: str) -> bool:
    """Shaped like an opaque evidence reference: `ev_` + 26 base32 characters."""
    return _EVIDENCE_REF.fullmatch(text) is not None


def is_receipt_id(text: str) -> bool:
    """Shaped like the receipt ids the vault issues (checked before any lookup)."""
    return _RECEIPT_ID.fullmatch(text) is not None
