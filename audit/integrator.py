"""The integrator: puts appended entries into the Merkle tree and signs checkpoints.

Writers only insert rows (`leaf_index` NULL); the integrator takes the pending rows it
can see in id order, checks them and extends the tree by their hashes, then, under the
log's lock and only if the stored tree is still the one it extended, numbers them as
the next leaves, stores the compact range and signed checkpoints, all in one
transaction. This is Trillian's sequencer/integrator split: ids may have gaps or commit
out of order across processes, but leaf indexes are assigned by one lock holder at a
time, so they are dense and every process agrees on them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.checkpoint import Checkpoint, CheckpointSigner
from audit.db import locked_write, positional_marker, snapshot
from audit.errors import AuditError, TreeConflictError, VerifyError
from audit.last_signed import LastSignedFile
from audit.mac import EntryMac, leaf_data
from audit.merkle import CompactRange, leaf_hash
from audit.tables import TREE_STATE_ID, checkpoints, tree_state
from audit.tables import entries as entries_table

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
OnRefusal = Callable[[str], None]


def utc_now() -> datetime:
    """The current time in UTC (the default clock; inject another to test)."""
    return datetime.now(UTC)


class Integrator:
    """Assigns leaf indexes to pending entries and signs the resulting checkpoints.

    Besides the checkpoint at the end of every batch, one is signed each time the tree
    crosses a multiple of `checkpoint_interval` leaves: the verifier narrows a bad
    leaf down to the span between two checkpoints, so denser checkpoints name it
    more exactly. An end-of-batch checkpoint off those multiples is dropped once the
    next batch supersedes it, so the stored checkpoints stay about one per interval
    however often the integrator runs (every integrator of a log should use the same
    interval). Relying parties keep the checkpoints they were given; proofs from them
    are built from the leaves, not from stored checkpoints.

    With `last_signed` (a file outside the database) it extends only a stored tree that
    is the tree it last signed or grows from it by the leaves stored above it; with
    `mac` it integrates only pending entries whose MAC verifies. Otherwise it raises
    `TreeConflictError` and stays refused (`refusal`) until the process restarts: it
    never signs over, or silently accepts, a rewritten history.
    """

    def __init__(
        self,
        engine: Engine,
        signer: CheckpointSigner,
        origin: str,
        *,
        checkpoint_interval: int = 1024,
        now: Clock = utc_now,
        last_signed: LastSignedFile | None = None,
        mac: EntryMac | None = None,
    ) -> None:
        if checkpoint_interval < 1:
            raise ValueError("checkpoint_interval must be at least 1")
        Checkpoint(origin, 0, bytes(32))  # validates the origin once, up front
        self._engine = engine
        self._signer = signer
        self.origin = origin
        self._interval = checkpoint_interval
        self._now = now
        self._last_signed = last_signed
        self._mac = mac
        self._anchor: CompactRange | None = None  # the last tree this process signed
        self._anchor_loaded = False
        self._trusting_first = False
        self.refusal: str | None = None

    def integrate(self, max_batch: int = 10_000) -> Checkpoint | None:
        """Integrate up to `max_batch` pending entries; the new checkpoint, or None.

        Raises `TreeConflictError` if the stored tree or a pending entry is not one it
        may sign (see the class docstring); every later call raises it again.
        """
        return self._integrate(max_batch)[0]

    def _integrate(self, max_batch: int) -> tuple[Checkpoint | None, int]:
        if self.refusal is not None:
            raise TreeConflictError(self.refusal)
        try:
            return self._integrate_checked(max_batch)
        except TreeConflictError as exc:
            self.refusal = str(exc)
            raise

    def _integrate_checked(self, max_batch: int) -> tuple[Checkpoint | None, int]:
        self._load_anchor()
        # The checks and the hashing, the round's CPU, outside the log's lock: on SQLite
        # that lock is the database's one writer lock, and every audited call's commit
        # waits behind whoever holds it (in SQLite's busy handler, 1, 2, 5, 10 ms steps).
        with snapshot(self._engine) as conn:
            tree = _load_tree(conn)
            self._check_against_anchor(conn, tree)
            pending = conn.execute(
                sa.select(
                    entries_table.c.id,
                    entries_table.c.leaf_hash,
                    entries_table.c.entry,
                    entries_table.c.mac,
                )
                .where(entries_table.c.leaf_index.is_(None))
                .order_by(entries_table.c.id)
                .limit(max_batch)
            ).all()
        if not pending:
            self._anchor = tree
            return None, 0
        hashes = self._checked_hashes(pending)
        base = tree.copy()
        heads = self._extend(tree, hashes)
        created_us = int(self._now().timestamp() * 1_000_000)
        # Under the lock only the writes, once the stored tree is the one just extended.
        # Exactly the ids read above: a second look could see rows committed since,
        # which are not in the hashes being appended.
        with locked_write(self._engine) as conn:
            stored = _load_tree(conn)
            if stored.size != base.size or stored.hashes != base.hashes:
                # Another integrator's round committed in between: its tree is checked
                # against the anchor and extended next round.
                log.info("audit: the tree moved during integration; trying again")
                # `base` passed the anchor check (or was the tree trusted once): the
                # next round's stored tree must extend it.
                self._anchor = base
                return None, 0
            _number(conn, base.size, pending)
            signed, note = self._sign(conn, base.size, heads, created_us)
            conn.execute(
                sa.update(tree_state)
                .where(tree_state.c.id == TREE_STATE_ID)
                .values(size=tree.size, compact_range=tree.to_bytes(), root_hash=tree.root())
            )
        # Only after the commit: a file ahead of the database would be a false alarm.
        self._anchor = tree.copy()
        if self._last_signed is not None:
            self._last_signed.save(note, tree)
        return signed, len(pending)

    def _load_anchor(self) -> None:
        if self._anchor_loaded or self._last_signed is None:
            return
        try:
            last = self._last_signed.load()
        except AuditError as exc:
            raise TreeConflictError(str(exc)) from None
        if last is None:
            self._trusting_first = True
        elif last.checkpoint.origin != self.origin:
            raise TreeConflictError("the last-checkpoint file is for another log origin")
        else:
            self._anchor = last.tree
        self._anchor_loaded = True

    def _check_against_anchor(self, conn: Connection, tree: CompactRange) -> None:
        anchor = self._anchor
        if anchor is None:
            if self._trusting_first and tree.size > 0:
                # A log that already has entries, and nothing outside the database that
                # says what it was: worth a line (a new pod, or a lost data dir).
                log.warning(
                    "audit: no last-checkpoint file at %s; trusting the stored tree of %d "
                    "leaves this once (the witnesses still check it)",
                    self._last_signed.path if self._last_signed else "",
                    tree.size,
                )
            self._trusting_first = False
            return
        if tree.size < anchor.size:
            raise TreeConflictError(
                f"the stored audit tree has {tree.size} leaves, fewer than the {anchor.size} "
                "of the last checkpoint this integrator signed (truncated or rewound)"
            )
        grown = anchor.copy()
        if tree.size > anchor.size:
            hashes = conn.execute(
                sa.select(entries_table.c.leaf_hash)
                .where(
                    entries_table.c.leaf_index >= anchor.size,
                    entries_table.c.leaf_index < tree.size,
                )
                .order_by(entries_table.c.leaf_index)
            ).scalars()
            grown.extend([bytes(value) for value in hashes])
        if grown.size != tree.size or grown.hashes != tree.hashes:
            raise TreeConflictError(
                f"the stored audit tree at size {tree.size} is not consistent with the last "
                f"checkpoint this integrator signed (size {anchor.size}): history was rewritten"
            )

    def _checked_hashes(self, pending: Sequence[Any]) -> list[bytes]:
        hashes = []
        for _id, stored_hash, data, tag in pending:
            entry_bytes = bytes(data)
            mac = None if tag is None else bytes(tag)
            if self._mac is not None and not self._mac.is_valid(entry_bytes, mac):
                raise TreeConflictError(
                    "a pending audit entry has no valid MAC: it was not written by the vault"
                )
            computed = leaf_hash(leaf_data(entry_bytes, mac))
            if computed != bytes(stored_hash):
                raise TreeConflictError("a pending audit entry does not match its leaf hash")
            hashes.append(computed)
        return hashes

    def _extend(self, tree: CompactRange, hashes: list[bytes]) -> list[Checkpoint]:
        """Extend `tree` by `hashes`; the heads to sign: one at each multiple of the
        checkpoint interval crossed, and the last."""
        heads = []
        done = 0
        while done < len(hashes):
            # Stop at the next multiple of the interval, or at the end of the batch.
            boundary = (tree.size // self._interval + 1) * self._interval
            take = min(boundary - tree.size, len(hashes) - done)
            tree.extend(hashes[done : done + take])
            done += take
            heads.append(Checkpoint(self.origin, tree.size, tree.root()))
        return heads

    def _sign(
        self, conn: Connection, previous: int, heads: list[Checkpoint], created_us: int
    ) -> tuple[Checkpoint, str]:
        """Sign and store `heads`, dropping the superseded end-of-batch checkpoint at
        `previous` (off the interval's multiples); the last head and its signed note."""
        rows = [
            {
                "size": head.size,
                "root_hash": head.root_hash,
                "note": self._signer.sign(head),
                "created_us": created_us,
            }
            for head in heads
        ]
        if previous % self._interval:
            conn.execute(sa.delete(checkpoints).where(checkpoints.c.size == previous))
        conn.execute(sa.insert(checkpoints), rows)
        return heads[-1], str(rows[-1]["note"])


def _number(conn: Connection, first: int, pending: Sequence[Any]) -> None:
    """Number the `pending` rows (id, leaf hash, entry, mac) as the leaves from `first` on.

    Each must still be pending and hold exactly what was checked and hashed outside the
    lock: a row numbered or rewritten meanwhile (by anyone), or a leaf index already
    taken, fails the round, which rolls back and refuses."""
    leaves = [
        (first + i, entry_id, leaf, entry, mac)
        for i, (entry_id, leaf, entry, mac) in enumerate(pending)
    ]
    same_mac = "IS NOT DISTINCT FROM" if conn.dialect.name == "postgresql" else "IS"
    marker = positional_marker(conn)
    try:
        if marker is not None:
            # Only the driver's parameter marker is formatted in; the values are bound.
            sql = (
                f"UPDATE audit_entries SET leaf_index = {marker} "  # noqa: S608
                f"WHERE id = {marker} AND leaf_index IS NULL AND leaf_hash = {marker} "
                f"AND entry = {marker} AND mac {same_mac} {marker}"
            )
            conn.exec_driver_sql(sql, leaves)
        else:
            conn.execute(
                sa.update(entries_table)
                .where(
                    entries_table.c.id == sa.bindparam("b_id"),
                    entries_table.c.leaf_index.is_(None),
                    entries_table.c.leaf_hash == sa.bindparam("b_hash"),
                    entries_table.c.entry == sa.bindparam("b_entry"),
                    entries_table.c.mac.is_not_distinct_from(sa.bindparam("b_mac")),
                )
                .values(leaf_index=sa.bindparam("b_leaf")),
                [
                    {"b_leaf": n, "b_id": i, "b_hash": h, "b_entry": e, "b_mac": m}
                    for n, i, h, e, m in leaves
                ],
            )
    except sa.exc.IntegrityError:
        raise TreeConflictError(
            "a leaf index the integrator was to assign is already taken by another entry"
        ) from None
    numbered = conn.execute(
        sa.select(sa.func.count())
        .select_from(entries_table)
        .where(
            entries_table.c.leaf_index >= first,
            entries_table.c.leaf_index < first + len(leaves),
        )
    ).scalar_one()
    if numbered != len(leaves):
        raise TreeConflictError(
            "pending audit entries were numbered or rewritten by someone else during integration"
        )


def _load_tree(conn: Connection) -> CompactRange:
    row = conn.execute(
        sa.select(tree_state.c.size, tree_state.c.compact_range).where(
            tree_state.c.id == TREE_STATE_ID
        )
    ).one_or_none()
    if row is None:
        raise VerifyError("audit tree state is missing; run audit.migrate")
    try:
        return CompactRange.from_bytes(row[0], bytes(row[1]))
    except ValueError:
        raise VerifyError("audit tree state is corrupt") from None


class IntegratorThread:
    """Runs `integrator.integrate` every `interval` seconds until stopped.

    A batch that fills `max_batch` is followed at once by the next, so a backlog drains
    without waiting for the interval. Failures are logged and retried next round.
    """

    def __init__(
        self,
        integrator: Integrator,
        *,
        interval: float = 1.0,
        max_batch: int = 10_000,
        on_refusal: OnRefusal | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        self._integrator = integrator
        self._on_refusal = on_refusal
        self._on_checkpoint = on_checkpoint
        self._interval = interval
        self._max_batch = max_batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("integrator thread already started")
        self._thread = threading.Thread(target=self._run, name="audit-integrator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop once everything pending at this call is integrated (or a round fails)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if self._round():
                continue  # a full batch: more may be waiting, stopping or not
            if stopping:
                return
            self._stop.wait(self._interval)

    def _round(self) -> bool:
        try:
            checkpoint, count = self._integrator._integrate(self._max_batch)
        except TreeConflictError as exc:
            self._refused(str(exc))
            return False
        # The thread must outlive a database outage; the next round retries.
        except Exception as exc:  # noqa: BLE001
            # Not log.exception: a driver's traceback text can quote SQL and values.
            log.error("audit integration failed: %s", type(exc).__name__)  # noqa: TRY400
            return False
        if checkpoint is not None and self._on_checkpoint is not None:
            self._on_checkpoint(checkpoint)
        return count >= self._max_batch

    def _refused(self, problem: str) -> None:
        if self._stop.is_set():
            return
        # Loud once; then the thread stops (the integrator would refuse every round).
        log.error("audit integrator REFUSED to sign: %s; not integrating until restart", problem)
        if self._on_refusal is not None:
            self._on_refusal(problem)
        self._stop.set()
