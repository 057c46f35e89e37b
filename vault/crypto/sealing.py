"""Sealed field values: AES-256-GCM under a subject's data key, bound to where they belong.

Format (version 1)::

    0x01 | dek_id (u32 big-endian) | nonce (12 random bytes) | ciphertext || tag (16)

Associated data::

    b"cv:field:v1" | lp(tenant) | lp(subject_id) | lp(field) | header (first 5 bytes)

where lp(s) is the UTF-8 bytes of s prefixed by their length as u32 big-endian. The
lengths keep the encoding unambiguous ("ab" + "c" differs from "a" + "bc"), so a
ciphertext copied to another tenant, subject or field, or with an edited header, fails.
"""

from __future__ import annotations

import os
import struct

from vault.crypto._primitives import GCM_NONCE_SIZE, GCM_TAG_SIZE, AesGcm
from vault.errors import DecryptionError

SEALED_VERSION = 1
DEK_SIZE = 32
HEADER_SIZE = 5
_AAD_LABEL = b"cv:field:v1"
_MIN_SEALED_SIZE = HEADER_SIZE + GCM_NONCE_SIZE + GCM_TAG_SIZE
_HEADER = struct.Struct(">BI")
_LENGTH = struct.Struct(">I")
_MAX_DEK_ID = 0xFFFFFFFF
_FIELD_CACHE_LIMIT = 4096
_field_prefixes: dict[str, bytes] = {}


def length_prefixed(text: str) -> bytes:
    """UTF-8 bytes of `text` prefixed by their length (u32 big-endian)."""
    data = text.encode("utf-8")
    return _LENGTH.pack(len(data)) + data


def _field_prefix(field: str) -> bytes:
    # Field names come from the data dictionary, a small set: encoding them once saves
    # work on every seal and open. The bound keeps odd callers from growing it forever.
    prefix = _field_prefixes.get(field)
    if prefix is None:
        prefix = length_prefixed(field)
        if len(_field_prefixes) < _FIELD_CACHE_LIMIT:
            _field_prefixes[field] = prefix
    return prefix


class FieldSealer:
    """Seals and opens one subject's fields under one data key.

    Built by `KeyRing.sealer`. Holds one AES-GCM object and the AAD prefix for the
    subject, so sealing many fields pays the key schedule and the encoding only once.
    Nonces are 96 random bits: safe for far more messages than one data key will see.
    """

    __slots__ = ("_aad_prefix", "_aead", "_header", "dek_id", "subject_id", "tenant")

    def __init__(self, dek: bytes, tenant: str, subject_id: str, dek_id: int = 1) -> None:
        if len(dek) != DEK_SIZE:
            raise ValueError("data key must be 32 bytes")
        if not 0 <= dek_id <= _MAX_DEK_ID:
            raise ValueError("dek_id must fit in an unsigned 32-bit integer")
        self.tenant = tenant
        self.subject_id = subject_id
        self.dek_id = dek_id
        self._aead = AesGcm(dek)
        self._header = _HEADER.pack(SEALED_VERSION, dek_id)
        self._aad_prefix = _AAD_LABEL + length_prefixed(tenant) + length_prefixed(subject_id)

    def __repr__(self) -> str:
        return (
            f"<FieldSealer tenant={self.tenant!r} subject_id={self.subject_id!r} "
            f"dek_id={self.dek_id} key=<redacted>>"
        )

    def seal(self, field: str, plaintext: bytes) -> bytes:
        """Encrypt `plaintext` for `field` of this subject; returns the sealed value."""
        nonce = os.urandom(GCM_NONCE_SIZE)
        aad = self._aad_prefix + _field_prefix(field) + self._header
        return self._header + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, field: str, sealed: bytes) -> bytes:
        """Decrypt a value sealed for `field` of this subject.

        Raises `DecryptionError`, whatever the cause: truncated, unknown version, another
        data key, another tenant, subject or field, or any edited byte.
        """
        # A header mismatch (version or dek_id) would also fail the tag check, since the
        # header is in the AAD; rejecting it first just avoids the work.
        if len(sealed) < _MIN_SEALED_SIZE or sealed[:HEADER_SIZE] != self._header:
            raise DecryptionError
        aad = self._aad_prefix + _field_prefix(field) + self._header
        nonce = sealed[HEADER_SIZE : HEADER_SIZE + GCM_NONCE_SIZE]
        return self._aead.decrypt(nonce, sealed[HEADER_SIZE + GCM_NONCE_SIZE :], aad)


def sealed_dek_id(sealed: bytes) -> int:
    """The data-key id in a sealed value's header (unauthenticated until opened).

    Lets a caller pick the right data key before opening; raises `DecryptionError` if
    the value is too short or not format version 1.
    """
    if len(sealed) < _MIN_SEALED_SIZE or sealed[0] != SEALED_VERSION:
        raise DecryptionError
    return int(_HEADER.unpack_from(sealed)[1])
