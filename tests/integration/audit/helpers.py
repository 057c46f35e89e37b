"""Building real audit logs for the integration tests, and tampering with them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from audit import AuditEntry, CheckpointSigner, Integrator, append_in, verify_pool
from audit.append import ROW_COLUMNS, entry_row
from audit.merkle import CompactRange, leaf_hash
from audit.tables import TREE_STATE_ID, checkpoints, entries, entry_subjects, tree_state

ORIGIN = "example.com/vault/audit"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_entry(number: int, **changes: Any) -> AuditEntry:
    """A plausible entry, distinct for every `number`."""
    fields: dict[str, Any] = {
        "time": T0 + timedelta(seconds=number),
        "actor": f"agent-{number % 3}",
        "actor_roles": ("agent",),
        "tenant": "acme",
        "action": "GetSubject" if number % 2 else "UpdateSubject",
        "subject_ids": (f"sub-{number % 5}",),
        "field_names": ("email",),
        "purpose": "support",
        "decision": "allow" if number % 4 else "deny",
        "reason": "rule-7",
        "result_code": "OK" if number % 4 else "PERMISSION_DENIED",
        "request_id": f"req-{number}",
    }
    fields.update(changes)
    return AuditEntry(**fields)


def explicit_begin_sqlite_engine(path: Path) -> Engine:
    """SQLite the way a host application may run it: pysqlite's own transaction handling
    off, BEGIN emitted from SQLAlchemy's `begin` event (the documented recipe)."""
    engine = sa.create_engine(
        f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30}
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def build_log(
    engine: Engine,
    signer: CheckpointSigner,
    count: int,
    *,
    batches: int = 4,
    checkpoint_interval: int = 1,
) -> Integrator:
    """Append `count` entries in `batches` transactions, integrating after each."""
    integrator = Integrator(engine, signer, ORIGIN, checkpoint_interval=checkpoint_interval)
    per_batch = -(-count // batches)
    for start in range(0, count, per_batch):
        with engine.begin() as conn:
            append_in(conn, [make_entry(i) for i in range(start, min(count, start + per_batch))])
        integrator.integrate()
    return integrator


def fresh_integrator(engine: Engine, signer: CheckpointSigner) -> Integrator:
    """An integrator with no memory of what was signed before (a new process without a
    last-checkpoint file): it trusts the stored tree, as every integrator once did."""
    return Integrator(engine, signer, ORIGIN, checkpoint_interval=1)


def row_at(conn: Connection, leaf: int) -> Mapping[str, Any]:
    return conn.execute(sa.select(entries).where(entries.c.leaf_index == leaf)).mappings().one()


def edit_field(conn: Connection, leaf: int, *, rewrite_hash: bool) -> None:
    """Change the actor of one entry, as an attacker with database access would."""
    row = row_at(conn, leaf)
    edited = dataclasses.replace(AuditEntry.from_canonical(row["entry"]), actor="mallory")
    values: dict[str, Any] = {"entry": edited.canonical_bytes(), "actor": "mallory"}
    if rewrite_hash:
        values["leaf_hash"] = leaf_hash(values["entry"])
    conn.execute(sa.update(entries).where(entries.c.id == row["id"]).values(**values))


def delete_leaf(conn: Connection, leaf: int, *, renumber: bool) -> None:
    row = row_at(conn, leaf)
    conn.execute(sa.delete(entry_subjects).where(entry_subjects.c.entry_id == row["id"]))
    conn.execute(sa.delete(entries).where(entries.c.id == row["id"]))
    if renumber:
        _shift(conn, leaf + 1, -1)


def insert_leaf(conn: Connection, leaf: int) -> None:
    """Slip a forged entry in at `leaf`, moving the later ones up by one."""
    _shift(conn, leaf, +1)
    forged = make_entry(999, actor="mallory")
    row = dict(zip(ROW_COLUMNS, entry_row(forged), strict=True))
    (entry_id,) = conn.execute(
        sa.insert(entries).values(leaf_index=leaf, **row).returning(entries.c.id)
    ).one()
    links = [
        {"subject_id": s, "tenant": forged.tenant, "entry_id": entry_id} for s in forged.subject_ids
    ]
    conn.execute(sa.insert(entry_subjects), links)


def edit_column(conn: Connection, leaf: int) -> None:
    """Change only the indexed actor column, so `query(actor=...)` misses the entry."""
    conn.execute(sa.update(entries).where(entries.c.leaf_index == leaf).values(actor="mallory"))


def unlink_subject(conn: Connection, leaf: int) -> None:
    """Delete an entry's subject link, so the subject's history misses the entry."""
    entry_id = row_at(conn, leaf)["id"]
    conn.execute(sa.delete(entry_subjects).where(entry_subjects.c.entry_id == entry_id))


def link_subject(conn: Connection, leaf: int) -> None:
    """Add a subject link the entry does not name, planting it in another history."""
    row = row_at(conn, leaf)
    conn.execute(
        sa.insert(entry_subjects).values(
            subject_id="sub-planted", tenant="acme", entry_id=row["id"]
        )
    )


def swap_leaves(conn: Connection, first: int, second: int) -> None:
    a, b = row_at(conn, first)["id"], row_at(conn, second)["id"]
    # Through a negative index: the unique index must hold after every statement.
    conn.execute(sa.update(entries).where(entries.c.id == a).values(leaf_index=-1))
    conn.execute(sa.update(entries).where(entries.c.id == b).values(leaf_index=first))
    conn.execute(sa.update(entries).where(entries.c.id == a).values(leaf_index=second))


def truncate(conn: Connection, keep: int, *, cover_up: bool) -> None:
    """Drop every leaf from `keep` on; with `cover_up`, also their checkpoints and state."""
    doomed = sa.select(entries.c.id).where(entries.c.leaf_index >= keep)
    conn.execute(sa.delete(entry_subjects).where(entry_subjects.c.entry_id.in_(doomed)))
    conn.execute(sa.delete(entries).where(entries.c.leaf_index >= keep))
    if cover_up:
        conn.execute(sa.delete(checkpoints).where(checkpoints.c.size > keep))
        hashes = conn.execute(
            sa.select(entries.c.leaf_hash).order_by(entries.c.leaf_index)
        ).scalars()
        tree = CompactRange()
        tree.extend([bytes(value) for value in hashes])
        conn.execute(
            sa.update(tree_state)
            .where(tree_state.c.id == TREE_STATE_ID)
            .values(size=tree.size, compact_range=tree.to_bytes(), root_hash=tree.root())
        )


def _shift(conn: Connection, start: int, delta: int) -> None:
    # Two steps through negative values keep the unique index on leaf_index satisfied.
    moved = entries.c.leaf_index >= start
    conn.execute(sa.update(entries).where(moved).values(leaf_index=-entries.c.leaf_index - 10))
    conn.execute(
        sa.update(entries)
        .where(entries.c.leaf_index <= -10)
        .values(leaf_index=-entries.c.leaf_index - 10 + delta)
    )


def chunks_from_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The chunks verify_pool's workers check from now on (their first leaves), as
    verification goes: empty if the log was read in one process."""
    from_workers: list[int] = []
    real_chunks = verify_pool.CheckerPool.chunks

    def counted(pool: verify_pool.CheckerPool, end: int) -> Iterator[verify_pool.Chunk]:
        for chunk in real_chunks(pool, end):
            from_workers.append(chunk.low)
            yield chunk

    monkeypatch.setattr(verify_pool.CheckerPool, "chunks", counted)
    return from_workers
