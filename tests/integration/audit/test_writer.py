"""Appending: in the caller's transaction, and by group commit from many threads."""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit import (
    AuditUnavailableError,
    CheckpointSigner,
    GroupCommitWriter,
    Integrator,
    append_encoded_in,
    append_in,
    create_sqlite_engine,
    encode,
    iter_query,
    verify_log,
)
from audit.append import ROW_COLUMNS
from audit.tables import entries, entry_subjects
from tests.integration.audit.helpers import ORIGIN, make_entry

THREADS = 12
PER_THREAD = 20


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one())


def test_entries_commit_and_roll_back_with_the_callers_change(audit_engine: Engine) -> None:
    changes = sa.Table("test_changes", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    changes.create(audit_engine)

    def change_that_fails() -> None:
        with audit_engine.begin() as conn:
            conn.execute(sa.insert(changes).values(id=1))
            append_in(conn, [make_entry(1)])
            raise RuntimeError("the change fails after its audit entry was written")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert _count(audit_engine) == 0
    with audit_engine.begin() as conn:
        conn.execute(sa.insert(changes).values(id=2))
        ids = append_in(conn, [make_entry(2), make_entry(3, subject_ids=("a", "b", "a"))])
    assert len(set(ids)) == 2
    assert _count(audit_engine) == 2
    with audit_engine.connect() as conn:
        links = conn.execute(
            sa.select(entry_subjects.c.subject_id).where(entry_subjects.c.entry_id == ids[1])
        ).scalars()
        assert sorted(links) == ["a", "b"]


def test_entries_encoded_elsewhere_are_stored_as_append_in_stores_them(
    audit_engine: Engine,
) -> None:
    """`encode` in one place (another process, for the retention job), then
    `append_encoded_in`: the same rows and subject links as `append_in`."""
    batch = [make_entry(1), make_entry(2, subject_ids=("a", "b", "a"))]
    encoded = [pickle.loads(pickle.dumps(encode(entry))) for entry in batch]
    with audit_engine.begin() as conn:
        direct = append_in(conn, batch)
        ahead = append_encoded_in(conn, encoded)
    columns = [entries.c[name] for name in ROW_COLUMNS]
    with audit_engine.connect() as conn:
        stored = {
            entry_id: tuple(rest)
            for entry_id, *rest in conn.execute(sa.select(entries.c.id, *columns))
        }
        links = Counter(
            conn.execute(sa.select(entry_subjects.c.entry_id, entry_subjects.c.subject_id))
        )
    for mine, theirs in zip(direct, ahead, strict=True):
        assert stored[mine] == stored[theirs]
        assert sorted(s for (e, s) in links if e == mine) == sorted(
            s for (e, s) in links if e == theirs
        )
    assert sorted(s for (e, s) in links if e == ahead[1]) == ["a", "b"]
    assert set(links.values()) == {1}


def test_identical_entries_in_one_batch_get_distinct_ids(audit_engine: Engine) -> None:
    with audit_engine.begin() as conn:
        ids = append_in(conn, [make_entry(1)] * 5)
    assert len(set(ids)) == 5


def test_group_commit_from_many_threads(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    writer = GroupCommitWriter(audit_engine, max_batch=64)
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        start.wait()
        for n in range(PER_THREAD):
            try:
                ids.append(writer.append(make_entry(thread * 1000 + n), timeout=60))
            except AuditUnavailableError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert errors == []
    assert len(set(ids)) == THREADS * PER_THREAD
    assert _count(audit_engine) == THREADS * PER_THREAD
    requests = Counter(logged.entry.request_id for logged in iter_query(audit_engine))
    assert set(requests.values()) == {1}
    assert len(requests) == THREADS * PER_THREAD
    Integrator(audit_engine, audit_signer, ORIGIN).integrate()
    report = verify_log(audit_engine, audit_signer.verifier())
    assert report.ok
    assert report.size == THREADS * PER_THREAD


def _append_from_threads(writer: GroupCommitWriter, count: int) -> list[BaseException | int]:
    outcomes: list[BaseException | int] = []
    start = threading.Barrier(count)

    def work(n: int) -> None:
        start.wait()
        try:
            outcomes.append(writer.append(make_entry(n), timeout=60))
        except AuditUnavailableError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_every_waiter_fails_closed_when_the_table_is_gone(
    sqlite_or_pg_engine: Engine,
) -> None:
    with sqlite_or_pg_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_entry_subjects"))
    with GroupCommitWriter(sqlite_or_pg_engine, max_batch=4) as writer:
        outcomes = _append_from_threads(writer, 10)
    assert len(outcomes) == 10
    assert all(isinstance(outcome, AuditUnavailableError) for outcome in outcomes)
    assert _count(sqlite_or_pg_engine) == 0  # each failed batch rolled back whole


def test_every_waiter_fails_closed_on_an_unwritable_database(tmp_path: Path) -> None:
    engine = create_sqlite_engine(tmp_path / "missing-directory" / "audit.db")
    with GroupCommitWriter(engine) as writer:
        outcomes = _append_from_threads(writer, 6)
    assert len(outcomes) == 6
    for outcome in outcomes:
        assert isinstance(outcome, AuditUnavailableError)
        assert "req-" not in str(outcome)
    engine.dispose()


def test_a_closed_writer_refuses_appends(sqlite_or_pg_engine: Engine) -> None:
    writer = GroupCommitWriter(sqlite_or_pg_engine)
    entry_id = writer.append(make_entry(1))
    writer.close()
    assert entry_id >= 1
    with pytest.raises(AuditUnavailableError):
        writer.append(make_entry(2))


def test_concurrent_appends_share_commits(audit_engine: Engine) -> None:
    commits: list[int] = []
    sa.event.listen(audit_engine, "commit", lambda _conn: commits.append(1))
    writer = GroupCommitWriter(audit_engine, max_batch=1000)
    outcomes = _append_from_threads(writer, 40)
    writer.close()
    assert all(isinstance(outcome, int) for outcome in outcomes)
    assert len(set(outcomes)) == 40
    assert _count(audit_engine) == 40
    # While one batch commits the next one gathers: far fewer commits than entries.
    assert len(commits) < 40


def test_a_submitted_entry_calls_back_once_it_is_durable(audit_engine: Engine) -> None:
    """`submit` does not wait; `when_done` runs after the commit, never before, and a
    callback added after that runs at once. Each entry gets the id `append` would give."""
    seen: list[tuple[str, int]] = []
    with GroupCommitWriter(audit_engine) as writer:
        gate = threading.Event()
        pending = [writer.submit(make_entry(n)) for n in range(5)]
        for n, entry in enumerate(pending):
            entry.when_done(lambda n=n: (gate.wait(5), seen.append(("cb", n))))
        gate.set()
        ids = [entry.wait(5) for entry in pending]
        assert all(entry.done() for entry in pending)
        late: list[int] = []
        pending[0].when_done(lambda: late.append(_count(audit_engine)))
    assert late == [5]  # called at once, and the entries were committed by then
    assert sorted(n for _, n in seen) == list(range(5))
    assert len(set(ids)) == 5
    assert [entry.result() for entry in pending] == ids
    with audit_engine.connect() as conn:
        stored = set(conn.execute(sa.select(entries.c.id)).scalars())
    assert stored == set(ids)


def test_a_submitted_entry_whose_batch_fails_reports_it(sqlite_or_pg_engine: Engine) -> None:
    with sqlite_or_pg_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_entry_subjects"))
    called = threading.Event()
    with GroupCommitWriter(sqlite_or_pg_engine) as writer:
        pending = writer.submit(make_entry(1))
        pending.when_done(called.set)
        assert called.wait(10)
        with pytest.raises(AuditUnavailableError):
            pending.result()
        with pytest.raises(AuditUnavailableError):
            pending.wait(1)
    with pytest.raises(AuditUnavailableError):
        writer.submit(make_entry(2))  # closed


def test_a_failing_callback_does_not_stop_the_writer(audit_engine: Engine) -> None:
    def broken() -> None:
        raise RuntimeError("a waiter's bug")

    with GroupCommitWriter(audit_engine) as writer:
        writer.submit(make_entry(1)).when_done(broken)
        assert writer.append(make_entry(2)) >= 1
    assert _count(audit_engine) == 2
