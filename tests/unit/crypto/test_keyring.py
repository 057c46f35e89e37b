"""The key ring: data keys, wrapping, and the cached derivers."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tests.unit.crypto.conftest import assert_no_secrets
from vault.crypto import FieldProvenance, KeyRing, WrappedDataKey
from vault.errors import DecryptionError

PROV = FieldProvenance(1, "order-service", 0)


def test_new_data_keys_are_random_and_unwrap(ring: KeyRing) -> None:
    dek, wrapped = ring.new_data_key()
    other, _ = ring.new_data_key()
    assert len(dek) == 32
    assert dek != other
    assert wrapped.kek_version == ring.provider.active_kek_version()
    assert dek not in wrapped.blob
    assert ring.unwrap(wrapped) == dek


def test_tampered_wrapped_key_fails(ring: KeyRing) -> None:
    _, wrapped = ring.new_data_key()
    for position in range(len(wrapped.blob)):
        edited = bytearray(wrapped.blob)
        edited[position] ^= 0x01
        with pytest.raises(DecryptionError):
            ring.unwrap(replace(wrapped, blob=bytes(edited)))
    for blob in (b"", wrapped.blob[:-8], wrapped.blob + b"\x00" * 8):
        with pytest.raises(DecryptionError):
            ring.unwrap(replace(wrapped, blob=blob))


def test_wrapped_key_of_wrong_size_fails(ring: KeyRing) -> None:
    # A well-formed wrapping of a 16-byte key is still not a data key.
    blob = ring.provider.wrap_key(1, os.urandom(16))
    with pytest.raises(DecryptionError):
        ring.unwrap(WrappedDataKey(1, blob))


def test_sealer_from_ring_round_trips(ring: KeyRing) -> None:
    dek, wrapped = ring.new_data_key()
    sealed = ring.sealer(dek, "acme", "sub_x", dek_id=3).seal("email", b"a@b.c", PROV)
    assert (
        ring.sealer(ring.unwrap(wrapped), "acme", "sub_x", 3).open("email", sealed, PROV)
        == b"a@b.c"
    )


def test_derivers_are_cached(ring: KeyRing) -> None:
    assert ring.blind_indexer() is ring.blind_indexer()
    assert ring.tokenizer() is ring.tokenizer()
    assert ring.pseudonymizer() is ring.pseudonymizer()


class _TransitStyleProvider:
    """A provider that keeps KEKs to itself and returns its own blob format, as a KMS would."""

    name = "transit-style"

    def __init__(self) -> None:
        self._versions = {1: os.urandom(32)}
        self._secrets = {p: os.urandom(32) for p in ("blind-index", "token", "pseudonym")}

    def active_kek_version(self) -> int:
        return max(self._versions)

    def kek_versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._versions))

    def wrap_key(self, kek_version: int, key: bytes) -> bytes:
        pad = self._versions[kek_version]
        return b"t1:" + bytes(a ^ b for a, b in zip(key, pad, strict=True))

    def unwrap_key(self, kek_version: int, wrapped: bytes) -> bytes:
        if kek_version not in self._versions or not wrapped.startswith(b"t1:"):
            raise DecryptionError
        return bytes(a ^ b for a, b in zip(wrapped[3:], self._versions[kek_version], strict=True))

    def root_secret(self, purpose: str, version: int | None = None) -> bytes:
        return self._secrets[purpose]

    def active_root_version(self, purpose: str) -> int:
        return 1

    def root_versions(self, purpose: str) -> tuple[int, ...]:
        return (1,)

    def refresh(self) -> bool:
        return False


def test_other_providers_fit_the_protocol() -> None:
    ring = KeyRing(_TransitStyleProvider())
    dek, wrapped = ring.new_data_key()
    assert wrapped.blob.startswith(b"t1:")
    assert ring.unwrap(wrapped) == dek
    assert len(ring.blind_indexer().compute("acme", "email", "a@b.c")) == 32


def test_reprs_show_no_key_material(ring: KeyRing, key_document: str) -> None:
    dek, wrapped = ring.new_data_key()
    texts = [
        repr(ring),
        repr(wrapped),
        repr(ring.sealer(dek, "acme", "sub_x")),
        repr(ring.blind_indexer()),
        repr(ring.tokenizer()),
        repr(ring.pseudonymizer()),
    ]
    for text in texts:
        assert_no_secrets(text, key_document)
        assert dek.hex() not in text
        assert repr(dek)[2:-1] not in text
        assert repr(wrapped.blob)[2:-1] not in text
