"""Fuzz target: the witness's add-checkpoint requests and cosigner keys (`audit.witness`).

Contract: `Witness.add_checkpoint` answers every request with a `Reply` (400, 403, 404,
409, 413, 422 or 200) and raises nothing; `CosignatureVerifier.from_verifier_key`
returns or raises `KeyFormatError`.
Invariants:
- bytes the fuzzer wrote never get a cosignature (it cannot sign for the log);
- with checkpoints the log really signed, of its honest tree or of a fork, and proofs
  honest or fuzzed: the size the witness holds never shrinks, and once it holds the
  honest tree it never cosigns a fork (the fork differs from leaf 0, so no size of it
  extends the honest tree).

Keys are generated at start-up, the witness's state is an in-memory SQLite database.
Run: `.venv/bin/python tests/fuzz/fuzz_witness.py [corpus dirs] [-max_total_time=60]`.
"""

from __future__ import annotations

import base64
import sys

import atheris

with atheris.instrument_imports(include=["audit"]):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoint import Checkpoint, CheckpointSigner
    from audit.cosignature import CosignatureSigner, CosignatureVerifier
    from audit.errors import KeyFormatError
    from audit.merkle import consistency_proof, leaf_hash, root_of
    from audit.witness import KnownLog, Witness, WitnessState

ORIGIN = "customer-vault/audit"
ANSWERS = {200, 400, 403, 404, 409, 413, 422}


def _pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


LOG = CheckpointSigner(_pem(), ORIGIN)
COSIGNER = CosignatureSigner(_pem(), "witness.example/w1")
HONEST = [leaf_hash(f"entry {i}".encode()) for i in range(64)]
FORK = [leaf_hash(b"forged"), *HONEST[1:]]


class _Run:
    """One witness whose state lives as long as the process: inputs build on each other."""

    def __init__(self) -> None:
        self.witness = Witness(
            COSIGNER, WitnessState(":memory:"), [KnownLog(ORIGIN, LOG.verifier())], lambda: 1
        )
        self.size = 0
        self.honest = False


RUN = _Run()


def _body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


def _raw(fdp: atheris.FuzzedDataProvider) -> None:
    reply = RUN.witness.add_checkpoint(fdp.ConsumeBytes(fdp.remaining_bytes()))
    assert reply.status in ANSWERS
    assert reply.status != 200, "fuzz bytes were cosigned"


def _signed(fdp: atheris.FuzzedDataProvider) -> None:
    leaves = FORK if fdp.ConsumeBool() else HONEST
    size = fdp.ConsumeIntInRange(0, len(leaves))
    old = fdp.ConsumeIntInRange(0, 64) if fdp.ConsumeBool() else RUN.size
    if fdp.ConsumeBool() and 0 < old <= size:
        proof = consistency_proof(leaves, old, size)
        if proof and fdp.ConsumeBool():
            proof[fdp.ConsumeIntInRange(0, len(proof) - 1)] = fdp.ConsumeBytes(32).ljust(32, b"\0")
    else:
        proof = [fdp.ConsumeBytes(32).ljust(32, b"\0") for _ in range(fdp.ConsumeIntInRange(0, 8))]
    note = LOG.sign(Checkpoint(ORIGIN, size, root_of(leaves[:size])))
    reply = RUN.witness.add_checkpoint(_body(old, proof, note))
    assert reply.status in ANSWERS
    if reply.status != 200:
        return
    assert size >= RUN.size, "the witness rolled back"
    if RUN.honest and size > 0:
        assert leaves is HONEST, "a fork was cosigned after the honest tree"
    RUN.size = size
    RUN.honest = RUN.honest or (leaves is HONEST and size > 0)
    line = reply.body.decode()
    CosignatureVerifier.from_verifier_key(COSIGNER.verifier_key).verify_line(
        Checkpoint(ORIGIN, size, root_of(leaves[:size])), line
    )


def _verifier_key(fdp: atheris.FuzzedDataProvider) -> None:
    text = fdp.ConsumeUnicode(fdp.remaining_bytes())
    if fdp.ConsumeBool():
        text = COSIGNER.verifier_key[: len(COSIGNER.verifier_key) // 2] + text
    try:
        CosignatureVerifier.from_verifier_key(text)
    except KeyFormatError:
        return


MODES = [_raw, _signed, _verifier_key]


def fuzz_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
