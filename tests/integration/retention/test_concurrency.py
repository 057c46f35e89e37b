"""Several runners at once: exactly one holds the runner lock, and even without it
SKIP LOCKED keeps every subject noticed and anonymized exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.harness import RunningVault
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    audit_actions_per_subject,
    customer,
    retention_vault,
    scalar,
    verify_audit_log,
)
from vault.records.cipher import RecordCipher
from vault.retention.anonymizer import Anonymizer
from vault.retention.job import RetentionJob
from vault.retention.locking import RunnerLock, runner_lock_for
from vault.retention.report import Outcome, RetentionReport
from vault.retention.rules import RULES_FILE, RetentionRules
from vault.retention.scheduler import RetentionScheduler

NOTICE_AT = timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1)
PAST_DEADLINE = timedelta(days=NOTICE_DAYS + 1)


class _NoLock:
    """Lets every runner in: only the database keeps them apart."""

    @contextmanager
    def hold(self) -> Iterator[bool]:
        yield True


def _job(rv: RunningVault, clock: TestClock, lock: RunnerLock, batch_size: int) -> RetentionJob:
    """A second, independent job over the same database (as on another replica)."""
    app = rv.app
    return RetentionJob(
        db=app.db,
        rules=RetentionRules.from_file(app.settings.policies_dir / RULES_FILE),
        anonymizer=Anonymizer(
            RecordCipher(app.keyring, app.dictionary.index_forms), app.dictionary
        ),
        clock=clock,
        lock=lock,
        batch_size=batch_size,
    )


def _race(jobs: list[RetentionJob]) -> list[RetentionReport]:
    start = threading.Barrier(len(jobs))
    reports: list[RetentionReport | BaseException] = [RuntimeError("did not run")] * len(jobs)

    def work(index: int) -> None:
        start.wait()
        try:
            reports[index] = jobs[index].run()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            reports[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(isinstance(r, RetentionReport) for r in reports), reports
    return reports  # type: ignore[return-value]


def _populate(rv: RunningVault, count: int) -> list[str]:
    service = rv.client()
    ids: list[str] = []
    for start in range(0, count, 1000):
        batch = [customer(n) for n in range(start, min(start + 1000, count))]
        ids += [r.subject_id for r in service.batch_create(batch).results]
    return ids


@pytest.mark.postgres
def test_racing_runners_without_the_lock_take_each_subject_once(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", postgres_url, clock) as rv:
        ids = _populate(rv, 1500)
        jobs = [_job(rv, clock, _NoLock(), batch_size=40) for _ in range(3)]
        clock.advance(NOTICE_AT)
        noticed = _race(jobs)
        assert sum(r.count(Outcome.NOTIFIED) for r in noticed) == len(ids)
        clock.advance(PAST_DEADLINE)
        done = _race(jobs)
        per_runner = [r.count(Outcome.ANONYMIZED) for r in done]
        assert sum(per_runner) == len(ids)
        assert sum(1 for n in per_runner if n) >= 2  # they really ran side by side

        engine = rv.app.db.engine
        assert audit_actions_per_subject(engine, "NotifySubject") == dict.fromkeys(ids, 1)
        assert audit_actions_per_subject(engine, "AnonymizeSubject") == dict.fromkeys(ids, 1)
        assert scalar(engine, "SELECT count(*) FROM anonymized_records") == len(ids)
        assert scalar(engine, "SELECT count(*) FROM retention_notices") == len(ids)
        verify_audit_log(rv)


def test_the_runner_lock_admits_one_runner(tmp_path: Path, database_url: str | None) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        _populate(rv, 10)
        clock.advance(NOTICE_AT)
        other = runner_lock_for(rv.app.db.engine, rv.settings.data_dir)
        with other.hold() as held:
            assert held
            report = rv.app.retention_job.run()
            assert report.skipped and report.count(Outcome.NOTIFIED) == 0
            with other.hold() as again:
                assert not again
        assert rv.app.retention_job.run().count(Outcome.NOTIFIED) == 10


def _wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.postgres
def test_two_schedulers_against_one_postgres_anonymize_each_subject_once(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", postgres_url, clock) as rv:
        ids = _populate(rv, 1200)
        engine = rv.app.db.engine
        schedulers = [
            RetentionScheduler(
                _job(rv, clock, runner_lock_for(engine, rv.settings.data_dir), batch_size=50),
                "0 * * * *",
                clock,
                poll_seconds=0.02,
            )
            for _ in range(2)
        ]
        for scheduler in schedulers:
            scheduler.start()
        try:

            def count(state: str) -> int:
                sql = "SELECT count(*) FROM subjects WHERE state = :s"
                return int(scalar(engine, sql, s=state))

            clock.advance(NOTICE_AT)
            _wait_for(lambda: count("pending_anonymization") == len(ids))
            clock.advance(PAST_DEADLINE)
            _wait_for(lambda: count("anonymized") == len(ids))
            _wait_for(lambda: scalar(engine, "SELECT count(*) FROM retention_runs") >= 2)
        finally:
            for scheduler in schedulers:
                scheduler.stop()
        assert audit_actions_per_subject(engine, "AnonymizeSubject") == dict.fromkeys(ids, 1)
        assert audit_actions_per_subject(engine, "NotifySubject") == dict.fromkeys(ids, 1)
        verify_audit_log(rv)
