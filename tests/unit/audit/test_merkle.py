"""Merkle tree construction, compact ranges and proof generation."""

from __future__ import annotations

import hashlib

import pytest

from audit.errors import ProofError
from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
)
from audit.merkle_verify import verify_consistency, verify_inclusion

# RFC 6962 reference leaves and the roots of their prefixes (transparency-dev/merkle).
LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f")
]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _hashes(count: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(count)]


def test_hash_domain_separation() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_reference(size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES[:size]]
    assert root_of(hashes).hex() == ROOTS[size - 1]


def test_compact_range_append_extend_and_serialization_agree() -> None:
    hashes = _hashes(300)
    one_by_one = CompactRange()
    for index, value in enumerate(hashes):
        one_by_one.append(value)
        assert one_by_one.root() == root_of(hashes[: index + 1])
    for split in (0, 1, 7, 64, 129, 300):
        in_two = CompactRange()
        in_two.extend(hashes[:split])
        in_two.extend(hashes[split:])
        assert in_two.root() == one_by_one.root()
    restored = CompactRange.from_bytes(one_by_one.size, one_by_one.to_bytes())
    assert restored.hashes == one_by_one.hashes
    with pytest.raises(ValueError):
        CompactRange.from_bytes(301, one_by_one.to_bytes())


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 32, 33])
def test_generated_inclusion_proofs_verify_and_reject_tampering(size: int) -> None:
    hashes = _hashes(size)
    root = root_of(hashes)
    for index in range(size):
        proof = inclusion_proof(hashes, index, size)
        verify_inclusion(index, size, hashes[index], proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf_hash(b"other"), proof, root)
        if proof:
            bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
            with pytest.raises(ProofError):
                verify_inclusion(index, size, hashes[index], bad, root)


@pytest.mark.parametrize("size2", [2, 3, 7, 8, 9, 20, 33])
def test_generated_consistency_proofs_verify_and_reject_other_roots(size2: int) -> None:
    hashes = _hashes(size2)
    root2 = root_of(hashes)
    for size1 in range(1, size2 + 1):
        root1 = root_of(hashes[:size1])
        proof = consistency_proof(hashes, size1, size2)
        verify_consistency(size1, size2, proof, root1, root2)
        if size1 < size2:
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, proof, root_of(_hashes(size1 + 1)[1:]), root2)


def test_proof_generation_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(_hashes(4), 4, 4)
    with pytest.raises(ValueError):
        inclusion_proof(_hashes(4), 0, 5)
    with pytest.raises(ValueError):
        consistency_proof(_hashes(4), 0, 4)
