"""The integrator: puts appended entries into the Merkle tree and signs checkpoints.

Writers only insert rows (`leaf_index` NULL); the integrator, under the log's lock,
takes the pending rows it can see in id order, numbers them as the next leaves, extends
the stored compact range, and stores signed checkpoints, all in one transaction. This is
Trillian's sequencer/integrator split: ids may have gaps or commit out of order across
processes, but leaf indexes are assigned by one lock holder at a time, so they are dense
and every process agrees on them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.checkpoint import Checkpoint, CheckpointSigner
from audit.db import locked_write, positional_marker
from audit.errors import VerifyError
from audit.merkle import CompactRange
from audit.tables import TREE_STATE_ID, checkpoints, tree_state
from audit.tables import entries as entries_table

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
    """

    def __init__(
        self,
        engine: Engine,
        signer: CheckpointSigner,
        origin: str,
        *,
        checkpoint_interval: int = 1024,
        now: Clock = utc_now,
    ) -> None:
        if checkpoint_interval < 1:
            raise ValueError("checkpoint_interval must be at least 1")
        Checkpoint(origin, 0, bytes(32))  # validates the origin once, up front
        self._engine = engine
        self._signer = signer
        self.origin = origin
        self._interval = checkpoint_interval
        self._now = now

    def integrate(self, max_batch: int = 10_000) -> Checkpoint | None:
        """Integrate up to `max_batch` pending entries; the new checkpoint, or None."""
        return self._integrate(max_batch)[0]

    def _integrate(self, max_batch: int) -> tuple[Checkpoint | None, int]:
        with locked_write(self._engine) as conn:
            pending = conn.execute(
                sa.select(entries_table.c.id, entries_table.c.leaf_hash)
                .where(entries_table.c.leaf_index.is_(None))
                .order_by(entries_table.c.id)
                .limit(max_batch)
            ).all()
            if not pending:
                return None, 0
            tree = _load_tree(conn)
            first = tree.size
            # Exactly the ids read above: under READ COMMITTED a second look could see
            # rows committed since, which are not in the hashes being appended.
            _number(conn, [(first + i, row[0]) for i, row in enumerate(pending)])
            signed = self._extend_and_sign(conn, tree, [bytes(row[1]) for row in pending])
            conn.execute(
                sa.update(tree_state)
                .where(tree_state.c.id == TREE_STATE_ID)
                .values(size=tree.size, compact_range=tree.to_bytes(), root_hash=tree.root())
            )
            return signed, len(pending)

    def _extend_and_sign(
        self, conn: Connection, tree: CompactRange, hashes: list[bytes]
    ) -> Checkpoint:
        created_us = int(self._now().timestamp() * 1_000_000)
        previous = tree.size
        rows = []
        done = 0
        while done < len(hashes):
            # Stop at the next multiple of the interval, or at the end of the batch.
            boundary = (tree.size // self._interval + 1) * self._interval
            take = min(boundary - tree.size, len(hashes) - done)
            tree.extend(hashes[done : done + take])
            done += take
            checkpoint = Checkpoint(self.origin, tree.size, tree.root())
            rows.append(
                {
                    "size": checkpoint.size,
                    "root_hash": checkpoint.root_hash,
                    "note": self._signer.sign(checkpoint),
                    "created_us": created_us,
                }
            )
        if previous % self._interval:
            conn.execute(sa.delete(checkpoints).where(checkpoints.c.size == previous))
        conn.execute(sa.insert(checkpoints), rows)
        return checkpoint


def _number(conn: Connection, leaves: list[tuple[int, int]]) -> None:
    """Set `leaf_index` for each (leaf index, id) pair."""
    marker = positional_marker(conn)
    if marker is not None:
        # Only the driver's parameter marker is formatted in; the values are bound.
        sql = f"UPDATE audit_entries SET leaf_index = {marker} WHERE id = {marker}"  # noqa: S608
        conn.exec_driver_sql(sql, leaves)
        return
    conn.execute(
        sa.update(entries_table)
        .where(entries_table.c.id == sa.bindparam("b_id"))
        .values(leaf_index=sa.bindparam("b_leaf")),
        [{"b_leaf": leaf, "b_id": entry_id} for leaf, entry_id in leaves],
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
        self, integrator: Integrator, *, interval: float = 1.0, max_batch: int = 10_000
    ) -> None:
        self._integrator = integrator
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
            _checkpoint, count = self._integrator._integrate(self._max_batch)
        # The thread must outlive a database outage; the next round retries.
        except Exception as exc:  # noqa: BLE001
            # Not log.exception: a driver's traceback text can quote SQL and values.
            log.error("audit integration failed: %s", type(exc).__name__)  # noqa: TRY400
            return False
        return count >= self._max_batch
