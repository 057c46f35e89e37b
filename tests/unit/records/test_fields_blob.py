"""The fields blob container (vault/storage/fields_blob.py): format 3 round-trips, the
JSON formats still read, and any blob not of its format's shape is refused opaquely."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.errors import DecryptionError
from vault.storage.fields_blob import (
    BINARY,
    JSON_FORMAT,
    LEGACY_FORMAT,
    blob_format,
    decode_fields,
    encode_fields,
    encode_json,
)
from vault.subject import StoredField

TAG = bytes(range(28))
FIELDS = {
    "email": StoredField(b"\x02sealed-email", "order-service", 1_700_000_000_000_000, 1),
    "notes": StoredField(b"\x02" + bytes(300), "dpo-\u00e9quipe", -1, 2**40),
}


def test_binary_round_trip_with_tag_and_versions() -> None:
    blob = encode_fields(FIELDS, TAG)
    assert blob[0] == BINARY and blob_format(blob) == BINARY
    decoded = decode_fields(blob)
    assert decoded == FIELDS and decoded.tag == TAG
    assert decoded.versions == {"email": 1, "notes": 2**40}


def test_only_decodes_the_named_values_but_knows_every_version() -> None:
    decoded = decode_fields(encode_fields(FIELDS, TAG), only={"email"})
    assert list(decoded) == ["email"]
    assert decoded.versions == {"email": 1, "notes": 2**40}


def test_the_json_formats_are_still_read() -> None:
    tagged = encode_json(FIELDS, TAG)
    assert tagged.startswith(b'{"v":2,') and blob_format(tagged) == JSON_FORMAT
    assert decode_fields(tagged) == decode_fields(encode_fields(FIELDS, TAG))
    assert decode_fields(tagged).tag == TAG
    legacy = encode_json(FIELDS, None)
    assert blob_format(legacy) == LEGACY_FORMAT and encode_fields(FIELDS) == legacy
    decoded = decode_fields(legacy)
    assert decoded.tag is None and set(decoded.versions.values()) == {None}


def test_a_tagged_blob_needs_a_version_on_every_value() -> None:
    with pytest.raises(ValueError, match="version"):
        encode_fields({"email": StoredField(b"x", "w", 1, None)}, TAG)
    with pytest.raises(ValueError, match="28 bytes"):
        encode_fields(FIELDS, TAG[:-1])


def _entry(name: bytes, writer: bytes, sealed: bytes, *, at: int = 1, version: int = 1) -> bytes:
    return struct.pack(">qqBHI", at, version, len(name), len(writer), len(sealed)) + (
        name + writer + sealed
    )


@pytest.mark.parametrize(
    "blob",
    [
        b"\x03",  # no tag
        b"\x03" + TAG + b"\x00\x01",  # one field announced, none there
        b"\x03" + TAG + b"\x00\x01" + _entry(b"email", b"w", b"abc")[:-1],  # cut short
        b"\x03" + TAG + b"\x00\x01" + _entry(b"email", b"w", b"abc") + b"!",  # trailing
        b"\x03" + TAG + b"\x00\x01" + _entry(b"email", b"w", b"abc", version=0),
        b"\x03" + TAG + b"\x00\x01" + _entry(b"email", b"w", b"abc", version=-5),
        b"\x03" + TAG + b"\x00\x02" + _entry(b"email", b"w", b"a") + _entry(b"email", b"w", b"b"),
        b"\x03" + TAG + b"\x00\x01" + _entry(b"\xff", b"w", b"abc"),  # name not UTF-8
        b"\x03" + TAG + b"\x00\x01" + _entry(b"email", b"\xc3", b"abc"),  # writer not UTF-8
        b'{"v":3,"f":{}}',
        b'{"v":2,"f":{"email":["AAAA","w",1]},"t":"AAAA"}',
        b"\x04whatever",
    ],
)
def test_a_blob_of_the_wrong_shape_is_refused_opaquely(blob: bytes) -> None:
    with pytest.raises(DecryptionError):
        decode_fields(blob)


@given(st.binary(max_size=200))
def test_no_byte_string_raises_anything_but_decryption_error(data: bytes) -> None:
    for blob in (data, b"\x03" + data, b"\x03" + TAG + data):
        with contextlib.suppress(DecryptionError):
            decode_fields(blob)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,40}", fullmatch=True),
        st.tuples(
            st.binary(max_size=400),
            st.text(max_size=80),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(1, 2**63 - 1),
        ),
        max_size=12,
    )
)
def test_any_fields_round_trip(entries: dict[str, tuple[bytes, str, int, int]]) -> None:
    fields = {name: StoredField(*entry) for name, entry in entries.items()}
    decoded = decode_fields(encode_fields(fields, TAG))
    assert decoded == fields and decoded.tag == TAG
