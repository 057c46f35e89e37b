"""A subject's fields blob: its sealed values, their provenance and the field-set tag.

The vault writes format 3, binary::

    0x03 | field-set tag (28 bytes) | count (u16)
         | per field: written_at (i64) | version (i64, >= 1) | name length (u8)
                      | writer length (u16) | sealed length (u32)
                      | name (UTF-8) | writer (UTF-8) | sealed value

all integers big-endian. Formats 1 and 2 (JSON, the sealed values in base64) are still
read: format 2 is what the vault wrote before format 3 (the migration
``fields_blob_binary`` converts such rows, and its downgrade converts back), format 1
is older still (no versions, no tag) and is left as it is until the subject's next
write re-seals it. A JSON blob starts with ``{``, never with 0x03.

The blob is only a container: every value in it is already AES-GCM ciphertext, bound to
its provenance, and the tag binds the set, so an edit of any byte fails when opened. A
blob that does not have the shape of its format raises `DecryptionError` here, the
same answer as an edited sealed value.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Container, Mapping
from typing import Any

from vault.errors import DecryptionError
from vault.subject import StoredField

BINARY = 3
JSON_FORMAT = 2
LEGACY_FORMAT = 1
TAG_SIZE = 28  # a field-set tag: nonce (12) | AES-GCM tag (16)
_BINARY_MARK = bytes([BINARY])
_HEAD = struct.Struct(">B28sH")
_ENTRY = struct.Struct(">qqBHI")
_MAX_FIELDS = 0xFFFF


class StoredFields(dict[str, StoredField]):
    """A subject's sealed fields as stored, with the field-set tag (None in a format-1
    blob) and every field's version (also those not decoded with `only`)."""

    def __init__(
        self,
        fields: Mapping[str, StoredField],
        tag: bytes | None = None,
        versions: Mapping[str, int | None] | None = None,
    ) -> None:
        super().__init__(fields)
        self.tag = tag
        self.versions: dict[str, int | None] = (
            dict(versions) if versions is not None else {n: f.version for n, f in fields.items()}
        )


def encode_fields(fields: Mapping[str, StoredField], tag: bytes | None = None) -> bytes:
    """The fields blob: format 3 (binary) with a field-set tag, every value versioned;
    without a tag, format 1 (JSON), which only tests still write."""
    if tag is None:
        return encode_json(fields, None)
    if len(tag) != TAG_SIZE or len(fields) > _MAX_FIELDS:
        raise ValueError("a field-set tag is 28 bytes, a subject has at most 65535 fields")
    pack = _ENTRY.pack
    parts = [_HEAD.pack(BINARY, tag, len(fields))]
    for name, f in fields.items():
        if f.version is None or f.version < 1:
            raise ValueError("every value of a tagged blob has a version")
        name_bytes = name.encode()
        writer = f.written_by.encode()
        parts += (
            pack(f.written_at, f.version, len(name_bytes), len(writer), len(f.sealed)),
            name_bytes,
            writer,
            f.sealed,
        )
    return b"".join(parts)


def encode_written_together(
    sealed: Mapping[str, bytes], written_by: str, written_at: int, version: int, tag: bytes
) -> bytes:
    """`encode_fields` of values written together (one writer, time and version, as a
    new subject's are), without a `StoredField` per value: the same bytes."""
    if len(tag) != TAG_SIZE or len(sealed) > _MAX_FIELDS or version < 1:
        raise ValueError("a field-set tag is 28 bytes, a subject has at most 65535 fields")
    writer = written_by.encode()
    pack, writer_size = _ENTRY.pack, len(writer)
    parts = [_HEAD.pack(BINARY, tag, len(sealed))]
    for name, value in sealed.items():
        name_bytes = name.encode()
        head = pack(written_at, version, len(name_bytes), writer_size, len(value))
        parts += (head, name_bytes, writer, value)
    return b"".join(parts)


def encode_json(fields: Mapping[str, StoredField], tag: bytes | None) -> bytes:
    """Format 2 (with a tag) or 1 (without): JSON, the sealed values in base64. Written
    only by the migration's downgrade and by tests, for data made before format 3."""
    if tag is None:
        doc: dict[str, Any] = {
            "v": LEGACY_FORMAT,
            "f": {
                name: [base64.b64encode(f.sealed).decode(), f.written_by, f.written_at]
                for name, f in fields.items()
            },
        }
    else:
        doc = {
            "v": JSON_FORMAT,
            "f": {
                name: [base64.b64encode(f.sealed).decode(), f.written_by, f.written_at, f.version]
                for name, f in fields.items()
            },
            "t": base64.b64encode(tag).decode(),
        }
    return json.dumps(doc, separators=(",", ":")).encode()


def blob_format(blob: bytes) -> int:
    """The format of a stored blob (1, 2 or 3); `DecryptionError` when it has none."""
    if blob[:1] == _BINARY_MARK:
        return BINARY
    try:
        form = json.loads(blob).get("v")
    except (ValueError, TypeError, AttributeError):
        raise DecryptionError from None
    if form not in (JSON_FORMAT, LEGACY_FORMAT):
        raise DecryptionError
    return int(form)


def decode_fields(blob: bytes | None, only: Container[str] | None = None) -> StoredFields:
    """The stored fields (with `only`, just those named: the rest are not even decoded).

    A blob that does not have the shape of its format raises `DecryptionError`, as an
    edited sealed value does: it is the same tampering.
    """
    if not blob:
        return StoredFields({})
    data = bytes(blob)
    try:
        if data[:1] == _BINARY_MARK:
            return _decode_binary(data, only)
        return _decode_json(data, only)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, struct.error):
        raise DecryptionError from None


def _decode_binary(data: bytes, only: Container[str] | None) -> StoredFields:
    _, tag, count = _HEAD.unpack_from(data)
    offset = _HEAD.size
    unpack = _ENTRY.unpack_from
    fields = {}
    versions: dict[str, int | None] = {}
    for _ in range(count):
        at, version, name_size, writer_size, sealed_size = unpack(data, offset)
        offset += _ENTRY.size
        name = data[offset : offset + name_size].decode()
        offset += name_size
        writer = data[offset : offset + writer_size].decode()
        offset += writer_size
        end = offset + sealed_size
        if version < 1 or end > len(data) or name in versions:
            raise ValueError("fields blob entry of the wrong shape")
        versions[name] = version
        if only is None or name in only:
            fields[name] = StoredField(data[offset:end], writer, at, version)
        offset = end
    if offset != len(data):
        raise ValueError("bytes after the last field")
    return StoredFields(fields, tag, versions)


def _decode_json(data: bytes, only: Container[str] | None) -> StoredFields:
    try:
        form, entries, tag = _parse_json(data)
        versions = {name: e[3] if form == JSON_FORMAT else None for name, e in entries.items()}
        fields = {
            name: StoredField(base64.b64decode(e[0], validate=True), e[1], e[2], versions[name])
            for name, e in entries.items()
            if only is None or name in only
        }
    except binascii.Error:
        raise ValueError("not base64") from None
    return StoredFields(fields, tag, versions)


def _parse_json(blob: bytes) -> tuple[int, dict[str, list[Any]], bytes | None]:
    doc = json.loads(blob)
    form = doc.get("v")
    if form not in (JSON_FORMAT, LEGACY_FORMAT):
        raise ValueError("unknown fields blob format")
    entries = doc["f"]
    size = 4 if form == JSON_FORMAT else 3
    if not isinstance(entries, dict) or not all(_well_formed(e, size) for e in entries.values()):
        raise ValueError("fields blob entry of the wrong shape")
    tag = base64.b64decode(doc["t"], validate=True) if form == JSON_FORMAT else None
    return form, entries, tag


def _well_formed(entry: Any, size: int) -> bool:
    """[sealed base64, writer, written_at µs(, version)]: a DBA's edit of any other
    shape is refused here, like an edit of the values."""
    if not (isinstance(entry, list) and len(entry) == size):
        return False
    sealed, writer, at = entry[:3]
    ints = [at, *entry[3:]]
    if not (isinstance(sealed, str) and isinstance(writer, str)):
        return False
    if not all(type(n) is int and -(2**63) <= n < 2**63 for n in ints):
        return False
    return size == 3 or entry[3] >= 1
