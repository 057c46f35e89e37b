"""Checks the console makes itself, with the log's public key: a checkpoint's signature,
the signatures on its note, and an entry's inclusion proof (the leaf hash recomputed
from the entry the vault returned, so what the page shows is what the log holds)."""

from __future__ import annotations

from dataclasses import dataclass

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
