"""SQLite's WAL is checkpointed by each serving process from a thread of its own, not by
the commit of whichever call finds the WAL at 1,000 pages: that commit's caller, and every
caller queued behind it for the writer lock, used to wait while the checkpoint copied
pages into the database file and synced both files (the vault's p99 on SQLite).

Read from the files themselves: the wal-index's count of frames in the log and of those
already copied into the database file."""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path

import pytest

from tests.data import ADA
from tests.integration.harness import running_vault, settings_for
from vault.background import PeriodicTask
from vault.storage.db import (
    SQLITE_AUTOCHECKPOINT_PAGES,
    SQLITE_BACKSTOP_PAGES,
    Database,
    create_engine,
)

ROW = 3000  # bytes: about one 4 KiB page per row


def _database(path: Path, **engine: int) -> Database:
    db = Database(create_engine(f"sqlite:///{path}", pool_size=2, **engine))
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    return db


def _fill(db: Database, pages: int) -> None:
    for _ in range(pages // 50):
        with db.write() as conn:
            for _ in range(50):
                conn.exec_driver_sql("INSERT INTO t (body) VALUES (?)", (os.urandom(ROW),))


def _autocheckpoint(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def _not_yet_copied(path: Path) -> int:
    """Frames in the WAL not yet copied into the database file: mxFrame less nBackfill,
    read from the wal-index (the -shm file, native byte order; sqlite.org/walformat.html:
    mxFrame at offset 16 of the header, nBackfill at offset 96), so reading it copies
    nothing."""
    index = Path(f"{path}-shm").read_bytes()
    (frames,) = struct.unpack_from("=I", index, 16)
    (copied,) = struct.unpack_from("=I", index, 96)
    return int(frames) - int(copied)


def test_an_engine_keeps_sqlites_threshold_unless_told(tmp_path: Path) -> None:
    plain = _database(tmp_path / "plain.db")
    backstop = _database(tmp_path / "backstop.db", wal_autocheckpoint=SQLITE_BACKSTOP_PAGES)
    try:
        assert _autocheckpoint(plain) == SQLITE_AUTOCHECKPOINT_PAGES
        assert _autocheckpoint(backstop) == SQLITE_BACKSTOP_PAGES
    finally:
        plain.dispose()
        backstop.dispose()


def test_with_the_backstop_commits_leave_the_copy_to_checkpoint_wal(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    db = _database(path, wal_autocheckpoint=SQLITE_BACKSTOP_PAGES)
    try:
        # Past SQLite's 1,000 pages, no commit has checkpointed (it would have copied
        # every frame but the ones after it).
        _fill(db, 1500)
        assert _not_yet_copied(path) > SQLITE_AUTOCHECKPOINT_PAGES
        assert db.checkpoint_wal() is False  # nothing to run again at once
        assert _not_yet_copied(path) == 0
    finally:
        db.dispose()


def test_without_it_a_commit_checkpoints_as_sqlite_does(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    db = _database(path)
    try:
        _fill(db, 1500)
        assert _not_yet_copied(path) < SQLITE_AUTOCHECKPOINT_PAGES
    finally:
        db.dispose()


@pytest.mark.postgres
def test_checkpoint_wal_is_nothing_on_postgresql(postgres_url: str) -> None:
    db = Database(create_engine(postgres_url, pool_size=1))
    try:
        assert db.checkpoint_wal() is False
    finally:
        db.dispose()


def _task(vault_app: object, name: str) -> PeriodicTask | None:
    for task in vault_app.tasks:  # type: ignore[attr-defined]
        if isinstance(task, PeriodicTask) and task.name == name:
            return task
    return None


def test_a_serving_vault_checkpoints_in_the_background(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", sqlite_checkpoint_interval_seconds=0.05)
    with running_vault(settings) as vault:
        assert vault.app.wal_checkpoint_interval == 0.05
        assert _task(vault.app, "wal-checkpoint") is not None
        assert _autocheckpoint(vault.app.db) == SQLITE_BACKSTOP_PAGES
        writer = vault.client()
        writer.batch_create([ADA] * 200)
        database = settings.data_dir / "vault.db"
        deadline = time.monotonic() + 10
        while _not_yet_copied(database) > 0:
            if time.monotonic() > deadline:
                pytest.fail("the background checkpoint did not copy the WAL")
            time.sleep(0.05)


def test_an_interval_of_zero_leaves_the_checkpoint_to_sqlite(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", sqlite_checkpoint_interval_seconds=0)
    with running_vault(settings) as vault:
        assert vault.app.wal_checkpoint_interval is None
        assert _task(vault.app, "wal-checkpoint") is None
        assert _autocheckpoint(vault.app.db) == SQLITE_AUTOCHECKPOINT_PAGES


@pytest.mark.postgres
def test_postgresql_has_no_checkpoint_task(tmp_path: Path, migrated_postgres_url: str) -> None:
    with running_vault(settings_for(tmp_path / "data", migrated_postgres_url)) as vault:
        assert vault.app.wal_checkpoint_interval is None
        assert _task(vault.app, "wal-checkpoint") is None


@pytest.mark.parametrize("checkpointer", ["this process", "another worker"])
def test_a_scrub_waits_out_a_running_checkpoint(tmp_path: Path, checkpointer: str) -> None:
    # SQLite answers a second checkpointer busy at once, whatever its busy timeout: a
    # scrub after an erasure that met a background checkpoint used to give up at once,
    # leaving shredded pages in the -wal file until the next retry. A log of some
    # thousands of pages keeps the background checkpoint busy while the scrub starts.
    path = tmp_path / "vault.db"
    db = _database(path, wal_autocheckpoint=SQLITE_BACKSTOP_PAGES)
    other = db if checkpointer == "this process" else Database(create_engine(f"sqlite:///{path}"))
    try:
        for _ in range(3):
            _fill(db, 4000)
            running = threading.Thread(target=other.checkpoint_wal)
            running.start()
            time.sleep(0.005)
            scrubbed = db.scrub_wal(wait_seconds=5.0)
            running.join()
            assert scrubbed
            assert (tmp_path / "vault.db-wal").stat().st_size == 0
    finally:
        db.dispose()
        other.dispose()
