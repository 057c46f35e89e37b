"""verify_log with worker processes reading and checking the chunks (`audit.verify_pool`):
the same report as one process gives, honest or tampered, on SQLite files (in both
transaction styles); whatever keeps the workers from the verifier's own snapshot leaves
the log to the verifier; PostgreSQL is verified in one process. Chunks of 8 leaves, so
a log of 40 uses the pool."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool, StaticPool

from audit import (
    CheckpointSigner,
    EntryMac,
    Integrator,
    VerifyReport,
    append_in,
    create_sqlite_engine,
    generate_mac_key,
    leaf_scan,
    migrate,
    use_entry_mac,
    verify_log,
    verify_pool,
)
from audit import verify as audit_verify
from audit.merkle import leaf_hash
from audit.tables import entries
from tests.integration.audit import helpers

SIZE = 40


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The workers are new interpreters: they read the bounds they are given, not these.
    monkeypatch.setattr(leaf_scan, "CHUNK", 8)
    monkeypatch.setattr(verify_pool, "MIN_CHUNKS", 2)
    monkeypatch.setattr(audit_verify, "PROGRESS_EVERY", 8)


@pytest.fixture(params=["sqlite", "sqlite-explicit-begin"])
def sqlite_file(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty audit database in a SQLite file, in both transaction styles."""
    if request.param == "sqlite":
        engine = create_sqlite_engine(tmp_path / "audit.db")
    else:
        engine = helpers.explicit_begin_sqlite_engine(tmp_path / "audit.db")
    migrate(engine)
    yield engine
    engine.dispose()


def _both(engine: Engine, signer: CheckpointSigner, **kwargs: object) -> list[VerifyReport]:
    return [
        verify_log(engine, signer.verifier(), workers=workers, **kwargs)  # type: ignore[arg-type]
        for workers in (1, 2)
    ]


def test_an_honest_log_gets_the_same_report_from_workers(
    sqlite_file: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers.build_log(sqlite_file, audit_signer, SIZE)
    from_workers: list[int] = []
    real_chunks = verify_pool.CheckerPool.chunks

    def counted(pool: verify_pool.CheckerPool, end: int) -> Iterator[verify_pool.Chunk]:
        for chunk in real_chunks(pool, end):
            from_workers.append(chunk.low)
            yield chunk

    monkeypatch.setattr(verify_pool.CheckerPool, "chunks", counted)
    alone, pooled = _both(sqlite_file, audit_signer)
    assert alone.ok
    assert alone.entries_checked == SIZE
    assert pooled == alone
    assert from_workers == [0, 8, 16, 24, 32]


TAMPERING: dict[str, Callable[[Connection], None]] = {
    "column": lambda conn: helpers.edit_column(conn, 13),
    "content": lambda conn: helpers.edit_field(conn, 21, rewrite_hash=False),
    "content and hash": lambda conn: helpers.edit_field(conn, 21, rewrite_hash=True),
    "link": lambda conn: helpers.unlink_subject(conn, 30),
    "missing leaf": lambda conn: helpers.delete_leaf(conn, 17, renumber=False),
    "swapped leaves": lambda conn: helpers.swap_leaves(conn, 9, 26),
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_workers_name_the_bad_leaf_one_process_names(
    sqlite_file: Engine,
    audit_signer: CheckpointSigner,
    tamper: Callable[[Connection], None],
) -> None:
    helpers.build_log(sqlite_file, audit_signer, SIZE)
    with sqlite_file.begin() as conn:
        tamper(conn)
    alone, pooled = _both(sqlite_file, audit_signer)
    assert not alone.ok
    assert pooled == alone


def _with_macs(engine: Engine, signer: CheckpointSigner, tmp_path: Path) -> EntryMac:
    """A log whose first 11 entries predate MACs and whose later ones carry them."""
    mac = EntryMac.from_file(generate_mac_key(tmp_path / "keys" / "audit_mac.key"))
    with engine.begin() as conn:
        append_in(conn, [helpers.make_entry(n) for n in range(11)])
    helpers.fresh_integrator(engine, signer).integrate()
    use_entry_mac(engine, mac)
    integrator = Integrator(engine, signer, helpers.ORIGIN, checkpoint_interval=1, mac=mac)
    for start in range(11, SIZE, 10):
        with engine.begin() as conn:
            append_in(conn, [helpers.make_entry(n) for n in range(start, min(SIZE, start + 10))])
        integrator.integrate()
    return mac


def test_workers_check_macs_as_one_process_does(
    sqlite_file: Engine, audit_signer: CheckpointSigner, tmp_path: Path
) -> None:
    mac = _with_macs(sqlite_file, audit_signer, tmp_path)
    alone, pooled = _both(sqlite_file, audit_signer, mac=mac)
    assert (alone.ok, alone.mac_checked, alone.mac_legacy) == (True, True, 11)
    assert pooled == alone


@pytest.mark.parametrize("tag", [None, b"\x00" * 32], ids=["removed", "forged"])
def test_workers_find_a_bad_mac_where_one_process_does(
    sqlite_file: Engine, audit_signer: CheckpointSigner, tmp_path: Path, tag: bytes | None
) -> None:
    mac = _with_macs(sqlite_file, audit_signer, tmp_path)
    with sqlite_file.begin() as conn:
        # The leaf hash covers the MAC; rewritten too, only the MAC check can tell.
        row = helpers.row_at(conn, 27)
        forged = leaf_hash(row["entry"] + (tag or b""))
        conn.execute(
            sa.update(entries).where(entries.c.id == row["id"]).values(mac=tag, leaf_hash=forged)
        )
    alone, pooled = _both(sqlite_file, audit_signer, mac=mac)
    assert (alone.ok, alone.first_bad_position) == (False, 27)
    assert pooled == alone


def test_entries_integrated_meanwhile_are_not_read_by_the_workers(
    sqlite_file: Engine, audit_signer: CheckpointSigner
) -> None:
    """The log grows while the workers read it: they check the size the verifying
    process found (PostgreSQL: in its snapshot; SQLite: up to that size)."""
    integrator = helpers.build_log(sqlite_file, audit_signer, SIZE)
    grown: list[int] = []

    def grow(done: int, total: int) -> None:
        if not grown:
            with sqlite_file.begin() as conn:
                append_in(conn, [helpers.make_entry(n) for n in range(SIZE, SIZE + 20)])
            integrator.integrate()
            grown.append(done)

    report = verify_log(sqlite_file, audit_signer.verifier(), progress=grow, workers=2)
    assert grown
    assert (report.ok, report.size, report.entries_checked) == (True, SIZE, SIZE)
    assert verify_log(sqlite_file, audit_signer.verifier(), workers=2).size == SIZE + 20


def test_a_database_in_memory_is_verified_in_this_process(
    audit_signer: CheckpointSigner,
) -> None:
    engine = sa.create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    assert not verify_pool.can_share(engine)
    report = verify_log(engine, audit_signer.verifier(), workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_put_back_after_the_verifier_began_are_not_what_it_reads(
    sqlite_file: Engine,
    audit_signer: CheckpointSigner,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """Found by review: SQLite workers used to begin their reads after the verifier's,
    so a row rewritten when verification began and put back meanwhile passed."""
    helpers.build_log(sqlite_file, audit_signer, SIZE)
    with sqlite_file.begin() as conn:
        row = dict(helpers.row_at(conn, 21))
        helpers.edit_field(conn, 21, rewrite_hash=True)
    real_chunks = audit_verify._Scan._chunks

    def put_back(scan: Any, end: int) -> Any:  # the snapshots are taken: restore the row
        with sqlite_file.begin() as conn:
            conn.execute(
                sa.update(entries)
                .where(entries.c.id == row["id"])
                .values(entry=row["entry"], actor=row["actor"], leaf_hash=row["leaf_hash"])
            )
        return real_chunks(scan, end)

    monkeypatch.setattr(audit_verify._Scan, "_chunks", put_back)
    report = verify_log(sqlite_file, audit_signer.verifier(), workers=workers)
    assert (report.ok, report.first_bad_position) == (False, 21)


_KILLED_VERIFIER = """
import multiprocessing, os, signal, sys
from pathlib import Path
from audit import CheckpointSigner, create_sqlite_engine, generate_signing_key, leaf_scan
from audit import migrate, verify_log, verify_pool
from audit import verify as audit_verify
from tests.integration.audit import helpers

if __name__ == "__main__":
    folder, how = Path(sys.argv[1]), sys.argv[2]
    generate_signing_key(folder / "key", folder / "key.pub")
    signer = CheckpointSigner((folder / "key").read_bytes(), "audit.example.com")
    engine = create_sqlite_engine(folder / "audit.db")
    migrate(engine)
    helpers.build_log(engine, signer, 64)
    leaf_scan.CHUNK, verify_pool.MIN_CHUNKS, audit_verify.PROGRESS_EVERY = 8, 2, 8

    def die(done, total):
        pids = " ".join(str(p.pid) for p in multiprocessing.active_children())
        (folder / "workers").write_text(pids)
        os.kill(os.getpid(), getattr(signal, how))

    verify_log(engine, signer.verifier(), progress=die, workers=2)
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_workers_end_when_the_verifier_is_killed(tmp_path: Path, how: str) -> None:
    """Found by review: pool workers outlived a killed verifier, each holding a read
    transaction open (no WAL checkpoint on SQLite, no vacuum on PostgreSQL)."""
    script = tmp_path / "verifier.py"
    script.write_text(_KILLED_VERIFIER)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    subprocess.run([sys.executable, script, tmp_path, how], env=env, timeout=120, check=False)
    pids = [int(pid) for pid in (tmp_path / "workers").read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "workers outlived the verifier"


def test_an_engine_with_one_connection_verifies_with_workers(
    tmp_path: Path, audit_signer: CheckpointSigner
) -> None:
    """The writers are held off on a connection of their own: the verifier's snapshot
    holds the engine's only one."""
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'audit.db'}", pool_size=1, max_overflow=0, pool_timeout=2
    )
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    report = verify_log(engine, audit_signer.verifier(), workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)
    engine.dispose()


def _one_process_only(engine: Engine, signer: CheckpointSigner) -> None:
    """The report of workers=2 equals that of one process, and it came from one."""
    alone = verify_log(engine, signer.verifier(), workers=1)
    assert alone.ok
    assert verify_log(engine, signer.verifier(), workers=2) == alone


@pytest.mark.postgres
def test_postgresql_is_verified_in_one_process(
    postgres_url: str, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(postgres_url)
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)

    def no_pool(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a pool was started for PostgreSQL")

    monkeypatch.setattr(verify_pool.CheckerPool, "start", no_pool)
    try:
        _one_process_only(engine, audit_signer)
    finally:
        engine.dispose()


def test_workers_on_another_file_than_the_engines_leave_the_log_to_the_verifier(
    tmp_path: Path, audit_signer: CheckpointSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by review: the URL names an honest copy, the engine's `creator` opens the
    tampered file. The workers see they opened another file; the verifier reads alone."""
    real, copy = tmp_path / "audit.db", tmp_path / "copy.db"
    setup = create_sqlite_engine(real)
    migrate(setup)
    helpers.build_log(setup, audit_signer, SIZE)
    setup.dispose()  # the last connection closed checkpoints the WAL into the file
    shutil.copyfile(real, copy)
    with setup.begin() as conn:
        helpers.edit_field(conn, 21, rewrite_hash=True)
    setup.dispose()
    engine = sa.create_engine(
        f"sqlite:///{copy}", creator=lambda: sqlite3.connect(real, check_same_thread=False)
    )
    alone = verify_log(engine, audit_signer.verifier(), workers=1)
    assert (alone.ok, alone.first_bad_position) == (False, 21)
    assert verify_log(engine, audit_signer.verifier(), workers=2) == alone
    assert "not the database file the verifier reads" in caplog.text
    engine.dispose()


@pytest.mark.parametrize("named", ["no such dir/audit.db", "placeholder.db"])
def test_workers_with_no_file_at_the_url_leave_the_log_to_the_verifier(
    tmp_path: Path, audit_signer: CheckpointSigner, caplog: pytest.LogCaptureFixture, named: str
) -> None:
    """An engine that needs more than its URL (here a `creator`): the workers, which
    have only the URL, find no file there (and create none), and the verifier reads the
    log alone."""
    real = tmp_path / "audit.db"
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / named}",
        creator=lambda: sqlite3.connect(real, check_same_thread=False),
    )
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    _one_process_only(engine, audit_signer)
    assert "verifying in one process: a worker could not start" in caplog.text
    assert not (tmp_path / named).exists()
    engine.dispose()


def test_a_shared_cache_database_in_memory_is_verified_in_this_process(
    audit_signer: CheckpointSigner,
) -> None:
    engine = sa.create_engine(
        "sqlite:///file:vaultmem?mode=memory&cache=shared&uri=true",
        connect_args={"check_same_thread": False},
        poolclass=QueuePool,
    )
    keep = engine.connect()  # the shared database lives while one connection is open
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    assert not verify_pool.can_share(engine)
    _one_process_only(engine, audit_signer)
    keep.close()
    engine.dispose()


def test_a_static_pool_on_a_file_verifies_with_workers(
    tmp_path: Path, audit_signer: CheckpointSigner
) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'audit.db'}",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    _one_process_only(engine, audit_signer)
    engine.dispose()


def test_an_engine_whose_reads_hold_the_writer_lock_is_verified_alone(
    tmp_path: Path,
    audit_signer: CheckpointSigner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every transaction begins IMMEDIATE: the verifier's own snapshot holds the lock
    the workers' start needs. After `WRITERS_HELD_TIMEOUT` it reads the log alone."""
    monkeypatch.setattr(verify_pool, "WRITERS_HELD_TIMEOUT", 0.2)
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'audit.db'}", connect_args={"check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    _one_process_only(engine, audit_signer)
    assert "the workers could not begin" in caplog.text
    engine.dispose()
