"""A batch prepared from an unlocked read is applied only to what has not changed since:
the write transaction locks and re-checks every notice (the pipeline SQLite runs)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from customer_vault_client.gen.customervault.v1 import retention_pb2 as rpb

from tests.integration.harness import RunningVault
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    admin,
    audit_actions_per_subject,
    customer,
    retention_vault,
    rows,
    scalar,
    verify_audit_log,
)
from vault.records.cipher import RecordCipher
from vault.retention.anonymizer import Anonymizer
from vault.retention.batches import RetentionBatchRunner
from vault.retention.report import Outcome

NOTICE_AT = timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1)
PAST_DEADLINE = timedelta(days=NOTICE_DAYS + 1)


def _batches(rv: RunningVault) -> RetentionBatchRunner:
    app = rv.app
    return RetentionBatchRunner(
        db=app.db,
        anonymizer=Anonymizer(
            RecordCipher(app.keyring, app.dictionary.index_forms), app.dictionary
        ),
        clock=app.clock,
        rules_version="test",
        batch_size=100,
    )


def _state(rv: RunningVault, subject_id: str) -> str:
    sql = "SELECT state FROM subjects WHERE id = :i"
    return str(scalar(rv.app.db.engine, sql, i=subject_id))


def test_changes_between_prepare_and_apply_are_respected(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        service = rv.client()
        edited, held, active, untouched = (service.create(customer(n)) for n in range(4))
        clock.advance(NOTICE_AT)
        assert rv.app.retention_job.run().count(Outcome.NOTIFIED) == 4
        clock.advance(PAST_DEADLINE)
        now = clock.now()

        batches = _batches(rv)
        due = batches.read_due(now)
        prepared = batches.prepare(due, now, "run_prepared")
        assert len(due) == len(prepared) == 4

        # Meanwhile: a new date of birth, a legal hold, and activity.
        rv.client().update(edited.subject_id, edited.version, {"date_of_birth": "2001-05-05"})
        client = admin(rv)
        hold = rpb.SetLegalHoldRequest(subject_id=held.subject_id, reason="matter 7")
        client.call(client.retention, "SetLegalHold", hold)
        rv.client().record_activity(active.subject_id)

        done = batches.apply(prepared, [d.notice_id for d in due], now, "run_prepared")
        assert (done.notices, done.anonymized) == (1, 1)
        assert _state(rv, untouched.subject_id) == "anonymized"
        assert _state(rv, edited.subject_id) == "pending_anonymization"
        assert _state(rv, held.subject_id) == "active"
        assert _state(rv, active.subject_id) == "active"

        # The edited subject goes with the next batch, generalized from its new value.
        assert rv.app.retention_job.run().count(Outcome.ANONYMIZED) == 1
        assert _state(rv, edited.subject_id) == "anonymized"
        engine = rv.app.db.engine
        bands = sorted(
            json.loads(r[0])["date_of_birth"]
            for r in rows(engine, "SELECT attributes FROM anonymized_records")
        )
        assert bands == ["1970-1979", "2000-2009"]
        assert audit_actions_per_subject(engine, "AnonymizeSubject") == {
            edited.subject_id: 1,
            untouched.subject_id: 1,
        }
        verify_audit_log(rv)


def test_a_prepared_batch_applied_twice_changes_nothing_the_second_time(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        service = rv.client()
        ids = [r.subject_id for r in service.batch_create([customer(n) for n in range(5)]).results]
        clock.advance(NOTICE_AT)
        rv.app.retention_job.run()
        clock.advance(PAST_DEADLINE)
        now = clock.now()
        batches = _batches(rv)
        due = batches.read_due(now)
        prepared = batches.prepare(due, now, "run_twice")
        assert batches.apply(prepared, [d.notice_id for d in due], now, "run_twice").anonymized == 5
        assert batches.apply(prepared, [d.notice_id for d in due], now, "run_twice").notices == 0
        engine = rv.app.db.engine
        assert scalar(engine, "SELECT count(*) FROM anonymized_records") == 5
        assert audit_actions_per_subject(engine, "AnonymizeSubject") == dict.fromkeys(ids, 1)
