"""Known answers for the project's own formats: how each value is recomputed.

`tests/vectors/kat/<name>.json` holds, per format, fixed keys and inputs and the bytes
the code produced for them. `tests/unit/test_known_answers.py` recomputes every case
with the functions below and compares; `scripts/gen_kat.py` writes the files with the
same functions (only when a format changes on purpose). The keys are test keys, fixed
here so the answers are reproducible; nothing outside the tests may use them.

Ed25519 signatures are deterministic (RFC 8032), so receipts, checkpoint notes and
tokens are reproduced byte for byte from the key and the inputs. A sealed value takes
a random nonce the API does not let a caller choose: its file records the nonce, and
the test checks the layout around it (header, nonce, AAD) instead of re-sealing.
`sealed_value_v1` keeps format-1 values (no longer written, still opened), and
`fields_blob_v2` the JSON fields blob written before the binary `fields_blob`.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest import mock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.checkpoint import Checkpoint, CheckpointSigner
from audit.merkle import leaf_hash, root_of
from tests.data import VECTORS
from vault.clock import Clock
from vault.consent.models import Channel, ConsentAction, ConsentEvent
from vault.consent.receipts import ReceiptContext, ReceiptIssuer
from vault.crypto import BlindIndexer, FieldProvenance, FieldSealer, Pseudonymizer, Tokenizer
from vault.crypto.sealing import length_prefixed
from vault.fields.dictionary import DataDictionary
from vault.identity import TokenIssuer
from vault.policy.purposes import LegalBasis, Purpose, Purposes
from vault.principal import Principal

KAT = VECTORS / "kat"
REPO_ROOT = Path(__file__).resolve().parents[1]
FORMATS = (
    "sealed_value",
    "sealed_value_v1",
    "fields_blob",
    "fields_blob_v2",
    "blind_index",
    "consent_receipt",
    "checkpoint_note",
    "bearer_token",
)


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((KAT / f"{name}.json").read_text(encoding="utf-8"))
    return document


def private_pem(seed_hex: str) -> bytes:
    """The PKCS#8 PEM of the Ed25519 key with this 32-byte seed."""
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(seed_hex: str) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment.astimezone(UTC)


# --- sealed value (vault/crypto/sealing.py) ---------------------------------------------


def sealer(case: dict[str, Any]) -> FieldSealer:
    return FieldSealer(
        bytes.fromhex(case["dek"]), case["tenant"], case["subject_id"], case["dek_id"]
    )


def provenance(case: dict[str, Any]) -> FieldProvenance:
    return FieldProvenance(case["version"], case["written_by"], case["written_at"])


def _place(case: dict[str, Any]) -> bytes:
    return length_prefixed(case["tenant"]) + length_prefixed(case["subject_id"])


def field_aad_v1(case: dict[str, Any], header: bytes) -> bytes:
    """Format 1's associated data as the format spells it (independent of the code)."""
    return b"cv:field:v1" + _place(case) + length_prefixed(case["field"]) + header


def field_aad(case: dict[str, Any], header: bytes) -> bytes:
    """Format 2's associated data as the format spells it (independent of the code)."""
    return (
        b"cv:field:v2"
        + _place(case)
        + length_prefixed(case["field"])
        + struct.pack(">Q", case["version"])
        + length_prefixed(case["written_by"])
        + struct.pack(">q", case["written_at"])
        + header
    )


def field_set_aad(case: dict[str, Any], header: bytes) -> bytes:
    """The field-set tag's associated data: the subject's (field, version) pairs by name."""
    versions = case["field_set"]
    pairs = b"".join(
        length_prefixed(name) + struct.pack(">Q", versions[name]) for name in sorted(versions)
    )
    count = struct.pack(">I", len(versions))
    return b"cv:fieldset:v1" + _place(case) + count + pairs + header


@contextmanager
def fixed_nonce(nonce: bytes) -> Iterator[None]:
    """Make the sealer's one call for random bytes return `nonce` (the generator only)."""
    with mock.patch("vault.crypto.sealing.os.urandom", side_effect=[nonce]):
        yield


def compute_sealed_value(case: dict[str, Any]) -> dict[str, str]:
    plaintext = case["plaintext"].encode("utf-8")
    with fixed_nonce(bytes.fromhex(case["nonce"])):
        sealed = sealer(case).seal(case["field"], plaintext, provenance(case))
    with fixed_nonce(bytes.fromhex(case["field_set_nonce"])):
        tag = sealer(case).seal_field_set(case["field_set"])
    return {
        "aad": field_aad(case, sealed[:5]).hex(),
        "sealed": sealed.hex(),
        "field_set_aad": field_set_aad(case, sealed[:5]).hex(),
        "field_set_tag": tag.hex(),
    }


def compute_sealed_value_v1(case: dict[str, Any]) -> dict[str, str]:
    """Format 1, which the code no longer writes (it still opens it): computed from the
    format's specification with AES-GCM directly."""
    header = struct.pack(">BI", 1, case["dek_id"])
    nonce = bytes.fromhex(case["nonce"])
    aad = field_aad_v1(case, header)
    body = AESGCM(bytes.fromhex(case["dek"])).encrypt(nonce, case["plaintext"].encode(), aad)
    return {"aad": aad.hex(), "sealed": (header + nonce + body).hex()}


# --- fields blob (vault/storage/fields_blob.py) -----------------------------------------


def blob_sealer(case: dict[str, Any]) -> FieldSealer:
    return FieldSealer(bytes.fromhex(case["dek"]), case["tenant"], case["subject_id"], 1)


def sealed_fields(case: dict[str, Any]) -> tuple[list[tuple[dict[str, Any], bytes]], bytes]:
    """The case's values sealed under their recorded nonces, and the field-set tag."""
    sealed = []
    for field in case["fields"]:
        bound = FieldProvenance(field["version"], field["written_by"], field["written_at"])
        with fixed_nonce(bytes.fromhex(field["nonce"])):
            value = blob_sealer(case).seal(field["field"], field["plaintext"].encode(), bound)
        sealed.append((field, value))
    versions = {field["field"]: field["version"] for field in case["fields"]}
    with fixed_nonce(bytes.fromhex(case["field_set_nonce"])):
        tag = blob_sealer(case).seal_field_set(versions)
    return sealed, tag


def compute_fields_blob(case: dict[str, Any]) -> dict[str, str]:
    """Format 3 as the format spells it (independent of the code): 0x03 | tag (28) |
    count u16 | per field: written_at i64 | version i64 | len(name) u8 | len(writer)
    u16 | len(sealed) u32 | name | writer | sealed."""
    sealed, tag = sealed_fields(case)
    parts = [b"\x03", tag, struct.pack(">H", len(sealed))]
    for field, value in sealed:
        name, writer = field["field"].encode(), field["written_by"].encode()
        sizes = struct.pack(">BHI", len(name), len(writer), len(value))
        times = struct.pack(">qq", field["written_at"], field["version"])
        parts += [times, sizes, name, writer, value]
    return {"blob": b"".join(parts).hex()}


def compute_fields_blob_v2(case: dict[str, Any]) -> dict[str, str]:
    """Format 2, JSON, which the vault wrote before format 3 (still read; the
    migration's downgrade writes it again): {"v":2,"f":{name:[sealed base64, writer,
    written_at, version]},"t":tag base64}, compact, fields in stored order."""
    sealed, tag = sealed_fields(case)
    entries = {
        field["field"]: [
            base64.b64encode(value).decode(), field["written_by"], field["written_at"],
            field["version"],
        ]
        for field, value in sealed
    }  # fmt: skip
    doc = {"v": 2, "f": entries, "t": base64.b64encode(tag).decode()}
    return {"blob": json.dumps(doc, separators=(",", ":"))}


# --- blind index, deterministic token, pseudonym (vault/crypto/derived.py) --------------


def dictionary() -> DataDictionary:
    return DataDictionary.from_file(REPO_ROOT / "policies" / "data_dictionary.yaml")


def compute_blind_index(case: dict[str, Any], fields: DataDictionary) -> dict[str, str]:
    root = bytes.fromhex(case["root_secret"])
    tenant, field = case["tenant"], case["field"]
    normalized = fields.normalize_one(field, case["raw"], today=date.fromisoformat(case["today"]))
    return {
        "normalized": normalized,
        "blind_index": BlindIndexer(root).compute(tenant, field, normalized).hex(),
        "deterministic_token": Tokenizer(root, case.get("key_version", 1)).deterministic(
            tenant, field, normalized
        ),
        "pseudonym": Pseudonymizer(root).pseudonym(tenant, field, normalized),
    }


# --- consent receipt (vault/consent/receipts.py) ----------------------------------------


def receipt_issuer(case: dict[str, Any]) -> ReceiptIssuer:
    issuer = case["issuer"]
    return ReceiptIssuer(
        private_pem=private_pem(case["seed"]),
        public_pem=public_pem(case["seed"]),
        controller=issuer["controller"],
        controller_contact=issuer["controller_contact"],
        policy_url=issuer["policy_url"],
        pii_categories=tuple(issuer["pii_categories"]),
        sensitive_categories=tuple(issuer["sensitive_categories"]),
    )


def purposes(case: dict[str, Any]) -> Purposes:
    declared = {
        name: Purpose(
            name,
            LegalBasis(spec["legal_basis"]),
            spec["description"],
            marketing=spec.get("marketing", False),
            sharing=spec.get("sharing", False),
        )
        for name, spec in case["purposes"].items()
    }
    return Purposes(declared, case["opt_out_markers"])


def receipt_facts(case: dict[str, Any]) -> ReceiptContext:
    facts = case["facts"]
    issued_at = _when(facts["issued_at"])
    events = [
        ConsentEvent(
            id=number,
            tenant=facts["tenant"],
            subject_id=facts["subject_id"],
            purpose=event["purpose"],
            action=ConsentAction(event["action"]),
            recorded_at=issued_at,
            expires_at=_when(event["expires_at"]) if event.get("expires_at") else None,
            channel=Channel(facts["channel"]),
            notice_version=facts["notice_version"],
            evidence_ref=facts["evidence_ref"],
            jurisdiction=facts["jurisdiction"],
            receipt_id=facts["receipt_id"],
            actor="kat",
        )
        for number, event in enumerate(facts["events"], start=1)
    ]
    return ReceiptContext(
        receipt_id=facts["receipt_id"],
        subject_id=facts["subject_id"],
        tenant=facts["tenant"],
        issued_at=issued_at,
        channel=Channel(facts["channel"]),
        jurisdiction=facts["jurisdiction"],
        notice_version=facts["notice_version"],
        evidence_ref=facts["evidence_ref"],
        consent_version=facts["consent_version"],
        events=events,
    )


def compute_consent_receipt(case: dict[str, Any]) -> dict[str, str]:
    return {"document": receipt_issuer(case).issue(receipt_facts(case), purposes(case))}


# --- checkpoint note (audit/checkpoint.py) ----------------------------------------------


def checkpoint(case: dict[str, Any]) -> Checkpoint:
    leaves = [leaf_hash(text.encode("utf-8")) for text in case["leaves"]]
    return Checkpoint(case["origin"], len(leaves), root_of(leaves))


def compute_checkpoint_note(case: dict[str, Any]) -> dict[str, str]:
    signer = CheckpointSigner(private_pem(case["seed"]), case["key_name"])
    head = checkpoint(case)
    return {
        "root": head.root_hash.hex(),
        "note": signer.sign(head),
        "verifier_key": signer.verifier_key,
    }


# --- bearer token (vault/identity/tokens.py) --------------------------------------------


def token_principal(case: dict[str, Any]) -> Principal:
    who = case["principal"]
    return Principal(
        who["id"], who["tenant"], frozenset(who["roles"]), MappingProxyType(dict(who["attrs"]))
    )


def token_clock(case: dict[str, Any]) -> Clock:
    return FixedClock(_when(case["now"]))


@contextmanager
def fixed_jti(jti: str) -> Iterator[None]:
    """Make the issuer's one random token id `jti` (it takes no id from its caller)."""
    with mock.patch("vault.identity.tokens.uuid.uuid4", side_effect=[uuid.UUID(jti)]):
        yield


def compute_bearer_token(case: dict[str, Any]) -> dict[str, str]:
    issuer = TokenIssuer(
        private_pem(case["seed"]),
        issuer=case["issuer"],
        audience=case["audience"],
        clock=token_clock(case),
    )
    with fixed_jti(case["jti"]):
        token = issuer.issue(
            token_principal(case),
            timedelta(seconds=case["ttl_seconds"]),
            bound_to=case.get("bound_to"),
        )
    return {"token": token}
