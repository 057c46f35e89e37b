"""Fuzz target: the sealed-value format, key unwrap and the key document (`vault.crypto`).

Contract: opening a sealed value, reading its header and unwrapping a data key either
succeed or raise `DecryptionError`; parsing a key document returns `KeyMaterial` or
raises `KeyMaterialError`. Nothing else escapes.
Invariants:
- bytes the fuzzer wrote never open and never unwrap (AES-GCM and RFC 3394 cannot be
  forged by chance);
- a value sealed here opens to its plaintext, and once any byte is changed, bytes are
  cut or added, or it is opened as another tenant, subject or field, it never opens;
- a wrapped data key unwraps to its key, and never once edited or under another KEK.

Keys are generated at start-up; none is stored. Run:
`.venv/bin/python tests/fuzz/fuzz_sealed.py [corpus dirs] [-max_total_time=60]`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import sys

import atheris

with atheris.instrument_imports(include=["vault"]):
    from vault.crypto import (
        EnvKeyProvider,
        FieldProvenance,
        FieldSealer,
        KeyMaterialError,
        KeyRing,
        keydoc,
    )
    from vault.crypto.keyring import WrappedDataKey
    from vault.crypto.sealing import FIELD_SET_TAG_SIZE, HEADER_SIZE, sealed_dek_id
    from vault.errors import DecryptionError
    from vault.storage.subjects import decode_fields

DOCUMENT = keydoc.generate_key_document()
PROVIDER = EnvKeyProvider(DOCUMENT)
ROTATED = EnvKeyProvider(keydoc.serialize(keydoc.parse(DOCUMENT).with_new_kek()[0]))
RING = KeyRing(ROTATED)
DEK = os.urandom(32)
_RAW = json.loads(DOCUMENT)
_ROOTS = [v for s in _RAW["root_secrets"].values() for v in s["versions"].values()]
SECRETS = [*_RAW["keks"].values(), *_ROOTS]
NAMES = ["acme", "globex", "", "a", "ab", "b", "é", "subject-1", "email", "phone"]


PROV = FieldProvenance(2, "order-service", 1_765_000_000_000_000)


def _opens(
    sealer: FieldSealer, field: str, sealed: bytes, provenance: FieldProvenance | None = PROV
) -> bytes | None:
    try:
        return sealer.open(field, sealed, provenance)
    except DecryptionError:
        return None


def _unwraps(ring: KeyRing, wrapped: WrappedDataKey) -> bytes | None:
    try:
        return ring.unwrap(wrapped)
    except DecryptionError:
        return None


def _raw_sealed(fdp: atheris.FuzzedDataProvider) -> None:
    dek_id = fdp.ConsumeIntInRange(0, 3)
    sealer = FieldSealer(DEK, fdp.PickValueInList(NAMES), fdp.PickValueInList(NAMES), dek_id)
    right_header = fdp.ConsumeBool()
    legacy = fdp.ConsumeBool()
    sealed = fdp.ConsumeBytes(fdp.remaining_bytes())
    if right_header and len(sealed) >= HEADER_SIZE:
        # The header this sealer expects, so that the tag check is what refuses it.
        sealed = struct.pack(">BI", 1 if legacy else 2, dek_id) + sealed[HEADER_SIZE:]
    assert _opens(sealer, "email", sealed, None if legacy else PROV) is None, "fuzz bytes opened"
    try:
        found = sealed_dek_id(sealed)
    except DecryptionError:
        return
    assert sealed[0] in (1, 2) and found == struct.unpack_from(">I", sealed, 1)[0]
    tag = sealed[:FIELD_SET_TAG_SIZE]
    try:
        sealer.check_field_set({"email": 1}, tag)
    except DecryptionError:
        return
    raise AssertionError("a field-set tag the fuzzer wrote verified")


def _sealed_then_mutated(fdp: atheris.FuzzedDataProvider) -> None:
    tenant, subject, field = (fdp.PickValueInList(NAMES) for _ in range(3))
    dek_id = fdp.ConsumeIntInRange(0, 0xFFFFFFFF)
    sealer = FieldSealer(DEK, tenant, subject, dek_id)
    plaintext = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    sealed = sealer.seal(field, plaintext, PROV)
    assert _opens(sealer, field, sealed) == plaintext, "a sealed value did not open"
    assert _opens(sealer, field, sealed, None) is None, "opened without its provenance"
    older = FieldProvenance(PROV.version - 1, PROV.written_by, PROV.written_at)
    assert _opens(sealer, field, sealed, older) is None, "opened as another version"
    assert sealed_dek_id(sealed) == dek_id
    elsewhere = (
        fdp.PickValueInList(NAMES),
        fdp.PickValueInList(NAMES),
        fdp.PickValueInList(NAMES),
    )
    if elsewhere != (tenant, subject, field):
        other = FieldSealer(DEK, elsewhere[0], elsewhere[1], dek_id)
        assert _opens(other, elsewhere[2], sealed) is None, "opened as another field"
    mutated = _mutate(fdp, sealed)
    if mutated != sealed:
        assert _opens(sealer, field, mutated) is None, "an edited sealed value opened"


def _mutate(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        kind = fdp.ConsumeIntInRange(0, 2)
        if kind == 0 and buffer:
            buffer[fdp.ConsumeIntInRange(0, len(buffer) - 1)] ^= fdp.ConsumeIntInRange(1, 255)
        elif kind == 1 and buffer:
            del buffer[fdp.ConsumeIntInRange(0, len(buffer) - 1) :]
        else:
            buffer[fdp.ConsumeIntInRange(0, len(buffer)) : 0] = fdp.ConsumeBytes(4) or b"\x00"
    return bytes(buffer)


def _raw_wrapped(fdp: atheris.FuzzedDataProvider) -> None:
    version = fdp.ConsumeIntInRange(-1, 3)
    blob = fdp.ConsumeBytes(fdp.remaining_bytes())
    assert _unwraps(RING, WrappedDataKey(version, blob)) is None, "a made-up wrapped key opened"


def _wrapped_then_mutated(fdp: atheris.FuzzedDataProvider) -> None:
    dek, wrapped = RING.new_data_key()
    assert _unwraps(RING, wrapped) == dek
    old = WrappedDataKey(1, PROVIDER.wrap_key(1, dek))
    assert _unwraps(RING, old) == dek, "a key wrapped under KEK 1 did not unwrap after rotation"
    assert RING.unwrap(RING.rewrap(old)) == dek
    moved = WrappedDataKey(1 if wrapped.kek_version == 2 else 2, wrapped.blob)
    assert _unwraps(RING, moved) is None, "unwrapped under another KEK"
    mutated = _mutate(fdp, wrapped.blob)
    if mutated != wrapped.blob:
        assert _unwraps(RING, WrappedDataKey(2, mutated)) is None, "an edited wrapped key opened"


def _key_document(fdp: atheris.FuzzedDataProvider) -> None:
    if fdp.ConsumeBool():
        document = fdp.ConsumeUnicode(fdp.remaining_bytes())
    else:  # a real document with one value replaced, at some depth
        raw = json.loads(DOCUMENT)
        keys = ["format", "active_kek", "keks", "root_secrets"]
        value = json.loads(json.dumps(fdp.ConsumeUnicode(40)))
        depth = fdp.ConsumeIntInRange(0, 5000) if fdp.ConsumeBool() else 0
        raw[fdp.PickValueInList(keys)] = (
            fdp.PickValueInList([value, 1, True, None, 1.0, [], {"1": value}, {"01": value}])
            if depth == 0
            else "[" * depth
        )
        document = json.dumps(raw)
        if depth:
            document = document.replace('"' + "[" * depth + '"', "[" * depth + "]" * depth)
    try:
        material = keydoc.parse(document)
    except KeyMaterialError as exc:
        _check_quotes_no_key(exc)
        return
    assert material.active_kek in material.keks
    assert all(len(k) == 32 for k in material.keks.values())
    for secrets in material.root_secrets.values():
        assert secrets.active in secrets.versions
        assert all(len(k) == 32 for k in secrets.versions.values())


def _check_quotes_no_key(exc: KeyMaterialError) -> None:
    assert not any(s in str(exc) for s in SECRETS), "a key document error quotes a key"


def _fields_blob(fdp: atheris.FuzzedDataProvider) -> None:
    """A subject's fields blob as a DBA may leave it: it decodes to well-formed entries
    whose provenance the sealer can bind, or fails as the one DecryptionError."""
    sealer = FieldSealer(DEK, "acme", "sub_x", 1)
    stored = {"email": sealer.seal("email", b"a@b.c", PROV)}
    entry: list[object] = [base64.b64encode(stored["email"]).decode(), "order-service", 0, 2]
    tag = base64.b64encode(sealer.seal_field_set({"email": 2})).decode()
    if fdp.ConsumeBool():
        blob = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        entry[fdp.ConsumeIntInRange(0, 3)] = fdp.PickValueInList(
            [fdp.ConsumeUnicode(20), fdp.ConsumeInt(9), None, 1.5, [], True, 2**64]
        )
        blob = json.dumps({"v": 2, "f": {"email": entry}, "t": tag}).encode()
    try:
        fields = decode_fields(blob)
    except DecryptionError:
        return
    for name, field in fields.items():
        version = fields.versions[name]
        provenance = (
            None
            if version is None
            else FieldProvenance(version, field.written_by, field.written_at)
        )
        assert _opens(sealer, name, field.sealed, provenance) in (None, b"a@b.c")
    if fields.tag is not None:
        with contextlib.suppress(DecryptionError):
            sealer.check_field_set({n: v or 0 for n, v in fields.versions.items()}, fields.tag)


MODES = [
    _raw_sealed,
    _sealed_then_mutated,
    _raw_wrapped,
    _wrapped_then_mutated,
    _key_document,
    _fields_blob,
]


def fuzz_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
