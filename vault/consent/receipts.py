"""Signed consent receipts: the Kantara Consent Receipt (v1.1) fields, Ed25519-signed.

A receipt document is the canonical JSON (sorted keys, no spaces, ASCII only) of

    {"format": "customervault.consent-receipt/v1",
     "receipt": {...Kantara fields...},
     "signature": {"alg": "Ed25519", "kid": "<key id>", "value": "<base64url>"}}

where the signature is detached: it covers the canonical bytes of `receipt` alone.
A verifier accepts only a document that is exactly in canonical form (one trailing
newline allowed), so any edited byte fails: either the form, the receipt, the key id
or the signature no longer matches. Receipts name the subject by its random id only,
never by personal data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.consent.models import Channel, ConsentAction, ConsentEvent
from vault.crypto import (
    SignatureError,
    ed25519_key_id,
    load_ed25519_private_pem,
    load_ed25519_public_pem,
    sign_ed25519,
    verify_ed25519,
)
from vault.errors import VaultError
from vault.fields.dictionary import DataDictionary
from vault.policy import Purposes
from vault.views.model import FieldRef

FORMAT = "customervault.consent-receipt/v1"
PACKAGE_FORMAT = "customervault.signed-access-package/v1"
"""An access package signed like a receipt: {"format", "package", "signature"}."""
KANTARA_VERSION = "KI-CR-v1.1.0"
ALGORITHM = "Ed25519"
SERVICE = "customer-vault"
EXTENSION = "x-customervault"


class ReceiptError(VaultError):
    """A receipt document does not verify; `reason` says which stage refused it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"consent receipt does not verify: {reason}")
        self.reason = reason


def canonical(document: object) -> bytes:
    """The one byte form of a JSON document that is signed and compared."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


@dataclass(frozen=True)
class ReceiptContext:
    """The facts of one change that its receipt states."""

    receipt_id: str
    subject_id: str
    tenant: str
    issued_at: datetime
    channel: Channel
    jurisdiction: str
    notice_version: str
    evidence_ref: str
    consent_version: str
    events: Sequence[ConsentEvent]


@dataclass(frozen=True)
class ReceiptIssuer:
    """Builds and signs receipts with the controller's details and the receipt key."""

    private_pem: bytes
    public_pem: bytes
    controller: str
    controller_contact: str
    policy_url: str
    pii_categories: tuple[str, ...]
    sensitive_categories: tuple[str, ...]
    fields: tuple[FieldRef, ...] = ()
    """The dictionary's fields, for what each purpose can use under the policy."""

    @classmethod
    def load(
        cls,
        private_key: Path,
        public_key: Path,
        *,
        controller: str,
        controller_contact: str,
        policy_url: str,
        dictionary: DataDictionary,
    ) -> ReceiptIssuer:
        """An issuer with the key pair from files; PII categories are the dictionary's
        field names, the restricted-class ones also listed as sensitive."""
        fields = dictionary.fields.values()
        return cls(
            private_pem=load_ed25519_private_pem(private_key),
            public_pem=load_ed25519_public_pem(public_key),
            controller=controller,
            controller_contact=controller_contact,
            policy_url=policy_url,
            pii_categories=tuple(sorted(f.name for f in fields)),
            sensitive_categories=tuple(
                sorted(f.name for f in fields if f.sensitivity == "restricted")
            ),
            fields=tuple(fields),
        )

    def issue(
        self,
        facts: ReceiptContext,
        purposes: Purposes,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> str:
        """The signed receipt document (canonical JSON text). `categories` names, per
        purpose of the receipt, the fields that purpose can use under the policy in force
        (`PolicyEngine.fields_usable_for`); without it, every dictionary field."""
        receipt = self._receipt(facts, purposes, categories)
        signature = sign_ed25519(self.private_pem, canonical(receipt))
        envelope = {
            "format": FORMAT,
            "receipt": receipt,
            "signature": {
                "alg": ALGORITHM,
                "kid": ed25519_key_id(self.public_pem),
                "value": _b64(signature),
            },
        }
        return canonical(envelope).decode("ascii")

    def sign_package(self, package: dict[str, Any]) -> str:
        """An access package as a signed document (canonical JSON text), the signature
        detached over the canonical bytes of `package`, exactly as for a receipt."""
        signature = sign_ed25519(self.private_pem, canonical(package))
        envelope = {
            "format": PACKAGE_FORMAT,
            "package": package,
            "signature": {
                "alg": ALGORITHM,
                "kid": ed25519_key_id(self.public_pem),
                "value": _b64(signature),
            },
        }
        return canonical(envelope).decode("ascii")

    def _receipt(
        self,
        facts: ReceiptContext,
        purposes: Purposes,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        if categories is None:
            sensitive = list(self.sensitive_categories)
        else:
            named = {name for event in facts.events for name in categories.get(event.purpose, ())}
            sensitive = [c for c in self.sensitive_categories if c in named]
        return {
            "version": KANTARA_VERSION,
            "jurisdiction": facts.jurisdiction,
            "consentTimestamp": int(facts.issued_at.timestamp()),
            "collectionMethod": facts.channel.value,
            "consentReceiptID": facts.receipt_id,
            "language": "en",
            "piiPrincipalId": facts.subject_id,
            "piiControllers": [
                {
                    "piiController": self.controller,
                    "onBehalf": False,
                    "contact": self.controller_contact,
                }
            ],
            "policyUrl": self.policy_url,
            "services": [
                {
                    "service": SERVICE,
                    "purposes": [
                        self._purpose(e, facts, purposes, categories) for e in facts.events
                    ],
                }
            ],
            "sensitive": bool(sensitive),
            "spiCat": sensitive,
            EXTENSION: {
                "tenant": facts.tenant,
                "issuedAt": facts.issued_at.isoformat(),
                "consentVersion": facts.consent_version,
                "noticeVersion": facts.notice_version,
                "evidenceRef": facts.evidence_ref,
            },
        }

    def _purpose(
        self,
        event: ConsentEvent,
        facts: ReceiptContext,
        purposes: Purposes,
        categories: Mapping[str, Sequence[str]] | None,
    ) -> dict[str, Any]:
        if event.purpose in purposes.markers:
            flag = purposes.markers[event.purpose]
            category, disclosure = f"opt_out_marker:{flag}", flag == "sharing"
        else:
            declared = purposes.get(event.purpose)
            category, disclosure = declared.legal_basis.value, declared.sharing
        if event.action is ConsentAction.GRANT:
            termination = event.expires_at.isoformat() if event.expires_at else "on withdrawal"
        else:
            termination = "withdrawn"
        return {
            "purpose": event.purpose,
            "purposeCategory": [category],
            "consentType": "GPC" if facts.channel is Channel.GPC else "EXPLICIT",
            "consentAction": event.action.value,
            "piiCategory": list(
                self.pii_categories if categories is None else categories.get(event.purpose, ())
            ),
            "primaryPurpose": False,
            "termination": termination,
            "thirdPartyDisclosure": disclosure,
        }


def verify_document(document: bytes, public_pem: bytes) -> dict[str, Any]:
    """The receipt inside `document`, if it is canonical and signed by `public_pem`'s key.

    Raises `ReceiptError` otherwise. Needs nothing but the public key (offline).
    """
    return _verify_envelope(document, public_pem, FORMAT, "receipt")


def verify_package(document: bytes, public_pem: bytes) -> dict[str, Any]:
    """The access package inside a signed package document, checked like a receipt."""
    return _verify_envelope(document, public_pem, PACKAGE_FORMAT, "package")


def _verify_envelope(
    document: bytes, public_pem: bytes, format_name: str, key: str
) -> dict[str, Any]:
    body = document.removesuffix(b"\n")
    try:
        envelope = json.loads(body.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ReceiptError(f"not a JSON {key} document") from None
    if not isinstance(envelope, dict) or set(envelope) != {"format", key, "signature"}:
        raise ReceiptError(f"not a {key} document")
    if canonical(envelope) != body:
        raise ReceiptError("not in canonical form (edited?)")
    inner, signature = envelope[key], envelope["signature"]
    if envelope["format"] != format_name or not isinstance(inner, dict):
        raise ReceiptError(f"unknown {key} format")
    if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM:
        raise ReceiptError("unknown signature algorithm")
    if signature.get("kid") != ed25519_key_id(public_pem):
        raise ReceiptError("signed by another key")
    try:
        verify_ed25519(public_pem, canonical(inner), _unb64(signature.get("value")))
    except SignatureError:
        raise ReceiptError("signature does not verify") from None
    return inner


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: object) -> bytes:
    """Strict base64url: only the one encoding of the bytes is accepted."""
    if not isinstance(text, str):
        raise SignatureError
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError from None
    if _b64(raw) != text:
        raise SignatureError
    return raw
