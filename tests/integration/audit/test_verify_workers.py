"""verify_log with worker processes reading and checking the chunks (`audit.verify_pool`):
the same report as one process gives, honest or tampered, on SQLite files (in both
transaction styles) and on PostgreSQL; whatever keeps the workers from the verifier's
own snapshot leaves the log to the verifier; on PostgreSQL no lock queue or idle
timeout can stall or end a verification. Chunks of 8 leaves, so
a log of 40 uses the pool."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

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
from audit.db import snapshot
from audit.merkle import leaf_hash
from audit.tables import entries
from tests.conftest import new_postgres_database
from tests.integration.audit import helpers

SIZE = 40


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The workers are new interpreters: they read the bounds they are given, not these.
    monkeypatch.setattr(leaf_scan, "CHUNK", 8)
    monkeypatch.setattr(verify_pool, "MIN_CHUNKS", 2)
    monkeypatch.setattr(audit_verify, "PROGRESS_EVERY", 8)


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-explicit-begin",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty audit database the workers can share: a SQLite file, in both
    transaction styles, or a PostgreSQL database."""
    if request.param == "sqlite":
        engine = create_sqlite_engine(tmp_path / "audit.db")
    elif request.param == "sqlite-explicit-begin":
        engine = helpers.explicit_begin_sqlite_engine(tmp_path / "audit.db")
    else:
        engine = sa.create_engine(request.getfixturevalue("postgres_url"))
    migrate(engine)
    yield engine
    engine.dispose()


def _both(engine: Engine, signer: CheckpointSigner, **kwargs: object) -> list[VerifyReport]:
    return [
        verify_log(engine, signer.verifier(), workers=workers, **kwargs)  # type: ignore[arg-type]
        for workers in (1, 2)
    ]


def test_an_honest_log_gets_the_same_report_from_workers(
    shared_db: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers.build_log(shared_db, audit_signer, SIZE)
    from_workers = helpers.chunks_from_workers(monkeypatch)
    alone, pooled = _both(shared_db, audit_signer)
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
    shared_db: Engine,
    audit_signer: CheckpointSigner,
    tamper: Callable[[Connection], None],
) -> None:
    helpers.build_log(shared_db, audit_signer, SIZE)
    with shared_db.begin() as conn:
        tamper(conn)
    alone, pooled = _both(shared_db, audit_signer)
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
    shared_db: Engine, audit_signer: CheckpointSigner, tmp_path: Path
) -> None:
    mac = _with_macs(shared_db, audit_signer, tmp_path)
    alone, pooled = _both(shared_db, audit_signer, mac=mac)
    assert (alone.ok, alone.mac_checked, alone.mac_legacy) == (True, True, 11)
    assert pooled == alone


@pytest.mark.parametrize("tag", [None, b"\x00" * 32], ids=["removed", "forged"])
def test_workers_find_a_bad_mac_where_one_process_does(
    shared_db: Engine, audit_signer: CheckpointSigner, tmp_path: Path, tag: bytes | None
) -> None:
    mac = _with_macs(shared_db, audit_signer, tmp_path)
    with shared_db.begin() as conn:
        # The leaf hash covers the MAC; rewritten too, only the MAC check can tell.
        row = helpers.row_at(conn, 27)
        forged = leaf_hash(row["entry"] + (tag or b""))
        conn.execute(
            sa.update(entries).where(entries.c.id == row["id"]).values(mac=tag, leaf_hash=forged)
        )
    alone, pooled = _both(shared_db, audit_signer, mac=mac)
    assert (alone.ok, alone.first_bad_position) == (False, 27)
    assert pooled == alone


def test_entries_integrated_meanwhile_are_not_read_by_the_workers(
    shared_db: Engine, audit_signer: CheckpointSigner
) -> None:
    """The log grows while the workers read it: they check the size the verifying
    process found (PostgreSQL: in its snapshot; SQLite: up to that size)."""
    integrator = helpers.build_log(shared_db, audit_signer, SIZE)
    grown: list[int] = []

    def grow(done: int, total: int) -> None:
        if not grown:
            with shared_db.begin() as conn:
                append_in(conn, [helpers.make_entry(n) for n in range(SIZE, SIZE + 20)])
            integrator.integrate()
            grown.append(done)

    report = verify_log(shared_db, audit_signer.verifier(), progress=grow, workers=2)
    assert grown
    assert (report.ok, report.size, report.entries_checked) == (True, SIZE, SIZE)
    assert verify_log(shared_db, audit_signer.verifier(), workers=2).size == SIZE + 20


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
    shared_db: Engine,
    audit_signer: CheckpointSigner,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """Found by review: SQLite workers used to begin their reads after the verifier's,
    so a row rewritten when verification began and put back meanwhile passed."""
    helpers.build_log(shared_db, audit_signer, SIZE)
    with shared_db.begin() as conn:
        row = dict(helpers.row_at(conn, 21))
        helpers.edit_field(conn, 21, rewrite_hash=True)
    real_chunks = audit_verify._Scan._chunks

    def put_back(scan: Any, end: int) -> Any:  # the snapshots are taken: restore the row
        with shared_db.begin() as conn:
            conn.execute(
                sa.update(entries)
                .where(entries.c.id == row["id"])
                .values(entry=row["entry"], actor=row["actor"], leaf_hash=row["leaf_hash"])
            )
        return real_chunks(scan, end)

    monkeypatch.setattr(audit_verify._Scan, "_chunks", put_back)
    report = verify_log(shared_db, audit_signer.verifier(), workers=workers)
    assert (report.ok, report.first_bad_position) == (False, 21)


_KILLED_VERIFIER = """
import multiprocessing, os, signal, sys
from pathlib import Path
from audit import CheckpointSigner, create_sqlite_engine, generate_signing_key, leaf_scan
from audit import migrate, verify_log, verify_pool
from audit import verify as audit_verify
from tests.conftest import new_postgres_database
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


def _bad_at_21_either_way(engine: Engine, signer: CheckpointSigner) -> None:
    """One process finds leaf 21 bad, and workers=2 gives the very same report."""
    alone = verify_log(engine, signer.verifier(), workers=1)
    assert (alone.ok, alone.first_bad_position) == (False, 21)
    assert verify_log(engine, signer.verifier(), workers=2) == alone


def _one_process_only(engine: Engine, signer: CheckpointSigner) -> None:
    """The report of workers=2 equals that of one process, and it came from one."""
    alone = verify_log(engine, signer.verifier(), workers=1)
    assert alone.ok
    assert verify_log(engine, signer.verifier(), workers=2) == alone


@pytest.fixture
def postgresql(postgres_url: str, audit_signer: CheckpointSigner) -> Iterator[Engine]:
    """A PostgreSQL audit database holding an honest log of SIZE entries."""
    engine = sa.create_engine(postgres_url)
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    yield engine
    engine.dispose()


_LOCKED = """
SELECT l.pid, c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.mode = 'AccessShareLock' AND l.granted AND l.pid <> pg_backend_pid()
"""
_INDEXES = """
SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = CAST(:t AS regclass)
"""


def _relations(conn: Connection, tables: tuple[sa.Table, ...]) -> set[str]:
    """The tables and every index on them."""
    names = {table.name for table in tables}
    for table in tables:
        names |= set(conn.execute(sa.text(_INDEXES), {"t": table.name}).scalars())
    return names


@pytest.mark.postgres
def test_postgresql_verifier_and_workers_hold_every_lock_before_reading(
    postgresql: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the workers read, the verifier holds ACCESS SHARE on its five tables and
    all their indexes, and each worker on the two it reads: no later read can wait in a
    lock queue behind a schema change, where the pipe would close a cycle."""
    from_workers = helpers.chunks_from_workers(monkeypatch)
    held: list[dict[int, set[str]]] = []

    def look(done: int, total: int) -> None:
        if not held:
            with postgresql.connect() as conn:
                found: dict[int, set[str]] = {}
                for pid, name in conn.execute(sa.text(_LOCKED)):
                    found.setdefault(pid, set()).add(name)
                held.append(found)

    report = verify_log(postgresql, audit_signer.verifier(), progress=look, workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)
    assert from_workers == [0, 8, 16, 24, 32]
    with postgresql.connect() as conn:
        verifier_needs = _relations(conn, verify_pool.VERIFIER_READS)
        worker_needs = _relations(conn, verify_pool.WORKER_READS)
    assert len(verifier_needs) > 10 and worker_needs < verifier_needs
    (backends,) = held
    assert len(backends) == 3, backends  # the verifier and two workers
    assert sum(verifier_needs <= names for names in backends.values()) == 1
    assert all(worker_needs <= names for names in backends.values())


def _queue_exclusive_lock(
    url: str, tables: tuple[sa.Table, ...]
) -> tuple[threading.Thread, list[str]]:
    """A session asking for ACCESS EXCLUSIVE on `tables`, in that order (a migration
    would), in a thread; returns once the request waits in the lock queue. The thread
    ends when the lock is granted, or after 60 s."""
    outcome: list[str] = []
    names = ", ".join(table.name for table in tables)

    def take() -> None:
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL application_name = 'exclusive'")
                conn.exec_driver_sql("SET LOCAL lock_timeout = '60s'")
                conn.exec_driver_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
                outcome.append("granted")
        except sa.exc.DBAPIError as exc:
            outcome.append(type(exc.orig).__name__)
        finally:
            engine.dispose()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'exclusive'"
        " AND wait_event_type = 'Lock' AND datname = current_database()"
    )
    engine = sa.create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while not conn.execute(waiting).scalar_one() and time.monotonic() < deadline:
            time.sleep(0.02)
            conn.rollback()
    engine.dispose()
    assert not outcome, f"the exclusive lock was not queued: {outcome}"
    return thread, outcome


@pytest.mark.postgres
def test_postgresql_schema_change_queued_during_the_scan_waits_for_the_verification(
    postgresql: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review (issue 21): a lock request queued behind the verifier's reads
    would make the verifier's later reads wait on it, and it on the workers, and the
    workers on the verifier through the pipe. Now the verification ends, and then the
    schema change has its lock."""
    monkeypatch.setattr(verify_pool, "ANSWER_TIMEOUT", 30.0)  # a hang fails, not hangs
    from_workers = helpers.chunks_from_workers(monkeypatch)
    queued: list[tuple[threading.Thread, list[str]]] = []

    def queue(done: int, total: int) -> None:
        if not queued:
            # The tree state first: granted at once unless the verifier holds it, then
            # a wait on the tables the workers read.
            tables = tuple(reversed(verify_pool.VERIFIER_READS))
            queued.append(_queue_exclusive_lock(postgresql.url.render_as_string(False), tables))

    report = verify_log(postgresql, audit_signer.verifier(), progress=queue, workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)
    assert from_workers == [0, 8, 16, 24, 32]
    ((thread, outcome),) = queued
    thread.join(60)
    assert outcome == ["granted"]


@pytest.mark.postgres
def test_postgresql_workers_that_cannot_lock_in_time_leave_the_log_to_the_verifier(
    postgresql: Engine,
    audit_signer: CheckpointSigner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A schema change queued after the verifier locked its tables and before the
    workers lock theirs: the workers would wait behind it, and it behind the verifier,
    which waits for the workers. They give up after `LOCK_TIMEOUT`, and the verifier
    reads the log alone; the schema change gets its lock after."""
    monkeypatch.setattr(verify_pool, "LOCK_TIMEOUT", 0.3)
    monkeypatch.setattr(verify_pool, "ANSWER_TIMEOUT", 30.0)
    from_workers = helpers.chunks_from_workers(monkeypatch)
    queued: list[tuple[threading.Thread, list[str]]] = []
    real_begin = verify_pool.CheckerPool.begin

    def begin_late(pool: verify_pool.CheckerPool, identity: tuple[Any, ...]) -> None:
        # The entries first: the verifier holds them, so the request waits there.
        tables = verify_pool.VERIFIER_READS
        queued.append(_queue_exclusive_lock(postgresql.url.render_as_string(False), tables))
        real_begin(pool, identity)

    monkeypatch.setattr(verify_pool.CheckerPool, "begin", begin_late)
    report = verify_log(postgresql, audit_signer.verifier(), workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)
    assert from_workers == []
    assert "could not be locked for reading in 0.3 s" in caplog.text
    ((thread, outcome),) = queued
    thread.join(60)
    assert outcome == ["granted"]


def _idle_timeout(engine: Engine, value: str) -> None:
    """The database's `idle_in_transaction_session_timeout`, for sessions begun after."""
    database = engine.url.database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(
            f"ALTER DATABASE \"{database}\" SET idle_in_transaction_session_timeout = '{value}'"
        )
    engine.dispose()  # new sessions take the setting


@pytest.mark.postgres
def test_postgresql_verifier_idle_while_the_workers_read_is_not_ended_by_the_server(
    postgresql: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review (issue 21): the verifier's transaction waits idle while the
    workers read, and a server's `idle_in_transaction_session_timeout` ended it. The
    scan here lasts 2.5 s, the timeout is 2 s; the verifier is idle about 0.5 s at most."""
    _idle_timeout(postgresql, "2s")
    from_workers = helpers.chunks_from_workers(monkeypatch)

    def dawdle(done: int, total: int) -> None:
        time.sleep(0.5)

    report = verify_log(postgresql, audit_signer.verifier(), progress=dawdle, workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)
    assert from_workers == [0, 8, 16, 24, 32]


_STOPPED_VERIFIER = """
import os, signal, sys
import sqlalchemy as sa
from audit import CheckpointSigner, leaf_scan, verify_log, verify_pool
from audit import verify as audit_verify

if __name__ == "__main__":
    url, key = sys.argv[1], sys.argv[2]
    signer = CheckpointSigner(open(key, "rb").read(), "audit.example.com")
    leaf_scan.CHUNK, verify_pool.MIN_CHUNKS, audit_verify.PROGRESS_EVERY = 8, 2, 8
    engine = sa.create_engine(url)

    def stop(done, total):
        os.kill(os.getpid(), signal.SIGSTOP)

    verify_log(engine, signer.verifier(), progress=stop, workers=2)
"""

_IN_TRANSACTION = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
)


def _in_transaction(engine: Engine, wanted: Callable[[int], bool], within: float) -> bool:
    """Whether the count of other sessions idle in a transaction is `wanted`, asked
    every 50 ms for `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        with engine.connect() as conn:
            if wanted(conn.execute(_IN_TRANSACTION).scalar_one()):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "T"


@pytest.mark.postgres
def test_postgresql_stopped_verifier_leaves_its_transactions_to_the_servers_timeout(
    postgresql: Engine, audit_signer: CheckpointSigner, tmp_path: Path
) -> None:
    """Found by review: the idle timeout used to be switched off for the verification's
    transactions, so a verifier stopped (not killed) mid-scan held its locks, and the
    workers theirs, for good: a migration queued behind them, and every writer behind
    it. Now the server ends them as it would any idle transaction."""
    _idle_timeout(postgresql, "3s")
    key = tmp_path / "audit.key"  # where the `audit_signer` fixture keeps it
    script = tmp_path / "verifier.py"
    script.write_text(_STOPPED_VERIFIER)
    repo = Path(__file__).resolve().parents[3]
    url = postgresql.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    verifier = subprocess.Popen([sys.executable, script, url, key], env=env)
    try:
        deadline = time.monotonic() + 60
        while not _stopped(verifier.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _stopped(verifier.pid), "the verifier never reached its first chunk"
        # It and its two workers wait in their transactions (the workers finish the
        # chunks they were given first) ...
        assert _in_transaction(postgresql, lambda count: count == 3, within=2.5)
        # ... until the server's timeout ends them.
        assert _in_transaction(postgresql, lambda count: count == 0, within=15)
    finally:
        verifier.kill()
        verifier.wait()


@pytest.mark.postgres
def test_postgresql_lock_the_verifier_could_not_take_first_ends_it_with_an_error(
    postgresql: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: an index created after the verifier locked its tables' indexes
    and before the workers locked theirs, then rebuilt (REINDEX queues behind the
    workers): the verifier's next read of the entries waited behind the REINDEX for
    good. Its waits are bounded once the workers hold locks: the verification fails
    with an error, the REINDEX goes through, nothing hangs."""
    monkeypatch.setattr(verify_pool, "LOCK_TIMEOUT", 0.5)
    monkeypatch.setattr(verify_pool, "ANSWER_TIMEOUT", 30.0)
    url = postgresql.url.render_as_string(hide_password=False)
    side = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    rebuilt: list[str] = []
    real_begin = verify_pool.CheckerPool.begin

    def reindex() -> None:
        try:
            with side.connect() as conn:
                conn.exec_driver_sql("SET lock_timeout = '30s'")
                conn.exec_driver_sql("REINDEX INDEX ix_review_time")
            rebuilt.append("done")
        except sa.exc.DBAPIError as exc:
            rebuilt.append(type(exc.orig).__name__)

    def begin_after_an_index(pool: verify_pool.CheckerPool, identity: tuple[Any, ...]) -> None:
        with side.connect() as conn:  # a migration adding an index: SHARE, granted
            conn.exec_driver_sql("CREATE INDEX ix_review_time ON audit_entries (time_us)")
        real_begin(pool, identity)  # the workers lock the new index, the verifier has not
        threading.Thread(target=reindex, daemon=True).start()
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REINDEX%'"
            " AND wait_event_type = 'Lock' AND datname = current_database()"
        )
        deadline = time.monotonic() + 30
        with side.connect() as conn:
            while not conn.execute(waiting).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.02)

    monkeypatch.setattr(verify_pool.CheckerPool, "begin", begin_after_an_index)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
        verify_log(postgresql, audit_signer.verifier(), workers=2)
    assert time.monotonic() - started < 20
    deadline = time.monotonic() + 30
    while not rebuilt and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rebuilt == ["done"]
    side.dispose()
    # Nothing is left behind: the log verifies, with workers.
    monkeypatch.setattr(verify_pool.CheckerPool, "begin", real_begin)
    assert verify_log(postgresql, audit_signer.verifier(), workers=2).ok


@pytest.mark.postgres
def test_postgresql_workers_under_another_search_path_leave_the_log_to_the_verifier(
    postgresql: Engine, audit_signer: CheckpointSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by review (a false OK): the engine sets its `search_path` outside its URL,
    to a schema holding a tampered copy of the log; the workers, which have only the
    URL, read the honest one in `public`, in the same database and snapshot. They now
    see that the tables are not the verifier's, and the verifier reads alone."""
    with postgresql.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA tenant")
        for table in (*verify_pool.VERIFIER_READS, sa.table("audit_alembic_version")):
            conn.exec_driver_sql(
                f"CREATE TABLE tenant.{table.name} (LIKE public.{table.name} INCLUDING ALL)"
            )
            conn.exec_driver_sql(
                f"INSERT INTO tenant.{table.name} SELECT * FROM public.{table.name}"
            )
    url = postgresql.url.render_as_string(hide_password=False)
    tenant = sa.create_engine(url, connect_args={"options": "-c search_path=tenant"})
    try:
        with tenant.begin() as conn:
            helpers.edit_field(conn, 21, rewrite_hash=True)
        _bad_at_21_either_way(tenant, audit_signer)
    finally:
        tenant.dispose()
    assert "not the tables the verifier reads" in caplog.text


@pytest.mark.postgres
def test_postgresql_snapshot_that_cannot_be_shared_leaves_the_log_to_the_verifier(
    postgresql: Engine,
    audit_signer: CheckpointSigner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The export fails (here: a function the server does not have), which aborts the
    verifier's transaction: it begins another and reads alone."""
    monkeypatch.setattr(verify_pool, "_EXPORT", "SELECT no_such_export()")
    from_workers = helpers.chunks_from_workers(monkeypatch)
    report = verify_log(postgresql, audit_signer.verifier(), workers=2)
    assert (report.ok, report.entries_checked) == (True, SIZE)
    assert from_workers == []
    assert "the snapshot could not be shared (UndefinedFunction)" in caplog.text


@pytest.mark.postgres
def test_postgresql_workers_in_another_database_leave_the_log_to_the_verifier(
    postgresql: Engine, audit_signer: CheckpointSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """The URL names an honest copy, the engine's `creator` opens the tampered log: the
    workers, which have only the URL, cannot import the verifier's snapshot there."""
    with new_postgres_database() as copy_url:
        copy = sa.create_engine(copy_url)
        migrate(copy)
        helpers.build_log(copy, audit_signer, SIZE)
        copy.dispose()
        with postgresql.begin() as conn:
            helpers.edit_field(conn, 21, rewrite_hash=True)
        real = postgresql.url.set(drivername="postgresql").render_as_string(False)
        engine = sa.create_engine(copy_url, creator=lambda: psycopg.connect(real))
        try:
            _bad_at_21_either_way(engine, audit_signer)
        finally:
            engine.dispose()
    assert "not the snapshot the verifier reads" in caplog.text


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
    _bad_at_21_either_way(engine, audit_signer)
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


# Costs that make a scan, a sort and parallel workers look cheaper than the leaf-index
# index: what the planner concluded, on a million entries, from a table with no
# statistics (the test's table is too small for that to happen by itself).
_MISLED = (
    "SET LOCAL random_page_cost = 1000",
    "SET LOCAL parallel_setup_cost = 0",
    "SET LOCAL parallel_tuple_cost = 0",
    "SET LOCAL min_parallel_table_scan_size = 0",
)


@pytest.mark.postgres
@pytest.mark.parametrize("with_index", [True, False], ids=["index", "merkle"])
def test_postgresql_leaves_are_read_in_index_order_whatever_the_estimates(
    postgresql: Engine, with_index: bool
) -> None:
    """A table just bulk-loaded or restored has no statistics: the chunk query was planned
    as a bitmap scan, a sort spilled to disk and two parallel workers, 3x the server's
    time. The leaf reader's transaction reads the leaves in the index's order."""
    with snapshot(postgresql) as conn:
        for setting in _MISLED:
            conn.exec_driver_sql(setting)
        reader = leaf_scan.LeafReader(conn, with_index=with_index)
        sql, _ = reader._leaves
        parameters = {"low": 0, "high": leaf_scan.CHUNK}
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, parameters))
        reader.close()
    assert "Index Scan using ix_audit_entries_leaf_index" in plan, plan
    assert "Sort" not in plan and "Gather" not in plan, plan
