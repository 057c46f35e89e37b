"""Sealed field values: AES-256-GCM under a subject's data key, bound to where they belong,
to the version of the subject they were written in and to who wrote them when.

Format (version 2)::

    0x02 | dek_id (u32 big-endian) | nonce (12 random bytes) | ciphertext || tag (16)

Associated data::

    b"cv:field:v2" | lp(tenant) | lp(subject_id) | lp(field)
        | field_version (u64) | lp(written_by) | written_at (i64, microseconds)
        | header (first 5 bytes)

where lp(s) is the UTF-8 bytes of s prefixed by their length as u32 big-endian. The
lengths keep the encoding unambiguous ("ab" + "c" differs from "a" + "bc"), so a
ciphertext copied to another tenant, subject or field, with an edited header, or stored
beside another version, writer or time than it was sealed with, fails. The provenance
is stored in clear beside the value and handed back to `open`.

Field set: one tag per subject binds which fields it has and the version of each::

    nonce (12) | AES-256-GCM tag (16) over no plaintext, associated data
    b"cv:fieldset:v1" | lp(tenant) | lp(subject_id) | count (u32)
        | for each field, by name: lp(field) | field_version (u64) | header

so an older value put back in place of a newer one (with its old provenance) or a field
deleted or added fails too; only the subject's whole set of values, tag included, can be
replaced by an older copy (see docs/security.md).

Format 1 (``0x01 | dek_id | nonce | ciphertext || tag``, associated data
``b"cv:field:v1" | lp(tenant) | lp(subject_id) | lp(field) | header``, no field set) is
still opened, for values written before format 2; it binds no version and no writer.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from vault.crypto._primitives import GCM_NONCE_SIZE, GCM_TAG_SIZE, AesGcm
from vault.errors import DecryptionError

SEALED_VERSION = 2
LEGACY_SEALED_VERSION = 1
DEK_SIZE = 32
HEADER_SIZE = 5
FIELD_SET_TAG_SIZE = GCM_NONCE_SIZE + GCM_TAG_SIZE
_AAD_LABEL = b"cv:field:v2"
_LEGACY_AAD_LABEL = b"cv:field:v1"
_FIELD_SET_LABEL = b"cv:fieldset:v1"
_MIN_SEALED_SIZE = HEADER_SIZE + GCM_NONCE_SIZE + GCM_TAG_SIZE
_HEADER = struct.Struct(">BI")
_LENGTH = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PROVENANCE_TIME = struct.Struct(">q")
_MAX_DEK_ID = 0xFFFFFFFF
_FIELD_CACHE_LIMIT = 4096
_field_prefixes: dict[str, bytes] = {}
_new_sets: dict[tuple[str, ...], bytes] = {}


def length_prefixed(text: str) -> bytes:
    """UTF-8 bytes of `text` prefixed by their length (u32 big-endian)."""
    data = text.encode("utf-8")
    return _LENGTH.pack(len(data)) + data


@dataclass(frozen=True)
class FieldProvenance:
    """What a sealed value is bound to besides its place: the subject version it was
    written in (`version`, at least 1), who wrote it and when (microseconds)."""

    version: int
    written_by: str
    written_at: int

    def encode(self) -> bytes:
        if not 1 <= self.version < 2**64:
            raise ValueError("field version must be a positive 64-bit integer")
        if not -(2**63) <= self.written_at < 2**63:
            raise ValueError("written_at must be a signed 64-bit integer")
        return (
            _U64.pack(self.version)
            + length_prefixed(self.written_by)
            + _PROVENANCE_TIME.pack(self.written_at)
        )


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

    Built by `KeyRing.sealer`. Holds one AES-GCM object and the AAD prefixes for the
    subject, so sealing many fields pays the key schedule and the encoding only once.
    Nonces are 96 random bits: safe for far more messages than one data key will see.
    """

    __slots__ = (
        "_aead",
        "_header",
        "_legacy_header",
        "_legacy_prefix",
        "_prefix",
        "_set_prefix",
        "dek_id",
        "subject_id",
        "tenant",
    )

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
        self._legacy_header = _HEADER.pack(LEGACY_SEALED_VERSION, dek_id)
        place = length_prefixed(tenant) + length_prefixed(subject_id)
        self._prefix = _AAD_LABEL + place
        self._legacy_prefix = _LEGACY_AAD_LABEL + place
        self._set_prefix = _FIELD_SET_LABEL + place

    def __repr__(self) -> str:
        return (
            f"<FieldSealer tenant={self.tenant!r} subject_id={self.subject_id!r} "
            f"dek_id={self.dek_id} key=<redacted>>"
        )

    def seal(self, field: str, plaintext: bytes, provenance: FieldProvenance) -> bytes:
        """Encrypt `plaintext` for `field` of this subject, bound to `provenance`."""
        nonce = os.urandom(GCM_NONCE_SIZE)
        aad = self._prefix + _field_prefix(field) + provenance.encode() + self._header
        return self._header + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_new(self, values: Mapping[str, str], provenance: FieldProvenance) -> dict[str, bytes]:
        """`seal` of every value (its UTF-8) for its field, all bound to `provenance`: the
        same values `seal` makes, with the provenance encoded once and the nonces drawn
        in one call (a new subject's ten fields are on the batch-create hot path)."""
        names = list(values)
        nonces = os.urandom(GCM_NONCE_SIZE * len(names))
        bound = provenance.encode() + self._header
        prefix, header = self._prefix, self._header
        bodies = self._aead.encrypt_each(
            nonces, [(values[n].encode(), prefix + _field_prefix(n) + bound) for n in names]
        )
        return {
            name: header + nonces[i * GCM_NONCE_SIZE : (i + 1) * GCM_NONCE_SIZE] + body
            for i, (name, body) in enumerate(zip(names, bodies, strict=True))
        }

    def seal_new_field_set(self, names: Collection[str]) -> bytes:
        """`seal_field_set` of `names`, each at version 1 (a new subject's set); the
        encoded set is kept per distinct list of names, a small set."""
        key = tuple(names)
        body = _new_sets.get(key)
        if body is None:
            body = self._field_set_body(dict.fromkeys(key, 1))
            if len(_new_sets) < _FIELD_CACHE_LIMIT:
                _new_sets[key] = body
        nonce = os.urandom(GCM_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, b"", self._set_prefix + body + self._header)

    def open(self, field: str, sealed: bytes, provenance: FieldProvenance | None = None) -> bytes:
        """Decrypt a value sealed for `field` of this subject with this `provenance`
        (None: a format-1 value, which has none; a format-2 value always has one).

        Raises `DecryptionError`, whatever the cause: truncated, unknown version, another
        data key, another tenant, subject or field, another provenance, or any edited byte.
        """
        # A header mismatch (version or dek_id) would also fail the tag check, since the
        # header is in the AAD; rejecting it first just avoids the work.
        if provenance is None:
            header = self._legacy_header
            aad = self._legacy_prefix + _field_prefix(field) + header
        else:
            header = self._header
            try:
                bound = provenance.encode()
            except ValueError:  # out of range, or text that is not UTF-8 (stored beside it)
                raise DecryptionError from None
            aad = self._prefix + _field_prefix(field) + bound + header
        if len(sealed) < _MIN_SEALED_SIZE or sealed[:HEADER_SIZE] != header:
            raise DecryptionError
        nonce = sealed[HEADER_SIZE : HEADER_SIZE + GCM_NONCE_SIZE]
        return self._aead.decrypt(nonce, sealed[HEADER_SIZE + GCM_NONCE_SIZE :], aad)

    def seal_field_set(self, versions: Mapping[str, int]) -> bytes:
        """The tag binding which fields this subject has and each one's version."""
        nonce = os.urandom(GCM_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, b"", self._field_set_aad(versions))

    def check_field_set(self, versions: Mapping[str, int], tag: bytes) -> None:
        """Raise `DecryptionError` unless `tag` was made by `seal_field_set(versions)`."""
        if len(tag) != FIELD_SET_TAG_SIZE:
            raise DecryptionError
        try:
            aad = self._field_set_aad(versions)
        except ValueError:  # a version out of range or a name that is not UTF-8
            raise DecryptionError from None
        if self._aead.decrypt(tag[:GCM_NONCE_SIZE], tag[GCM_NONCE_SIZE:], aad):
            raise DecryptionError

    def _field_set_aad(self, versions: Mapping[str, int]) -> bytes:
        return self._set_prefix + self._field_set_body(versions) + self._header

    @staticmethod
    def _field_set_body(versions: Mapping[str, int]) -> bytes:
        """count | for each field, by name: lp(field) | field_version (u64)."""
        parts = [_LENGTH.pack(len(versions))]
        for name in sorted(versions):
            if not 1 <= versions[name] < 2**64:
                raise ValueError("field version must be a positive 64-bit integer")
            parts += [_field_prefix(name), _U64.pack(versions[name])]
        return b"".join(parts)


def sealed_dek_id(sealed: bytes) -> int:
    """The data-key id in a sealed value's header (unauthenticated until opened).

    Lets a caller pick the right data key before opening; raises `DecryptionError` if
    the value is too short or not format version 1 or 2.
    """
    if len(sealed) < _MIN_SEALED_SIZE or sealed[0] not in (SEALED_VERSION, LEGACY_SEALED_VERSION):
        raise DecryptionError
    return int(_HEADER.unpack_from(sealed)[1])
