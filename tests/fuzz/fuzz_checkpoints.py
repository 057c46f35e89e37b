"""Fuzz target: signed checkpoint notes and verifier keys (`audit.checkpoint`).

Contract: `CheckpointVerifier.verify` / `open_note`, `split_note` and `Checkpoint.parse`
return or raise `CheckpointError`; `CheckpointVerifier.from_verifier_key` returns or
raises `KeyFormatError`. Nothing else escapes.
Invariants:
- a note the fuzzer wrote never verifies (it cannot sign);
- a note signed here verifies to its checkpoint, and once edited verifies, if at all,
  to that same checkpoint body (signatures by other keys may be added or dropped);
- a parsed checkpoint formats back to the exact body it was parsed from.

The Ed25519 keys are generated at start-up; none is stored. Run:
`.venv/bin/python tests/fuzz/fuzz_checkpoints.py [corpus dirs] [-max_total_time=60]`.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["audit"]):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoint import Checkpoint, CheckpointSigner, CheckpointVerifier, split_note
    from audit.errors import CheckpointError, KeyFormatError

ORIGIN = "customer-vault/audit"


def _signer(name: str) -> tuple[CheckpointSigner, bytes]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CheckpointSigner.from_pem(pem, name=name), public_pem


SIGNER, PUBLIC_PEM = _signer(ORIGIN)
WITNESS, _ = _signer("witness.example/w1")
VERIFIERS = [
    SIGNER.verifier(),
    CheckpointVerifier.from_verifier_key(SIGNER.verifier_key, origin=ORIGIN),
    CheckpointVerifier.from_pem(PUBLIC_PEM),  # no key name: any name, matched by key id
]


def _verified(verifier: CheckpointVerifier, note: str | bytes) -> Checkpoint | None:
    try:
        return verifier.verify(note)
    except CheckpointError:
        return None


def _raw_note(fdp: atheris.FuzzedDataProvider) -> None:
    verifier = fdp.PickValueInList(VERIFIERS)
    note = fdp.ConsumeBytes(fdp.remaining_bytes())
    text = note.decode("utf-8", "replace")
    assert _verified(verifier, note) is None, "a note the fuzzer wrote verified"
    assert _verified(verifier, text) is None, "a note the fuzzer wrote verified"
    with contextlib.suppress(CheckpointError):
        split_note(text)
    try:
        checkpoint = Checkpoint.parse(text)
    except CheckpointError:
        return
    assert checkpoint.format() == text, "a checkpoint body does not format back to itself"


def _signed_then_edited(fdp: atheris.FuzzedDataProvider) -> None:
    checkpoint = Checkpoint(
        fdp.PickValueInList([ORIGIN, "other/log", "a+b", "é"]),
        fdp.ConsumeIntInRange(0, 2**63 - 1),
        fdp.ConsumeBytes(32).ljust(32, b"\x00"),
    )
    note = SIGNER.sign(checkpoint)
    if fdp.ConsumeBool():  # a cosigned note: the witness line comes after ours
        note += WITNESS.sign(checkpoint).rpartition("\n\n")[2]
    verifier = fdp.PickValueInList(VERIFIERS)
    expected = checkpoint if verifier.origin in (None, checkpoint.origin) else None
    assert _verified(verifier, note) == expected, "a signed note did not verify"
    edited = list(note)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        position = fdp.ConsumeIntInRange(0, len(edited))
        kind = fdp.ConsumeIntInRange(0, 2)
        if kind == 0 and position < len(edited):
            del edited[position]
        elif kind == 1 and position < len(edited):
            edited[position] = chr(fdp.ConsumeIntInRange(0, 0x2FFF))
        else:
            edited.insert(position, fdp.ConsumeUnicode(3))
    text = "".join(edited)
    result = _verified(verifier, text)
    assert result is None or result == expected, "an edited note verified to another checkpoint"


def _verifier_key(fdp: atheris.FuzzedDataProvider) -> None:
    prefixed = fdp.ConsumeBool()
    text = fdp.ConsumeUnicode(fdp.remaining_bytes())
    if prefixed:
        text = SIGNER.verifier_key[: len(SIGNER.verifier_key) // 2] + text
    try:
        CheckpointVerifier.from_verifier_key(text)
    except KeyFormatError:
        return


MODES = [_raw_note, _signed_then_edited, _verifier_key]


def fuzz_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
