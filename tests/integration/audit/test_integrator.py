"""The integrator: dense leaf indexes, tree state, checkpoints, background thread."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit import (
    AuditLog,
    CheckpointSigner,
    Integrator,
    IntegratorThread,
    append_in,
    latest_checkpoint,
    verify_log,
)
from audit.checkpoint import Checkpoint
from audit.errors import TreeConflictError
from audit.merkle import leaf_hash, root_of
from audit.tables import checkpoints, entries
from tests.integration.audit.helpers import ORIGIN, make_entry


def test_integrate_assigns_consecutive_leaves_and_signs(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    integrator = Integrator(audit_engine, audit_signer, ORIGIN, checkpoint_interval=4)
    assert integrator.integrate() is None
    batch = [make_entry(n) for n in range(10)]
    with audit_engine.begin() as conn:
        append_in(conn, batch)
    checkpoint = integrator.integrate(max_batch=7)
    assert checkpoint is not None
    assert checkpoint.size == 7
    checkpoint = integrator.integrate()
    assert checkpoint is not None
    assert checkpoint.size == 10
    assert checkpoint.origin == ORIGIN
    assert checkpoint.root_hash == root_of([leaf_hash(e.canonical_bytes()) for e in batch])
    with audit_engine.connect() as conn:
        leaves = conn.execute(sa.select(entries.c.leaf_index).order_by(entries.c.id)).scalars()
        assert list(leaves) == list(range(10))
        sizes = conn.execute(sa.select(checkpoints.c.size).order_by(checkpoints.c.size))
        # 7 ended the first batch; the second batch superseded it.
        assert list(sizes.scalars()) == [4, 8, 10]
    note = latest_checkpoint(audit_engine)
    assert note is not None
    assert audit_signer.verifier().verify(note) == checkpoint


def test_frequent_small_batches_keep_about_one_checkpoint_per_interval(
    sqlite_or_pg_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    integrator = Integrator(sqlite_or_pg_engine, audit_signer, ORIGIN, checkpoint_interval=8)
    for n in range(30):
        with sqlite_or_pg_engine.begin() as conn:
            append_in(conn, [make_entry(n)])
        integrator.integrate()
    with sqlite_or_pg_engine.connect() as conn:
        sizes = conn.execute(sa.select(checkpoints.c.size).order_by(checkpoints.c.size))
        assert list(sizes.scalars()) == [8, 16, 24, 30]
    assert verify_log(sqlite_or_pg_engine, audit_signer.verifier()).ok


def test_integrator_thread_integrates_in_the_background(
    sqlite_or_pg_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    thread = IntegratorThread(
        Integrator(sqlite_or_pg_engine, audit_signer, ORIGIN), interval=0.01, max_batch=3
    )
    with sqlite_or_pg_engine.begin() as conn:
        append_in(conn, [make_entry(n) for n in range(10)])
    thread.start()
    thread.stop()  # stopping runs one last round, which drains the backlog
    report = verify_log(sqlite_or_pg_engine, audit_signer.verifier())
    assert report.ok
    assert report.size == 10
    assert report.pending == 0


def test_audit_log_facade(sqlite_or_pg_engine: Engine, audit_signer: CheckpointSigner) -> None:
    log = AuditLog(sqlite_or_pg_engine, signer=audit_signer, origin=ORIGIN, integrate_interval=0.01)
    log.start()
    ids = [log.append(make_entry(n)) for n in range(5)]
    with sqlite_or_pg_engine.begin() as conn:
        ids += log.append_in(conn, [make_entry(5)])
    log.close()
    assert len(set(ids)) == 6
    report = verify_log(sqlite_or_pg_engine, audit_signer.verifier())
    assert report.ok
    assert report.size == 6


def test_pending_entries_are_reported_not_failed(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    with audit_engine.begin() as conn:
        append_in(conn, [make_entry(n) for n in range(3)])
    Integrator(audit_engine, audit_signer, ORIGIN).integrate()
    with audit_engine.begin() as conn:
        append_in(conn, [make_entry(n) for n in range(3, 5)])
    report = verify_log(audit_engine, audit_signer.verifier())
    assert report.ok
    assert (report.size, report.pending) == (3, 2)


def _clock_first_running(step: Callable[[], object]) -> Callable[[], datetime]:
    """A clock that runs `step` the first time it is read. The integrator reads it after
    its checks and before it takes the log's lock: where another writer could step in."""
    stepped = False

    def clock() -> datetime:
        nonlocal stepped
        if not stepped:
            stepped = True
            step()
        return datetime.now(UTC)

    return clock


def test_a_round_whose_tree_moved_before_it_took_the_lock_writes_nothing(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    # The hashing runs outside the log's lock. Another integrator's round that commits
    # between the read and the lock (here from the clock, read at that point) must win:
    # the late round numbers nothing, and the next one extends the tree that is stored.
    other = Integrator(audit_engine, audit_signer, ORIGIN, checkpoint_interval=4)
    raced: list[Checkpoint | None] = []
    clock = _clock_first_running(lambda: raced.append(other.integrate()))
    late = Integrator(audit_engine, audit_signer, ORIGIN, checkpoint_interval=4, now=clock)
    with audit_engine.begin() as conn:
        append_in(conn, [make_entry(n) for n in range(5)])
    assert late.integrate() is None
    assert raced[0] is not None
    assert raced[0].size == 5
    with audit_engine.connect() as conn:
        # Only the other round's checkpoints: the late one stored and numbered nothing.
        sizes = conn.execute(sa.select(checkpoints.c.size).order_by(checkpoints.c.size))
        assert list(sizes.scalars()) == [4, 5]
    with audit_engine.begin() as conn:
        append_in(conn, [make_entry(n) for n in range(5, 8)])
    checkpoint = late.integrate()
    assert checkpoint is not None
    assert checkpoint.size == 8
    with audit_engine.connect() as conn:
        leaves = conn.execute(sa.select(entries.c.leaf_index).order_by(entries.c.id)).scalars()
        assert list(leaves) == list(range(8))
    report = verify_log(audit_engine, audit_signer.verifier())
    assert report.ok
    assert (report.size, report.pending) == (8, 0)


def test_an_entry_numbered_behind_the_integrators_back_is_refused(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    # A pending entry given a leaf index between the read and the lock, with the tree
    # state left alone, is no integrator's doing: the round rolls back and refuses.

    def number_one() -> None:
        with audit_engine.begin() as conn:
            conn.execute(sa.update(entries).where(entries.c.id == ids[2]).values(leaf_index=99))

    integrator = Integrator(
        audit_engine, audit_signer, ORIGIN, now=_clock_first_running(number_one)
    )
    with audit_engine.begin() as conn:
        ids = append_in(conn, [make_entry(n) for n in range(5)])
    with pytest.raises(TreeConflictError, match="numbered or rewritten by someone else"):
        integrator.integrate()
    assert integrator.refusal is not None
    with audit_engine.connect() as conn:
        leaves = conn.execute(sa.select(entries.c.leaf_index).order_by(entries.c.id)).scalars()
        assert list(leaves) == [None, None, 99, None, None]
        assert conn.execute(sa.select(sa.func.count()).select_from(checkpoints)).scalar_one() == 0


def test_an_entry_rewritten_behind_the_integrators_back_is_refused(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    # A pending entry replaced, leaf hash and all, between the checks and the lock: the
    # round must not number what it never checked.
    forged = make_entry(99).canonical_bytes()

    def rewrite_one() -> None:
        with audit_engine.begin() as conn:
            conn.execute(
                sa.update(entries)
                .where(entries.c.id == ids[1])
                .values(entry=forged, leaf_hash=leaf_hash(forged), mac=None)
            )

    integrator = Integrator(
        audit_engine, audit_signer, ORIGIN, now=_clock_first_running(rewrite_one)
    )
    with audit_engine.begin() as conn:
        ids = append_in(conn, [make_entry(n) for n in range(5)])
    with pytest.raises(TreeConflictError, match="rewritten by someone else"):
        integrator.integrate()
    with audit_engine.connect() as conn:
        leaves = conn.execute(sa.select(entries.c.leaf_index).order_by(entries.c.id)).scalars()
        assert list(leaves) == [None] * 5
        assert conn.execute(sa.select(sa.func.count()).select_from(checkpoints)).scalar_one() == 0


def test_a_leaf_index_taken_behind_the_integrators_back_is_refused(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    # An entry appended after the round's read, given one of the leaf indexes the round
    # is about to assign: a unique-index violation, refused, not retried as an outage.

    def take_index_2() -> None:
        with audit_engine.begin() as conn:
            (late,) = append_in(conn, [make_entry(50)])
            conn.execute(sa.update(entries).where(entries.c.id == late).values(leaf_index=2))

    integrator = Integrator(
        audit_engine, audit_signer, ORIGIN, now=_clock_first_running(take_index_2)
    )
    with audit_engine.begin() as conn:
        append_in(conn, [make_entry(n) for n in range(5)])
    with pytest.raises(TreeConflictError, match="already taken"):
        integrator.integrate()
    assert integrator.refusal is not None
