"""The child process that prepares anonymization batches (SQLite's large runs): it
prepares exactly what this process would, stamps entries with the job's clock, and a
child that cannot start says so instead of hanging the run."""

from __future__ import annotations

import json
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
    job_with_child,
    retention_vault,
    rows,
    verify_audit_log,
)
from vault.clock import to_micros
from vault.retention.preparer import ChildPreparer, ChildPreparerSetup, prepare_batch
from vault.retention.report import Outcome
from vault.retention.rules import RULES_FILE, RetentionRules

NOTICE_AT = timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1)
PAST_DEADLINE = timedelta(days=NOTICE_DAYS + 1)
COUNT = 12


def _dormant_past_deadline(rv: RunningVault, clock: TestClock) -> list[str]:
    created = rv.client().batch_create([customer(n) for n in range(COUNT)])
    clock.advance(NOTICE_AT)
    assert rv.app.retention_job.run().count(Outcome.NOTIFIED) == COUNT
    clock.advance(PAST_DEADLINE)
    return [r.subject_id for r in created.results]


def _child(
    rv: RunningVault, batch_size: int, recipe: ChildPreparerSetup | None = None
) -> ChildPreparer:
    app = rv.app
    rules = RetentionRules.from_file(app.settings.policies_dir / RULES_FILE)
    recipe = recipe or ChildPreparerSetup(app.settings, app.dictionary)
    return ChildPreparer(recipe, rules_version=rules.version, batch_size=batch_size)


def test_the_child_prepares_what_this_process_would(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        _dormant_past_deadline(rv, clock)
        now = clock.now()
        batches = rv.app.retention_job._batches
        ids, here = prepare_batch(batches, now, now, "run_same", ())
        with _child(rv, batch_size=COUNT) as child:
            child.request(now, now, "run_same", ())
            child_ids, there = child.result()
            # A second batch leaving the first out: nothing else is due.
            child.request(now, now, "run_same", child_ids)
            assert child.result() == ([], {})

        assert child_ids == ids and len(ids) == COUNT
        for notice_id in ids:
            mine, theirs = here[notice_id], there[notice_id]
            assert theirs.version == mine.version
            # The same audit entry byte for byte (and so the same leaf hash) ...
            assert theirs.entry == mine.entry
            # ... and the same generalized record under another fresh pseudonym.
            assert mine.record is not None and theirs.record is not None
            assert theirs.record[1:] == mine.record[1:]
            assert theirs.record[0] != mine.record[0]


def test_a_run_through_the_child_stamps_entries_with_the_jobs_clock(tmp_path: Path) -> None:
    """SQLite only: the database whose runs prepare in a child process."""
    clock = TestClock()
    with retention_vault(tmp_path / "data", None, clock) as rv:
        subject_ids = _dormant_past_deadline(rv, clock)
        job = job_with_child(rv, clock, batch_size=5)
        report = job.run()
        assert report.count(Outcome.ANONYMIZED) == COUNT
        engine = rv.app.db.engine
        assert audit_actions_per_subject(engine, "AnonymizeSubject") == dict.fromkeys(
            subject_ids, 1
        )
        stamps = {
            r[0]
            for r in rows(
                engine, "SELECT time_us FROM audit_entries WHERE action = 'AnonymizeSubject'"
            )
        }
        assert stamps == {to_micros(clock.now())}
        kept = [json.loads(r[0]) for r in rows(engine, "SELECT attributes FROM anonymized_records")]
        assert len(kept) == COUNT and all("country" in k for k in kept)
        verify_audit_log(rv)


def test_a_child_that_cannot_start_says_so(tmp_path: Path, database_url: str | None) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        app = rv.app
        broken = app.settings.model_copy(update={"key_file": tmp_path / "missing.json"})
        with (
            pytest.raises(Exception, match=r"key") as raised,
            _child(rv, batch_size=10, recipe=ChildPreparerSetup(broken, app.dictionary)),
        ):
            pass
        # The child's own error, not a hang or a broken pipe.
        assert "preparer stopped" not in str(raised.value)
