"""Checks the console makes itself, with the log's public key: a checkpoint's signature,
the signatures on its note, and an entry's inclusion proof (the leaf hash recomputed
from the entry the vault returned, so what the page shows is what the log holds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import audit
from audit.checkpoint import split_note
from audit.mac import leaf_data
from audit.merkle import leaf_hash
from vault.api.console_client import CheckpointInfo, LoggedEntry, ProofInfo


@dataclass(frozen=True)
class Verdict:
    ok: bool | None  # None: could not be checked
    summary: str
    detail: str = ""


@dataclass(frozen=True)
class SignatureLine:
    key_name: str
    key_id: str
    role: str  # "log" (checked), "witness or other key (not checked here)"
    verified: bool | None


def checkpoint_verdict(
    verifier: audit.CheckpointVerifier | None, checkpoint: CheckpointInfo
) -> Verdict:
    if verifier is None:
        return Verdict(
            None,
            "The checkpoint's signature was not checked: the console has no copy of the "
            "log's public key (--audit-public-key).",
        )
    try:
        head = verifier.verify(checkpoint.note)
    except audit.CheckpointError as exc:
        return Verdict(
            False, "The checkpoint's signature does NOT verify with the log's key.", str(exc)
        )
    if (head.origin, head.size, head.root_hash) != (
        checkpoint.origin,
        checkpoint.tree_size,
        checkpoint.root_hash,
    ):
        return Verdict(False, "The signed note does not match the checkpoint the vault reported.")
    return Verdict(True, "Signed by the log's key (checked here with the public key).")


def signature_lines(
    verifier: audit.CheckpointVerifier | None, checkpoint: CheckpointInfo
) -> list[SignatureLine]:
    """Every signature on the note: the log's own, and any cosignatures (witnesses)."""
    try:
        _, signatures = split_note(checkpoint.note)
    except audit.CheckpointError:
        return []
    lines = []
    for name, raw in signatures:
        ours = verifier is not None and raw[:4] == verifier.key_id_for(name)
        lines.append(
            SignatureLine(
                key_name=name,
                key_id=raw[:4].hex(),
                role="the log's signing key" if ours else "witness or other key",
                verified=True if ours and checkpoint_verdict(verifier, checkpoint).ok else None,
            )
        )
    return lines


@dataclass(frozen=True)
class WitnessVerdict:
    """One witness on the log-integrity page: its state and what it means."""

    witness: str
    state: str  # verified | invalid | unverifiable | missing
    summary: str
    tree_size: int | None = None
    cosigned_at: datetime | None = None


def witness_verdicts(
    checkpoint: CheckpointInfo, witnesses: Sequence[audit.CosignatureVerifier]
) -> list[WitnessVerdict]:
    """Each stored cosignature checked here with the configured witness keys: verified,
    invalid (a configured witness's name on a line its key does not verify), or
    unverifiable (no key configured for it); and each configured witness with no stored
    cosignature, missing."""
    keys = {w.name: w for w in witnesses}
    verdicts = []
    for c in checkpoint.cosignatures:
        key = keys.get(c.witness)
        at = f"the tree of {c.tree_size} entries"
        if key is None:
            verdicts.append(
                WitnessVerdict(
                    c.witness,
                    "unverifiable",
                    f"A cosignature of {at} is stored, but the console has no public key "
                    "for this witness (--witness-key), so it cannot be checked.",
                    c.tree_size,
                    c.cosigned_at,
                )
            )
            continue
        try:
            key.verify_line(audit.Checkpoint(checkpoint.origin, c.tree_size, c.root_hash), c.line)
        except audit.CheckpointError:
            verdicts.append(
                WitnessVerdict(
                    c.witness,
                    "invalid",
                    f"The stored cosignature of {at} does NOT verify with this witness's "
                    "key: it was altered or made by someone else. Treat it as an incident.",
                    c.tree_size,
                    c.cosigned_at,
                )
            )
            continue
        behind = checkpoint.tree_size - c.tree_size
        verdicts.append(
            WitnessVerdict(
                c.witness,
                "verified",
                f"Cosigned {at} (checked here with the witness's key)"
                + (f"; {behind} newer entries are not cosigned yet." if behind else "."),
                c.tree_size,
                c.cosigned_at,
            )
        )
    stored = {c.witness for c in checkpoint.cosignatures}
    verdicts += [
        WitnessVerdict(
            name,
            "missing",
            "No cosignature from this witness is stored: it has not cosigned yet, or "
            "the vault cannot reach it.",
        )
        for name in keys
        if name not in stored
    ]
    return verdicts


def inclusion_verdict(checkpoint: CheckpointInfo, logged: LoggedEntry, proof: ProofInfo) -> Verdict:
    assert logged.index is not None
    mine = leaf_hash(leaf_data(logged.entry.canonical_bytes(), logged.mac))
    if mine != proof.leaf_hash:
        return Verdict(
            False,
            "The entry shown does NOT match the leaf the log holds at this position.",
            f"recomputed leaf hash {mine.hex()}, log's {proof.leaf_hash.hex()}",
        )
    try:
        audit.verify_inclusion(
            logged.index, checkpoint.tree_size, mine, list(proof.hashes), checkpoint.root_hash
        )
    except audit.ProofError as exc:
        return Verdict(
            False, "The inclusion proof does NOT lead to the checkpoint's root.", str(exc)
        )
    return Verdict(
        True,
        f"Included in the log: leaf {logged.index} of the tree of {checkpoint.tree_size} "
        "entries, proof checked here against the checkpoint's root.",
        f"leaf hash {mine.hex()}; {len(proof.hashes)} proof hashes",
    )
