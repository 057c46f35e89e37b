"""The project's own formats against their known answers in tests/vectors/kat/.

Each case is recomputed from its fixed keys and inputs and compared byte for byte, so
a change of format (a label, an encoding, a field order, a length) fails here until
the files are regenerated on purpose with `scripts/gen_kat.py`. Each stored answer is
also read back the way a consumer reads it (open, verify), so an old value stays
readable.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.checkpoint import CheckpointVerifier
from tests import kat
from vault.consent.receipts import verify_document
from vault.crypto import FieldProvenance, ed25519_key_id, sealed_dek_id
from vault.errors import DecryptionError
from vault.fields.dictionary import DataDictionary
from vault.identity import TokenVerifier
from vault.storage.fields_blob import decode_fields, encode_fields, encode_json
from vault.subject import StoredField


def _cases(name: str) -> list[Any]:
    cases = kat.load(name)["cases"]
    return [pytest.param(case, id=f"{name}-{n}") for n, case in enumerate(cases)]


def test_every_format_has_its_file_and_cases() -> None:
    assert sorted(path.stem for path in kat.KAT.glob("*.json")) == sorted(kat.FORMATS)
    for name in kat.FORMATS:
        document = kat.load(name)
        assert document["cases"], name
        assert all("expected" in case for case in document["cases"])


# --- sealed value -----------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("sealed_value"))
def test_sealed_value_layout(case: dict[str, Any]) -> None:
    """Format 2: 0x02 | dek_id u32 BE | 12-byte nonce | AES-256-GCM(ciphertext || tag),
    with the AAD `cv:field:v2 | lp(tenant) | lp(subject) | lp(field) | version u64 |
    lp(written_by) | written_at i64 | header`; and the field-set tag over the subject's
    (field, version) pairs."""
    sealed = bytes.fromhex(case["expected"]["sealed"])
    plaintext = case["plaintext"].encode("utf-8")
    header = struct.pack(">BI", 2, case["dek_id"])
    assert sealed[:5] == header
    assert sealed[5:17] == bytes.fromhex(case["nonce"])
    assert len(sealed) == 5 + 12 + len(plaintext) + 16
    aad = kat.field_aad(case, header)
    assert aad.hex() == case["expected"]["aad"]
    aead = AESGCM(bytes.fromhex(case["dek"]))
    assert aead.encrypt(sealed[5:17], plaintext, aad) == sealed[17:]
    tag = bytes.fromhex(case["expected"]["field_set_tag"])
    assert tag[:12] == bytes.fromhex(case["field_set_nonce"]) and len(tag) == 28
    set_aad = kat.field_set_aad(case, header)
    assert set_aad.hex() == case["expected"]["field_set_aad"]
    assert aead.encrypt(tag[:12], b"", set_aad) == tag[12:]


@pytest.mark.parametrize("case", _cases("sealed_value"))
def test_a_stored_sealed_value_still_opens(case: dict[str, Any]) -> None:
    sealed = bytes.fromhex(case["expected"]["sealed"])
    provenance = kat.provenance(case)
    opened = kat.sealer(case).open(case["field"], sealed, provenance)
    assert opened == case["plaintext"].encode("utf-8")
    assert sealed_dek_id(sealed) == case["dek_id"]
    kat.sealer(case).check_field_set(
        case["field_set"], bytes.fromhex(case["expected"]["field_set_tag"])
    )
    older = FieldProvenance(provenance.version + 1, provenance.written_by, provenance.written_at)
    for field, bound in (
        (case["field"] + "x", provenance),
        (case["field"], older),
        (case["field"], None),
    ):
        with pytest.raises(DecryptionError):
            kat.sealer(case).open(field, sealed, bound)


@pytest.mark.parametrize("case", _cases("sealed_value"))
def test_sealing_now_produces_the_same_layout(case: dict[str, Any]) -> None:
    """The sealer takes no nonce from its caller: seal afresh and check the result has
    the known layout and AAD (AES-GCM under that nonce gives exactly its bytes)."""
    plaintext = case["plaintext"].encode("utf-8")
    fresh = kat.sealer(case).seal(case["field"], plaintext, kat.provenance(case))
    header = struct.pack(">BI", 2, case["dek_id"])
    assert fresh[:5] == header
    assert len(fresh) == len(bytes.fromhex(case["expected"]["sealed"]))
    aead = AESGCM(bytes.fromhex(case["dek"]))
    assert aead.encrypt(fresh[5:17], plaintext, kat.field_aad(case, header)) == fresh[17:]
    assert kat.sealer(case).open(case["field"], fresh, kat.provenance(case)) == plaintext
    tag = kat.sealer(case).seal_field_set(case["field_set"])
    assert aead.encrypt(tag[:12], b"", kat.field_set_aad(case, header)) == tag[12:]


@pytest.mark.parametrize("case", _cases("sealed_value_v1"))
def test_a_stored_format_1_value_still_opens(case: dict[str, Any]) -> None:
    """Format 1 (0x01, AAD `cv:field:v1 | lp(tenant) | lp(subject) | lp(field) | header`)
    is no longer written; values stored in it open without a provenance, never with one."""
    sealed = bytes.fromhex(case["expected"]["sealed"])
    header = struct.pack(">BI", 1, case["dek_id"])
    assert sealed[:5] == header and sealed[5:17] == bytes.fromhex(case["nonce"])
    assert kat.field_aad_v1(case, header).hex() == case["expected"]["aad"]
    assert kat.compute_sealed_value_v1(case) == case["expected"]
    assert kat.sealer(case).open(case["field"], sealed) == case["plaintext"].encode("utf-8")
    assert sealed_dek_id(sealed) == case["dek_id"]
    with pytest.raises(DecryptionError):
        kat.sealer(case).open(case["field"] + "x", sealed)
    with pytest.raises(DecryptionError):
        kat.sealer(case).open(case["field"], sealed, FieldProvenance(1, "order-service", 0))


# --- fields blob ------------------------------------------------------------------------


def _opens_as_recorded(case: dict[str, Any], blob: bytes) -> None:
    """The blob decodes to the case's fields, each opens to its plaintext under its
    provenance and the set checks under the tag."""
    stored = decode_fields(blob)
    assert list(stored) == [field["field"] for field in case["fields"]]
    versions = {field["field"]: field["version"] for field in case["fields"]}
    assert stored.versions == versions
    kat.blob_sealer(case).check_field_set(versions, stored.tag or b"")
    for field in case["fields"]:
        value = stored[field["field"]]
        assert (value.written_by, value.written_at) == (field["written_by"], field["written_at"])
        bound = FieldProvenance(field["version"], field["written_by"], field["written_at"])
        opened = kat.blob_sealer(case).open(field["field"], value.sealed, bound)
        assert opened == field["plaintext"].encode("utf-8")


@pytest.mark.parametrize("case", _cases("fields_blob"))
def test_fields_blob_layout(case: dict[str, Any]) -> None:
    """Format 3: 0x03 | tag | count u16 | per field written_at i64 | version i64 |
    name, writer and sealed lengths (u8, u16, u32) | name | writer | sealed."""
    blob = bytes.fromhex(case["expected"]["blob"])
    assert kat.compute_fields_blob(case) == case["expected"]
    sealed, tag = kat.sealed_fields(case)
    stored = {
        f["field"]: StoredField(value, f["written_by"], f["written_at"], f["version"])
        for f, value in sealed
    }
    assert encode_fields(stored, tag) == blob
    _opens_as_recorded(case, blob)


@pytest.mark.parametrize("case", _cases("fields_blob_v2"))
def test_a_stored_format_2_json_blob_still_opens(case: dict[str, Any]) -> None:
    """Format 2 (JSON, base64 values) is no longer written by the vault, only by the
    migration's downgrade; rows in it are still read."""
    blob = case["expected"]["blob"].encode("utf-8")
    assert kat.compute_fields_blob_v2(case) == case["expected"]
    _opens_as_recorded(case, blob)
    stored = decode_fields(blob)
    assert encode_json(stored, stored.tag) == blob


# --- blind index, deterministic token, pseudonym ----------------------------------------


@pytest.fixture(scope="module")
def dictionary() -> DataDictionary:
    return kat.dictionary()


@pytest.mark.parametrize("case", _cases("blind_index"))
def test_blind_index(case: dict[str, Any], dictionary: DataDictionary) -> None:
    assert kat.compute_blind_index(case, dictionary) == case["expected"]


# --- consent receipt --------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("consent_receipt"))
def test_consent_receipt(case: dict[str, Any]) -> None:
    assert kat.compute_consent_receipt(case) == case["expected"]


@pytest.mark.parametrize("case", _cases("consent_receipt"))
def test_a_stored_consent_receipt_still_verifies(case: dict[str, Any]) -> None:
    document = case["expected"]["document"]
    public = kat.public_pem(case["seed"])
    receipt = verify_document(document.encode("ascii"), public)
    assert receipt["consentReceiptID"] == case["facts"]["receipt_id"]
    envelope = json.loads(document)
    assert envelope["signature"]["kid"] == ed25519_key_id(public)
    assert envelope["signature"]["alg"] == "Ed25519"


# --- checkpoint note --------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("checkpoint_note"))
def test_checkpoint_note(case: dict[str, Any]) -> None:
    assert kat.compute_checkpoint_note(case) == case["expected"]


@pytest.mark.parametrize("case", _cases("checkpoint_note"))
def test_a_stored_checkpoint_note_still_verifies(case: dict[str, Any]) -> None:
    expected = case["expected"]
    verifier = CheckpointVerifier.from_verifier_key(expected["verifier_key"], origin=case["origin"])
    head = verifier.verify(expected["note"])
    assert (head.origin, head.size, head.root_hash.hex()) == (
        case["origin"],
        len(case["leaves"]),
        expected["root"],
    )
    root = base64.b64encode(bytes.fromhex(expected["root"])).decode()
    assert expected["note"].startswith(f"{case['origin']}\n{len(case['leaves'])}\n{root}\n\n")
    assert f"\n\u2014 {case['key_name']} " in expected["note"]


# --- bearer token -----------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("bearer_token"))
def test_bearer_token(case: dict[str, Any]) -> None:
    assert kat.compute_bearer_token(case) == case["expected"]


@pytest.mark.parametrize("case", _cases("bearer_token"))
def test_a_stored_bearer_token_still_verifies(case: dict[str, Any]) -> None:
    token = case["expected"]["token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "JWT"}
    verifier = TokenVerifier(
        kat.public_pem(case["seed"]),
        issuer=case["issuer"],
        audience=case["audience"],
        clock=kat.token_clock(case),
        leeway_seconds=0,
    )
    assert verifier.verify(token, certificate=case.get("bound_to")) == kat.token_principal(case)
