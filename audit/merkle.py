"""RFC 6962 / RFC 9162 Merkle tree: hashing, compact ranges and proof generation.

Leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right); the tree
over n leaves splits at the largest power of two below n. Proofs are built from any
source of subtree roots (a list in memory, or stored leaf hashes read range by range),
so the shape of a proof - which ranges it needs - is separate from where hashes live.
Checking proofs is `audit.merkle_verify`'s job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_NODE_PREFIX = _sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Root of a perfect subtree: `len(hashes)` must be a power of two (and non-zero)."""
    level = list(hashes)
    # A copy of a hash already fed the 0x01 costs less than a new one over joined bytes
    # (15% of this loop, which runs once per leaf when the verifier rebuilds the tree).
    new_node = _NODE_PREFIX.copy
    while len(level) > 1:
        parents = []
        for left, right in zip(level[::2], level[1::2], strict=True):
            node = new_node()
            node.update(left)
            node.update(right)
            parents.append(node.digest())
        level = parents
    return level[0]


class CompactRange:
    """The O(log n) state of a Merkle tree over leaves [0, size): one hash per set bit.

    `hashes` holds the roots of the perfect subtrees that make up the range, largest
    (leftmost) first, exactly as needed to keep appending and to compute the root.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self._size = size
        self._hashes = list(hashes)
        if size < 0 or len(self._hashes) != size.bit_count():
            raise ValueError("compact range hashes do not match its size")

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self._push(leaf, 0)

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add many leaf hashes, hashing whole aligned perfect subtrees at once (fast)."""
        start, total = 0, len(leaves)
        while start < total:
            # The largest power-of-two block that is both aligned at the current size and
            # no longer than what is left.
            level = (total - start).bit_length() - 1
            if self._size:
                level = min(level, (self._size & -self._size).bit_length() - 1)
            count = 1 << level
            self._push(perfect_root(leaves[start : start + count]), level)
            start += count

    def _push(self, subtree: bytes, level: int) -> None:
        bits = self._size >> level
        while bits & 1:
            subtree = _sha256(b"\x01" + self._hashes.pop() + subtree).digest()
            bits >>= 1
        self._hashes.append(subtree)
        self._size += 1 << level

    def root(self) -> bytes:
        """The RFC 6962 root of the leaves covered (SHA-256 of nothing when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            result = _sha256(b"\x01" + left + result).digest()
        return result

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """The subtree roots concatenated (the size is stored beside them)."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Inverse of `to_bytes`."""
        if len(data) != HASH_SIZE * size.bit_count():
            raise ValueError("compact range bytes do not match its size")
        return cls(size, (data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)))


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a list of leaf hashes."""
    tree = CompactRange()
    tree.extend(leaves)
    return tree.root()


def _split(size: int) -> int:
    """The largest power of two strictly below `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


Range = tuple[int, int]


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Leaf ranges whose subtree roots form the inclusion proof of `index` (RFC 9162 PATH)."""
    if not 0 <= index < size:
        raise ValueError("leaf index out of range")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()  # the proof lists hashes from the leaf upwards
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """Leaf ranges whose subtree roots form the consistency proof (RFC 9162 SUBPROOF)."""
    if not 0 < size1 <= size2:
        raise ValueError("consistency proof needs 0 < size1 <= size2")
    ranges: list[Range] = []
    start, end, complete = 0, size2, True
    m = size1
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Inclusion proof of leaf `index` in the tree of the first `size` leaf hashes."""
    return _hashes_for(inclusion_ranges(index, size), leaves, size)


def consistency_proof(leaves: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """Consistency proof between the trees of the first `size1` and `size2` leaf hashes."""
    if size1 == size2:
        return []
    return _hashes_for(consistency_ranges(size1, size2), leaves, size2)


def _hashes_for(ranges: list[Range], leaves: Sequence[bytes], size: int) -> list[bytes]:
    if size > len(leaves):
        raise ValueError("tree size exceeds the number of leaves")
    return [root_of(leaves[start:end]) for start, end in ranges]
