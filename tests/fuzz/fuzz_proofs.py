"""Fuzz target: Merkle proof verification (`audit.merkle_verify`), what relying parties run.

Contract: every `verify_*` returns None or raises `ProofError`, whatever the sizes,
indexes (negative, huge) and hashes (any length).
Invariants, over a real tree of fuzz-chosen leaves whose roots are trusted (as a signed
checkpoint would make them):
- honest proofs from `audit.merkle` verify;
- a proof the fuzzer assembles from the tree's own hashes (every leaf and subtree root,
  so it can build genuine proofs and near-misses) verifies only for true statements:
  the leaf really is at that index, the claimed old root really is the root at that
  size, the claimed subtree root really is that subtree's root.

Run: `.venv/bin/python tests/fuzz/fuzz_proofs.py [corpus dirs] [-max_total_time=60]`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["audit"]):
    from audit.errors import ProofError
    from audit.merkle import (
        consistency_proof,
        inclusion_proof,
        leaf_hash,
        root_of,
    )
    from audit.merkle_verify import (
        verify_consistency,
        verify_inclusion,
        verify_subtree_consistency,
        verify_subtree_inclusion,
    )

MAX_LEAVES = 20


def _holds(check: Callable[[], None]) -> bool:
    try:
        check()
    except ProofError:
        return False
    return True


class Tree:
    """A tree of fuzz-chosen leaves, and every hash an attacker could copy from it."""

    def __init__(self, fdp: atheris.FuzzedDataProvider) -> None:
        count = fdp.ConsumeIntInRange(1, MAX_LEAVES)
        # Few distinct leaf values, so equal leaves (and equal hashes) are common.
        self.leaves = [leaf_hash(bytes([fdp.ConsumeIntInRange(0, 3)])) for _ in range(count)]
        self.pool = sorted(
            {root_of(self.leaves[a:b]) for a in range(count) for b in range(a + 1, count + 1)}
        )

    def root(self, size: int) -> bytes:
        return root_of(self.leaves[:size])

    def pick(self, fdp: atheris.FuzzedDataProvider) -> bytes:
        return self.pool[fdp.ConsumeIntInRange(0, len(self.pool) - 1)]

    def assembled(self, fdp: atheris.FuzzedDataProvider, honest: list[bytes]) -> list[bytes]:
        """The honest proof, or a near-miss built from the tree's own hashes."""
        proof = list(honest)
        for _ in range(fdp.ConsumeIntInRange(0, 3)):
            kind = fdp.ConsumeIntInRange(0, 3)
            if kind == 0 and proof:
                proof[fdp.ConsumeIntInRange(0, len(proof) - 1)] = self.pick(fdp)
            elif kind == 1 and proof:
                del proof[fdp.ConsumeIntInRange(0, len(proof) - 1)]
            elif kind == 2:
                proof.insert(fdp.ConsumeIntInRange(0, len(proof)), self.pick(fdp))
            elif proof:
                position = fdp.ConsumeIntInRange(0, len(proof) - 1)
                flipped = bytearray(proof[position])
                flipped[fdp.ConsumeIntInRange(0, len(flipped) - 1)] ^= 1
                proof[position] = bytes(flipped)
        return proof


def _inclusion(fdp: atheris.FuzzedDataProvider) -> None:
    tree = Tree(fdp)
    size = fdp.ConsumeIntInRange(1, len(tree.leaves))
    index = fdp.ConsumeIntInRange(0, size - 1)
    root = tree.root(size)
    honest = inclusion_proof(tree.leaves, index, size)
    assert _holds(lambda: verify_inclusion(index, size, tree.leaves[index], honest, root))
    claimed = fdp.ConsumeIntInRange(-1, size)
    leaf = tree.pick(fdp) if fdp.ConsumeBool() else tree.leaves[index]
    proof = tree.assembled(fdp, honest)
    if _holds(lambda: verify_inclusion(claimed, size, leaf, proof, root)):
        assert 0 <= claimed < size and tree.leaves[claimed] == leaf, "false inclusion verified"


def _consistency(fdp: atheris.FuzzedDataProvider) -> None:
    tree = Tree(fdp)
    size2 = fdp.ConsumeIntInRange(1, len(tree.leaves))
    size1 = fdp.ConsumeIntInRange(1, size2)
    root2 = tree.root(size2)
    honest = consistency_proof(tree.leaves, size1, size2)
    assert _holds(lambda: verify_consistency(size1, size2, honest, tree.root(size1), root2))
    claimed = fdp.ConsumeIntInRange(0, size2)
    root1 = tree.pick(fdp) if fdp.ConsumeBool() else tree.root(size1)
    proof = tree.assembled(fdp, honest)
    if _holds(lambda: verify_consistency(claimed, size2, proof, root1, root2)):
        assert 0 < claimed <= size2 and tree.root(claimed) == root1, "false consistency verified"


def _subtree(fdp: atheris.FuzzedDataProvider) -> tuple[Tree, int, int, int]:
    """A tree, a size, and an aligned subtree [start, end) inside it."""
    tree = Tree(fdp)
    size = fdp.ConsumeIntInRange(1, len(tree.leaves))
    width = 1 << fdp.ConsumeIntInRange(0, (size - 1).bit_length())
    start = width * fdp.ConsumeIntInRange(0, (size - 1) // width)
    end = fdp.ConsumeIntInRange(start + 1, min(start + width, size))
    return tree, size, start, end


def _subtree_inclusion(fdp: atheris.FuzzedDataProvider) -> None:
    tree, _, start, end = _subtree(fdp)
    subtree_root = root_of(tree.leaves[start:end])
    index = fdp.ConsumeIntInRange(start, end - 1)
    honest = inclusion_proof(tree.leaves[start:end], index - start, end - start)
    leaf = tree.leaves[index]
    assert _holds(lambda: verify_subtree_inclusion(index, (start, end), leaf, honest, subtree_root))
    claimed = fdp.ConsumeIntInRange(start - 1, end)
    leaf = tree.pick(fdp) if fdp.ConsumeBool() else leaf
    proof = tree.assembled(fdp, honest)
    if _holds(lambda: verify_subtree_inclusion(claimed, (start, end), leaf, proof, subtree_root)):
        assert start <= claimed < end and tree.leaves[claimed] == leaf, "false inclusion verified"


def _subtree_consistency(fdp: atheris.FuzzedDataProvider) -> None:
    tree, size, start, end = _subtree(fdp)
    root = tree.root(size)
    subtree_root = tree.pick(fdp) if fdp.ConsumeBool() else root_of(tree.leaves[start:end])
    proof = tree.assembled(fdp, [tree.pick(fdp) for _ in range(fdp.ConsumeIntInRange(0, 6))])
    if _holds(lambda: verify_subtree_consistency((start, end), size, proof, subtree_root, root)):
        assert root_of(tree.leaves[start:end]) == subtree_root, "false subtree root verified"


def _any_values(fdp: atheris.FuzzedDataProvider) -> None:
    """Arbitrary sizes, indexes and hash lengths: only `ProofError` may come out."""

    def number() -> int:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))

    def digest() -> bytes:
        return fdp.ConsumeBytes(fdp.PickValueInList([32, 32, 32, 0, 31, 33]))

    proof = [digest() for _ in range(fdp.ConsumeIntInRange(0, 70))]
    calls: list[Callable[[], None]] = [
        lambda: verify_inclusion(number(), number(), digest(), proof, digest()),
        lambda: verify_consistency(number(), number(), proof, digest(), digest()),
        lambda: verify_subtree_inclusion(number(), (number(), number()), digest(), proof, digest()),
        lambda: verify_subtree_consistency(
            (number(), number()), number(), proof, digest(), digest()
        ),
    ]
    _holds(calls[fdp.ConsumeIntInRange(0, len(calls) - 1)])


MODES = [_inclusion, _consistency, _subtree_inclusion, _subtree_consistency, _any_values]


def fuzz_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
