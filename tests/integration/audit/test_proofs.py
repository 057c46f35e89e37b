"""Inclusion and consistency proofs served from the stored log, checked client-side."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit import (
    CheckpointSigner,
    ProofError,
    VerifyError,
    checkpoint_at,
    consistency_proof,
    export_checkpoint,
    inclusion_proof,
    latest_checkpoint,
    leaf_hash_at,
    verify_consistency,
    verify_inclusion,
)
from audit.merkle import leaf_hash
from audit.tables import checkpoints, entries
from tests.integration.audit import helpers

SIZE = 37


@pytest.fixture
def logged(sqlite_or_pg_engine: Engine, audit_signer: CheckpointSigner) -> Engine:
    helpers.build_log(sqlite_or_pg_engine, audit_signer, SIZE, checkpoint_interval=8)
    return sqlite_or_pg_engine


def _signed_sizes(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(checkpoints.c.size).order_by(checkpoints.c.size)).scalars()
        )


def test_every_leaf_is_provably_in_every_signed_tree_that_holds_it(
    logged: Engine, audit_signer: CheckpointSigner
) -> None:
    verifier = audit_signer.verifier()
    for size in _signed_sizes(logged):
        note = checkpoint_at(logged, size)
        assert note is not None
        root = verifier.verify(note).root_hash
        # Every leaf of the newest tree; the edges and the middle of the older ones.
        indexes = range(size) if size == SIZE else {0, size // 2, size - 1}
        for index in indexes:
            expected = leaf_hash(helpers.make_entry(index).canonical_bytes())
            assert leaf_hash_at(logged, index) == expected
            verify_inclusion(index, size, expected, inclusion_proof(logged, index, size), root)


def test_every_signed_tree_extends_the_earlier_ones(
    logged: Engine, audit_signer: CheckpointSigner
) -> None:
    verifier = audit_signer.verifier()
    roots = {
        size: verifier.verify(checkpoint_at(logged, size) or "").root_hash
        for size in _signed_sizes(logged)
    }
    assert len(roots) >= 5
    for first, second in itertools.combinations_with_replacement(sorted(roots), 2):
        proof = consistency_proof(logged, first, second)
        verify_consistency(first, second, proof, roots[first], roots[second])


def test_a_proof_over_a_tampered_leaf_does_not_verify(
    logged: Engine, audit_signer: CheckpointSigner
) -> None:
    root = audit_signer.verifier().verify(latest_checkpoint(logged) or "").root_hash
    with logged.begin() as conn:
        helpers.edit_field(conn, 5, rewrite_hash=True)
    # Leaf 4's proof now carries a sibling hash the signed root never committed to.
    proof = inclusion_proof(logged, 4, SIZE)
    with pytest.raises(ProofError):
        verify_inclusion(4, SIZE, leaf_hash_at(logged, 4), proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(5, SIZE, leaf_hash_at(logged, 5), inclusion_proof(logged, 5, SIZE), root)


def test_proofs_refuse_sizes_outside_the_tree(logged: Engine) -> None:
    for index, size in ((0, 0), (0, SIZE + 1), (SIZE, SIZE), (-1, SIZE)):
        with pytest.raises(ProofError):
            inclusion_proof(logged, index, size)
    for size1, size2 in ((0, SIZE), (3, SIZE + 1), (5, 4)):
        with pytest.raises(ProofError):
            consistency_proof(logged, size1, size2)
    with pytest.raises(VerifyError):
        leaf_hash_at(logged, SIZE)


def test_a_proof_over_missing_leaves_is_refused(logged: Engine) -> None:
    with logged.begin() as conn:
        helpers.delete_leaf(conn, 9, renumber=False)
    with pytest.raises(VerifyError) as caught:
        inclusion_proof(logged, 0, SIZE)
    assert caught.value.position is not None


def test_checkpoints_of_an_empty_log(sqlite_or_pg_engine: Engine, tmp_path: Path) -> None:
    assert latest_checkpoint(sqlite_or_pg_engine) is None
    with pytest.raises(VerifyError):
        export_checkpoint(sqlite_or_pg_engine, tmp_path)
    with sqlite_or_pg_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one() == 0
