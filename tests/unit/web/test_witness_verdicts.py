"""The log-integrity page's witness verdicts, with real keys: a cosignature checked with
the witness's key is verified; one its key does not verify is invalid; one by a
witness the console has no key for is unverifiable; a configured witness with none
stored is missing."""

from __future__ import annotations

from pathlib import Path

import audit
from vault.api.console_client import CheckpointInfo, CosignatureInfo
from vault.web.console.proofs import witness_verdicts

ORIGIN = "vault.test/log"
ROOT = bytes(range(32))


def _signer(tmp_path: Path, name: str) -> audit.CosignatureSigner:
    private, _ = audit.generate_signing_key(tmp_path / f"{name.replace('/', '_')}.pem")
    return audit.CosignatureSigner(private.read_bytes(), name)


def _stored(signer: audit.CosignatureSigner, size: int, root: bytes) -> CosignatureInfo:
    line = signer.cosign(audit.Checkpoint(ORIGIN, size, root), 1_800_000_000)
    return CosignatureInfo(signer.name, size, ROOT, line, None)


def test_each_witness_gets_its_verdict(tmp_path: Path) -> None:
    good, forged, stranger, silent = (
        _signer(tmp_path, f"witness.test/{n}") for n in ("good", "forged", "stranger", "silent")
    )
    checkpoint = CheckpointInfo(
        ORIGIN,
        12,
        b"\1" * 32,
        "",
        (
            _stored(good, 10, ROOT),
            # Signed over another root than the one stored beside it.
            _stored(forged, 10, b"\2" * 32),
            _stored(stranger, 10, ROOT),
        ),
    )
    keys = [
        audit.CosignatureVerifier.from_verifier_key(s.verifier_key) for s in (good, forged, silent)
    ]
    verdicts = {v.witness: v for v in witness_verdicts(checkpoint, keys)}
    assert {name: v.state for name, v in verdicts.items()} == {
        "witness.test/good": "verified",
        "witness.test/forged": "invalid",
        "witness.test/stranger": "unverifiable",
        "witness.test/silent": "missing",
    }
    assert "2 newer entries are not cosigned yet" in verdicts["witness.test/good"].summary


def test_a_line_under_a_configured_name_but_another_key_is_invalid(tmp_path: Path) -> None:
    real = _signer(tmp_path / "a", "witness.test/w1")
    impostor = _signer(tmp_path / "b", "witness.test/w1")
    checkpoint = CheckpointInfo(ORIGIN, 10, ROOT, "", (_stored(impostor, 10, ROOT),))
    key = audit.CosignatureVerifier.from_verifier_key(real.verifier_key)
    [verdict] = witness_verdicts(checkpoint, [key])
    assert verdict.state == "invalid"
