"""Sealed field values: round trips and every way to break one (the pinned format and
the values stored before are known answers: tests/unit/test_known_answers.py)."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from vault.crypto import FieldProvenance, FieldSealer, KeyRing, sealed_dek_id
from vault.errors import DecryptionError

DEK = bytes(range(32))
SUBJECT = "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"
OPAQUE_MESSAGE = str(DecryptionError())
PROV = FieldProvenance(3, "order-service", 1_765_000_000_123_456)


def _assert_opaque_failure(
    sealer: FieldSealer,
    field: str,
    sealed: bytes,
    provenance: FieldProvenance | None = PROV,
) -> None:
    """Opening fails with the one DecryptionError: same message, no chained cause."""
    with pytest.raises(DecryptionError) as info:
        sealer.open(field, sealed, provenance)
    assert str(info.value) == OPAQUE_MESSAGE
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def _sealer(tenant: str = "acme", subject: str = SUBJECT, dek_id: int = 1) -> FieldSealer:
    return FieldSealer(DEK, tenant, subject, dek_id)


@given(
    plaintext=st.binary(max_size=512),
    tenant=st.text(max_size=20),
    subject=st.text(max_size=30),
    field=st.text(max_size=20),
    dek_id=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_round_trip(plaintext: bytes, tenant: str, subject: str, field: str, dek_id: int) -> None:
    sealer = FieldSealer(DEK, tenant, subject, dek_id)
    sealed = sealer.seal(field, plaintext, PROV)
    assert sealer.open(field, sealed, PROV) == plaintext
    assert len(sealed) == 5 + 12 + len(plaintext) + 16
    assert sealed_dek_id(sealed) == dek_id


def test_a_format_2_value_never_opens_without_its_provenance() -> None:
    sealed = _sealer().seal("email", b"jane@example.com", PROV)
    _assert_opaque_failure(_sealer(), "email", sealed, None)


@pytest.mark.parametrize(
    "other",
    [
        FieldProvenance(2, PROV.written_by, PROV.written_at),  # an older version
        FieldProvenance(4, PROV.written_by, PROV.written_at),
        FieldProvenance(PROV.version, "dpo-1", PROV.written_at),  # a forged writer
        FieldProvenance(PROV.version, PROV.written_by + "x", PROV.written_at),
        FieldProvenance(PROV.version, PROV.written_by, PROV.written_at + 1),
    ],
)
def test_a_value_opens_only_with_the_provenance_it_was_sealed_with(
    other: FieldProvenance,
) -> None:
    sealed = _sealer().seal("email", b"jane@example.com", PROV)
    assert _sealer().open("email", sealed, PROV) == b"jane@example.com"
    _assert_opaque_failure(_sealer(), "email", sealed, other)


def test_the_field_set_tag_binds_names_and_versions() -> None:
    sealer = _sealer()
    versions = {"email": 3, "given_name": 1, "phone": 2}
    tag = sealer.seal_field_set(versions)
    sealer.check_field_set(dict(reversed(versions.items())), tag)  # order does not matter
    for changed in (
        {**versions, "email": 2},  # one field rolled back
        {k: v for k, v in versions.items() if k != "phone"},  # one field removed
        {**versions, "notes": 3},  # one field added
        {"email": 3, "given_name": 1, "phon": 2},
    ):
        with pytest.raises(DecryptionError):
            sealer.check_field_set(changed, tag)
    for other in (_sealer("other"), _sealer(subject=SUBJECT[:-1] + "b"), _sealer(dek_id=2)):
        with pytest.raises(DecryptionError):
            other.check_field_set(versions, tag)
    for edited in (tag[:-1], tag + b"\0", bytes([tag[0] ^ 1]) + tag[1:], b""):
        with pytest.raises(DecryptionError):
            sealer.check_field_set(versions, edited)


def test_nonces_are_fresh_per_seal() -> None:
    sealer = _sealer()
    sealed = {sealer.seal("email", b"same", PROV) for _ in range(100)}
    assert len(sealed) == 100


@pytest.mark.parametrize(
    ("tenant", "subject", "field"),
    [
        ("other", SUBJECT, "email"),
        ("acme", "sub_bbbbbbbbbbbbbbbbbbbbbbbbbb", "email"),
        ("acme", SUBJECT, "phone"),
        # Length prefixes keep shifted boundaries apart: "acm" + "e..." is not "acme" + "...".
        ("acm", "e" + SUBJECT, "email"),
        ("acme", SUBJECT[:-1], SUBJECT[-1] + "email"),
    ],
)
def test_moved_ciphertext_fails(tenant: str, subject: str, field: str) -> None:
    sealed = _sealer().seal("email", b"jane@example.com", PROV)
    _assert_opaque_failure(_sealer(tenant, subject), field, sealed)


def test_every_edited_byte_fails() -> None:
    sealer = _sealer()
    sealed = sealer.seal("email", b"jane@example.com", PROV)
    # Covers the version byte, dek_id, nonce, ciphertext body and tag.
    for position in range(len(sealed)):
        for mask in (0x01, 0x80, 0xFF):
            edited = bytearray(sealed)
            edited[position] ^= mask
            _assert_opaque_failure(sealer, "email", bytes(edited))


@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_edited_byte_fails(position: int, mask: int) -> None:
    sealer = _sealer()
    edited = bytearray(sealer.seal("name", b"Jane Doe, 1 Main Street", PROV))
    edited[position % len(edited)] ^= mask
    _assert_opaque_failure(sealer, "name", bytes(edited))


def test_every_truncation_fails() -> None:
    sealer = _sealer()
    sealed = sealer.seal("email", b"jane@example.com", PROV)
    for length in range(len(sealed)):
        _assert_opaque_failure(sealer, "email", sealed[:length])
    _assert_opaque_failure(sealer, "email", sealed + b"\x00")


def test_wrong_version_byte_fails_even_with_a_valid_tag() -> None:
    # Re-encrypt under a version-3 header with a correct tag: still refused.
    nonce = os.urandom(12)
    header = b"\x03" + struct.pack(">I", 1)

    def lp(text: str) -> bytes:
        return struct.pack(">I", len(text)) + text.encode()

    aad = b"cv:field:v1" + lp("acme") + lp(SUBJECT) + lp("email") + header
    sealed = header + nonce + AESGCM(DEK).encrypt(nonce, b"x", aad)
    _assert_opaque_failure(_sealer(), "email", sealed)
    with pytest.raises(DecryptionError):
        sealed_dek_id(sealed)


def test_wrong_data_key_fails(ring: KeyRing) -> None:
    sealed = _sealer().seal("email", b"jane@example.com", PROV)
    other_dek, _ = ring.new_data_key()
    _assert_opaque_failure(ring.sealer(other_dek, "acme", SUBJECT), "email", sealed)


def test_other_dek_id_fails() -> None:
    sealed = _sealer(dek_id=1).seal("email", b"jane@example.com", PROV)
    _assert_opaque_failure(_sealer(dek_id=2), "email", sealed)


def test_sealer_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        FieldSealer(DEK[:16], "acme", SUBJECT)
    with pytest.raises(ValueError):
        FieldSealer(DEK, "acme", SUBJECT, dek_id=2**32)
    with pytest.raises(ValueError):
        FieldSealer(DEK, "acme", SUBJECT, dek_id=-1)


def test_repr_shows_no_key() -> None:
    sealer = _sealer()
    text = repr(sealer)
    assert DEK.hex() not in text
    assert repr(DEK)[2:-1] not in text
    assert "redacted" in text


@pytest.mark.parametrize(
    "stored",
    [
        FieldProvenance(0, PROV.written_by, PROV.written_at),
        FieldProvenance(2**64, PROV.written_by, PROV.written_at),
        FieldProvenance(PROV.version, "order-\ud800", PROV.written_at),
        FieldProvenance(PROV.version, PROV.written_by, 2**63),
    ],
)
def test_impossible_stored_provenance_is_the_same_opaque_failure(
    stored: FieldProvenance,
) -> None:
    # Provenance is read from the database: whatever a DBA writes there must fail the
    # way an edited ciphertext does, not as another exception.
    sealed = _sealer().seal("email", b"jane@example.com", PROV)
    _assert_opaque_failure(_sealer(), "email", sealed, stored)
    tag = _sealer().seal_field_set({"email": 1})
    for versions in ({"email": 0}, {"email": 2**64}, {"e\ud800": 1}):
        with pytest.raises(DecryptionError):
            _sealer().check_field_set(versions, tag)
