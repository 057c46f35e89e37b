"""Proofs and checkpoints served from the stored log.

Proofs are built from the stored leaf hashes of integrated entries; a client checks
them with `audit.merkle.verify_inclusion` / `verify_consistency` against roots from
signed checkpoints, so it need not trust the database. Building a proof reads every
leaf hash of the tree once (O(n)); nothing else of the tree is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.db import snapshot
from audit.errors import ProofError, VerifyError
from audit.merkle import CompactRange, consistency_ranges, inclusion_ranges
from audit.tables import TREE_STATE_ID, checkpoints, cosignatures, tree_state
from audit.tables import entries as entries_table

_CHUNK = 1 << 16


def inclusion_proof(engine: Engine, leaf_index: int, tree_size: int) -> list[bytes]:
    """The inclusion proof of leaf `leaf_index` in the stored tree of size `tree_size`.

    Raises `ProofError` unless `0 <= leaf_index < tree_size <= ` the integrated size, and
    `VerifyError` (with the position) if the stored leaves it needs are not intact.
    """
    if not 0 <= leaf_index < tree_size:
        raise ProofError("leaf index is not below the tree size")
    with snapshot(engine) as conn:
        _check_size(conn, tree_size)
        return [
            _subtree_root(conn, start, end)
            for start, end in inclusion_ranges(leaf_index, tree_size)
        ]


def consistency_proof(engine: Engine, size1: int, size2: int) -> list[bytes]:
    """The consistency proof between the stored trees of sizes `size1` and `size2`.

    Raises `ProofError` unless `0 < size1 <= size2 <= ` the integrated size, and
    `VerifyError` (with the position) if the stored leaves it needs are not intact.
    """
    if not 0 < size1 <= size2:
        raise ProofError("a consistency proof needs 0 < size1 <= size2")
    with snapshot(engine) as conn:
        _check_size(conn, size2)
        if size1 == size2:
            return []
        return [_subtree_root(conn, start, end) for start, end in consistency_ranges(size1, size2)]


def leaf_hash_at(engine: Engine, leaf_index: int) -> bytes:
    """The stored leaf hash at `leaf_index` (raises `VerifyError` if there is none)."""
    with snapshot(engine) as conn:
        value = conn.execute(
            sa.select(entries_table.c.leaf_hash).where(entries_table.c.leaf_index == leaf_index)
        ).scalar_one_or_none()
    if value is None:
        raise VerifyError("no entry at this leaf index", leaf_index)
    return bytes(value)


@dataclass(frozen=True)
class Backlog:
    """Entries appended but not yet in the tree (no checkpoint covers them yet)."""

    count: int
    oldest_time_us: int | None


def backlog(engine: Engine) -> Backlog:
    """How far the signed checkpoints trail the log (served by the pending-entries index)."""
    pending = sa.select(sa.func.count(), sa.func.min(entries_table.c.time_us)).where(
        entries_table.c.leaf_index.is_(None)
    )
    with engine.connect() as conn:
        count, oldest = conn.execute(pending).one()
    return Backlog(int(count), None if oldest is None else int(oldest))


def latest_checkpoint(engine: Engine) -> str | None:
    """The signed note of the newest checkpoint, or None for an empty log."""
    with snapshot(engine) as conn:
        note = conn.execute(
            sa.select(checkpoints.c.note).order_by(checkpoints.c.size.desc()).limit(1)
        ).scalar_one_or_none()
    return None if note is None else str(note)


def cosigned_checkpoint(engine: Engine) -> str | None:
    """The newest checkpoint note with every stored witness cosignature of it appended
    (a C2SP cosigned note), or None for an empty log."""
    with snapshot(engine) as conn:
        row = conn.execute(
            sa.select(checkpoints.c.size, checkpoints.c.note)
            .order_by(checkpoints.c.size.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        lines = conn.execute(
            sa.select(cosignatures.c.line)
            .where(cosignatures.c.size == row[0])
            .order_by(cosignatures.c.witness)
        ).scalars()
        return str(row[1]) + "".join(str(line) for line in lines)


@dataclass(frozen=True)
class StoredCosignature:
    """A witness's cosignature line as the log stores it, with the checkpoint it covers
    (the body is rebuilt from the log's origin, `size` and `root_hash` to check it)."""

    witness: str
    size: int
    root_hash: bytes
    line: str
    cosigned_at: int  # POSIX seconds, as the witness stated in the cosignature


def newest_cosignatures(engine: Engine) -> list[StoredCosignature]:
    """Each witness's newest stored cosignature, by witness name (none: empty)."""
    c = cosignatures.c
    newest = sa.select(c.witness, sa.func.max(c.size).label("size")).group_by(c.witness).subquery()
    query = (
        sa.select(c.witness, c.size, c.root_hash, c.line, c.cosigned_at)
        .join(newest, sa.and_(c.witness == newest.c.witness, c.size == newest.c.size))
        .order_by(c.witness)
    )
    with snapshot(engine) as conn:
        return [
            StoredCosignature(str(w), int(n), bytes(r), str(line), int(t))
            for w, n, r, line, t in conn.execute(query)
        ]


def checkpoint_at(engine: Engine, size: int) -> str | None:
    """The signed note of the checkpoint at exactly `size`, if one was stored."""
    with snapshot(engine) as conn:
        note = conn.execute(
            sa.select(checkpoints.c.note).where(checkpoints.c.size == size)
        ).scalar_one_or_none()
    return None if note is None else str(note)


def export_checkpoint(engine: Engine, directory: Path | str) -> Path:
    """Write the newest checkpoint note to `directory/checkpoint-<size>.txt`.

    Keep these files somewhere the database's operators cannot rewrite: handed back to
    `verify_log` as the trusted checkpoint, one catches truncation and rewritten history.
    """
    note = cosigned_checkpoint(engine)
    if note is None:
        raise VerifyError("the audit log has no checkpoint yet")
    size = int(note.split("\n", 2)[1])
    path = Path(directory) / f"checkpoint-{size:020d}.txt"
    path.write_text(note, encoding="utf-8")
    return path


def _check_size(conn: Connection, tree_size: int) -> None:
    stored = conn.execute(
        sa.select(tree_state.c.size).where(tree_state.c.id == TREE_STATE_ID)
    ).scalar_one_or_none()
    if stored is None or not 0 < tree_size <= stored:
        raise ProofError("tree size is beyond the integrated log")


def _subtree_root(conn: Connection, start: int, end: int) -> bytes:
    tree = CompactRange()
    for low in range(start, end, _CHUNK):
        high = min(low + _CHUNK, end)
        hashes = (
            conn.execute(
                sa.select(entries_table.c.leaf_hash)
                .where(entries_table.c.leaf_index >= low, entries_table.c.leaf_index < high)
                .order_by(entries_table.c.leaf_index)
            )
            .scalars()
            .all()
        )
        if len(hashes) != high - low:
            raise VerifyError("stored leaves are missing or duplicated", low)
        tree.extend([bytes(value) for value in hashes])
    return tree.root()
