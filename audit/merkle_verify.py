"""Checking Merkle proofs: what a relying party runs, with no access to the log.

Inclusion and consistency proofs follow RFC 9162 section 2.1.3-2.1.4. Subtree proofs
(draft-ietf-plants-merkle-tree-certs) generalize both to a subtree `[start, end)` of
the tree: a plain consistency proof is the subtree consistency proof of `[0, size1)`.
Every check raises `ProofError` unless the proof holds; none returns a bool to ignore.
"""

from __future__ import annotations

from collections.abc import Sequence

from audit.errors import ProofError
from audit.merkle import EMPTY_ROOT, HASH_SIZE, node_hash


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `leaf_index` of the tree of `tree_size` with `root`."""
    if _root_from_inclusion(leaf_index, tree_size, leaf_hash, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size1` with `root1` is a prefix of that of `size2`.

    A proof from the empty tree is refused as meaningless (any tree extends it).
    """
    if size2 < size1:
        raise ProofError("size2 is smaller than size1")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    verify_subtree_consistency((0, size1), size2, proof, root1, root2)


def verify_subtree_inclusion(
    leaf_index: int,
    subtree: tuple[int, int],
    leaf_hash: bytes,
    proof: Sequence[bytes],
    subtree_root: bytes,
) -> None:
    """Check that `leaf_hash` is leaf `leaf_index` of the subtree `[start, end)`."""
    start, end = subtree
    _check_subtree(start, end)
    if not start <= leaf_index < end:
        raise ProofError("leaf index is outside the subtree")
    computed = _root_from_inclusion(leaf_index - start, end - start, leaf_hash, proof)
    if computed != subtree_root:
        raise ProofError("inclusion proof does not lead to the subtree root")


def verify_subtree_consistency(
    subtree: tuple[int, int],
    size: int,
    proof: Sequence[bytes],
    subtree_root: bytes,
    root: bytes,
) -> None:
    """Check that the subtree `[start, end)` with `subtree_root` is in the tree of `size`.

    The empty subtree (`start == end`) is in every tree: its root must be the hash of
    nothing and its proof empty, and `root` is not looked at.
    """
    start, end = subtree
    if size < end:
        raise ProofError("the subtree ends beyond the tree")
    if start == end >= 0:
        if proof or subtree_root != EMPTY_ROOT:
            raise ProofError("an empty subtree needs the empty root and an empty proof")
        return
    _check_subtree(start, end)
    for item in proof:
        _check_hash(item)
    if start == 0 and end == size:
        if proof:
            raise ProofError("a subtree that is the whole tree needs an empty proof")
        computed = subtree_root
    elif not proof:
        raise ProofError("consistency proof is empty")
    elif end == size:
        computed = _root_from_right_edge(start, end, proof, subtree_root)
    else:
        computed = _root_from_grown_subtree(start, end, size, proof, subtree_root)
    if computed != root:
        raise ProofError("consistency proof does not lead to the root")


def _check_subtree(start: int, end: int) -> None:
    # A subtree is a node of some tree: its start is a multiple of the smallest power of
    # two at least as large as its width.
    if not 0 <= start < end:
        raise ProofError("subtree must be non-empty")
    if start % (1 << (end - start - 1).bit_length()):
        raise ProofError("subtree is not aligned to its width")


def _root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    if not 0 <= index < size:
        raise ProofError("leaf index is not below the tree size")
    _check_hash(leaf_hash)
    for item in proof:
        _check_hash(item)
    inner = (index ^ (size - 1)).bit_length()  # where the paths to index and size-1 part
    border = (index >> inner).bit_count()
    if len(proof) != inner + border:
        raise ProofError("inclusion proof has the wrong length")
    computed = leaf_hash
    for level, sibling in enumerate(proof[:inner]):
        if (index >> level) & 1:
            computed = node_hash(sibling, computed)
        else:
            computed = node_hash(computed, sibling)
    return _chain_left(computed, proof[inner:])


def _root_from_right_edge(
    start: int, end: int, proof: Sequence[bytes], subtree_root: bytes
) -> bytes:
    # The subtree ends where the tree does: one left sibling per level at which the
    # subtree's ancestor is a right child.
    height = ((end - 1) ^ start).bit_length()
    if len(proof) != (start >> height).bit_count():
        raise ProofError("consistency proof has the wrong length")
    return _chain_left(subtree_root, proof)


def _root_from_grown_subtree(
    start: int, end: int, size: int, proof: Sequence[bytes], subtree_root: bytes
) -> bytes:
    fork = ((end - 1) ^ (size - 1)).bit_length()  # where paths to end-1 and size-1 part
    shift = ((end - start) & -(end - start)).bit_length() - 1  # rightmost full subtree
    # The proof opens with the root of the subtree's rightmost full subtree, unless the
    # subtree is full itself: then that root is the subtree root the caller holds.
    if end - start == 1 << shift:
        seed, rest = subtree_root, proof
    else:
        seed, rest = proof[0], proof[1:]
    if len(rest) != (fork - shift) + ((end - 1) >> fork).bit_count():
        raise ProofError("consistency proof has the wrong length")
    height = ((end - 1) ^ start).bit_length()
    old, grown, used = seed, seed, 0
    for level in range(shift, height):
        if ((end - 1) >> level) & 1:
            old = node_hash(rest[used], old)
            grown = node_hash(rest[used], grown)
            used += 1
        elif level < fork:  # right siblings exist only below the fork
            grown = node_hash(grown, rest[used])
            used += 1
    if old != subtree_root:
        raise ProofError("consistency proof does not lead to the subtree root")
    # What is left proves the grown subtree's inclusion, one level up per `height`.
    return _root_from_inclusion(start >> height, ((size - 1) >> height) + 1, grown, rest[used:])


def _chain_left(seed: bytes, siblings: Sequence[bytes]) -> bytes:
    for sibling in siblings:
        seed = node_hash(sibling, seed)
    return seed


def _check_hash(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError("a hash has the wrong length")
