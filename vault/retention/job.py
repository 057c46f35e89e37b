"""The retention job: notices for dormant subjects, then anonymization of the due ones.

A run works in batches, each one transaction holding the state changes and one audit
entry per subject, so a crash at any point loses at most the batch in flight, which
the next run takes again. Runs are idempotent: a rerun finds nothing left to do. Time
comes from the injected clock; a run uses the time it started at for every decision.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from vault import telemetry
from vault.clock import Clock, to_micros
from vault.crypto import new_random_id
from vault.retention import pipeline, store
from vault.retention.anonymizer import Anonymizer
from vault.retention.batches import AnonymizeOutcome, RetentionBatchRunner, states_of
from vault.retention.locking import RunnerLock
from vault.retention.preparer import ChildPreparer, ChildPreparerSetup, InProcessPreparer
from vault.retention.report import MAX_LISTED_HOLDS, KAnonymity, Outcome, RetentionReport
from vault.retention.rules import RetentionRule, RetentionRules
from vault.storage.db import Database

log = logging.getLogger(__name__)

CHILD_FROM_BATCHES = 10
"""A run with at least this many batches due prepares them in a child process
(`vault.retention.preparer`); starting one costs about a second, a batch about 0.3 s."""

CHILD_CHECKPOINT_PAGES = 20_000
"""On SQLite a child that prepares batches also checkpoints the WAL, so the job's commits
leave the checkpoint to it until the WAL holds this many pages (80 MiB)."""

Progress = Callable[[Outcome, int], None]
"""Called after each committed batch with its outcome and size (for progress bars)."""


def _quiet(outcome: Outcome, count: int) -> None:
    return None


class RetentionJob:
    """Runs the lifecycle active -> pending_anonymization -> anonymized."""

    def __init__(
        self,
        *,
        db: Database,
        rules: RetentionRules,
        anonymizer: Anonymizer,
        clock: Clock,
        lock: RunnerLock,
        batch_size: int,
        child: ChildPreparerSetup | None = None,
        child_from_batches: int = CHILD_FROM_BATCHES,
    ) -> None:
        """`child`: how a child process would build its batches (runs of at least
        `child_from_batches` batches); without it every batch is prepared in this
        process."""
        self._db = db
        self._child = child
        self._batch_size = batch_size
        self._child_from = child_from_batches * batch_size
        self._rules = rules
        self._clock = clock
        self._lock = lock
        self._batches = RetentionBatchRunner(
            db=db,
            anonymizer=anonymizer,
            clock=clock,
            rules_version=rules.version,
            batch_size=batch_size,
        )

    def run(
        self, *, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> RetentionReport:
        """One full run, unless another runner holds the lock (then a skipped report).
        `stop` ends it between batches; the rest is left for the next run."""
        report = RetentionReport(new_random_id("run"), self._clock.now())
        with self._lock.hold() as acquired:
            if not acquired:
                report.skipped = "another runner holds the retention lock"
                report.finished_at = report.started_at
                return report
            try:
                self._execute(report, progress or _quiet, stop or threading.Event())
            finally:
                if report.count(Outcome.ANONYMIZED):
                    self._db.after_shred()
        log.info(report.summary())
        return report

    def plan(self, tenant: str | None = None) -> RetentionReport:
        """A dry run: what a run would do now (for one tenant or all). Changes nothing."""
        now = self._clock.now()
        report = RetentionReport(new_random_id("run"), now, dry_run=True)
        with self._db.read() as conn:
            tenants = [tenant] if tenant is not None else store.tenants(conn)
            for name, rule in self._rules_of(tenants):
                threshold = to_micros(rule.notice_threshold(now))
                dormant = store.count_dormant(conn, name, states_of(rule), threshold, held=False)
                report.add(Outcome.NOTIFIED, dormant)
            report.add(Outcome.ANONYMIZED, store.count_due(conn, to_micros(now), tenant))
            since = store.last_finished(conn)
            report.finished_at = self._clock.now()
            self._summarize(conn, report, tenants, tenant, since)
        return report

    def _rules_of(self, tenants: Sequence[str]) -> list[tuple[str, RetentionRule]]:
        found = ((t, self._rules.rule_for(t)) for t in tenants)
        return [(t, rule) for t, rule in found if rule is not None]

    def _execute(self, report: RetentionReport, progress: Progress, stop: threading.Event) -> None:
        now = report.started_at
        with self._db.read() as conn:
            tenants = store.tenants(conn)
            since = store.last_finished(conn)
        sequence = itertools.count()
        for tenant, rule in self._rules_of(tenants):
            while not stop.is_set() and (
                n := self._batches.notify(tenant, rule, now, report.run_id, sequence)
            ):
                report.add(Outcome.NOTIFIED, n, tenant)
                progress(Outcome.NOTIFIED, n)
        for done in self._anonymized(now, report.run_id, stop):
            report.add(Outcome.ANONYMIZED, done.anonymized)
            for name, count in done.by_tenant.items():
                report.tenant(name).counts[Outcome.ANONYMIZED.value] += count
            report.without_attributes += done.without_attributes
            telemetry.subjects_anonymized(done.anonymized)
            progress(Outcome.ANONYMIZED, done.notices)
        report.interrupted = stop.is_set()
        report.finished_at = self._clock.now()
        with self._db.read() as conn:
            self._summarize(conn, report, tenants, None, since)
        with self._db.write() as conn:
            store.insert_run(
                conn,
                report.run_id,
                to_micros(report.started_at),
                to_micros(report.finished_at),
                report.to_json(),
            )

    def _anonymized(
        self, now: datetime, run_id: str, stop: threading.Event
    ) -> Iterator[AnonymizeOutcome]:
        """Batch n+1 prepared while batch n writes: in a child process for a large run,
        else in turn in this one (`vault.retention.pipeline`)."""
        batches, clock = self._batches, self._clock
        if self._child is not None and self._due_at_least(now, self._child_from):
            preparing = ChildPreparer(
                self._child, rules_version=self._rules.version, batch_size=self._batch_size
            )
            with preparing as child:
                yield from pipeline.prepared_ahead(
                    batches,
                    child,
                    clock=clock,
                    now=now,
                    run_id=run_id,
                    stop=stop,
                    checkpoint_pages=CHILD_CHECKPOINT_PAGES,
                )
        else:
            preparer = InProcessPreparer(batches)
            yield from pipeline.prepared_ahead(
                batches, preparer, clock=clock, now=now, run_id=run_id, stop=stop
            )

    def _due_at_least(self, now: datetime, count: int) -> bool:
        with self._db.read() as conn:
            return store.count_due_upto(conn, to_micros(now), count) >= count

    def _summarize(
        self,
        conn: Connection,
        report: RetentionReport,
        tenants: Sequence[str],
        tenant: str | None,
        since_us: int,
    ) -> None:
        """Held subjects, cancellations since the last run, and k-anonymity."""
        assert report.finished_at is not None
        for name, rule in self._rules_of(tenants):
            threshold = to_micros(rule.notice_threshold(report.started_at))
            states = states_of(rule)
            held = store.count_dormant(conn, name, states, threshold, held=True)
            report.add(Outcome.HELD, held, None if report.dry_run or tenant else name)
            report.note_held(
                store.held_dormant_ids(conn, name, states, threshold, MAX_LISTED_HOLDS)
            )
        until = to_micros(report.finished_at)
        report.add(Outcome.CANCELLED, store.count_cancelled(conn, since_us, until, tenant))
        report.k_anonymity = KAnonymity.from_group_sizes(store.group_sizes(conn, tenant))
        if tenant is None and not report.dry_run:
            for name in tenants:
                part = report.tenant(name)
                part.k_anonymity = KAnonymity.from_group_sizes(store.group_sizes(conn, name))
                part.counts[Outcome.CANCELLED.value] = store.count_cancelled(
                    conn, since_us, until, name
                )
