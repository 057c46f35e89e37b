"""Dormant -> notice -> anonymized, on the test clock, through the real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from customer_vault_client.gen.customervault.v1 import retention_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import rights_pb2
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

from tests.data import DPO
from tests.integration.harness import RunningVault
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    T0,
    TestClock,
    admin,
    audit_actions_per_subject,
    customer,
    retention_vault,
    rows,
    scalar,
    verify_audit_log,
)
from vault.api.client import VaultClientError
from vault.retention.report import Outcome

NOTICE_AT = timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1)
PAST_DEADLINE = timedelta(days=NOTICE_DAYS + 1)


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def rv(tmp_path: Path, database_url: str | None, clock: TestClock) -> Iterator[RunningVault]:
    with retention_vault(tmp_path / "data", database_url, clock) as running:
        yield running


def _state(vault: RunningVault, subject_id: str) -> str:
    return str(
        scalar(vault.app.db.engine, "SELECT state FROM subjects WHERE id = :i", i=subject_id)
    )


def _notices(vault: RunningVault, **kwargs: object) -> list[rpb.RetentionNotice]:
    response = admin(vault).call(
        admin(vault).retention,
        "ListNotices",
        rpb.ListNoticesRequest(**kwargs),  # type: ignore[arg-type]
    )
    return list(response.notices)


def test_a_dormant_subject_gets_its_notice_then_is_anonymized(
    rv: RunningVault, clock: TestClock
) -> None:
    service = rv.client()
    dormant = service.create(customer(1)).subject_id
    lively = service.create(customer(2)).subject_id
    service.tokenize(dormant, "email", pb.TOKEN_KIND_RANDOM, "support")
    job = rv.app.retention_job

    clock.advance(NOTICE_AT)
    rv.client().record_activity(lively)
    report = job.run()
    assert report.count(Outcome.NOTIFIED) == 1 and report.count(Outcome.ANONYMIZED) == 0
    assert _state(rv, dormant) == "pending_anonymization"
    assert _state(rv, lively) == "active"

    (notice,) = _notices(rv)
    assert notice.subject_id == dormant
    # Noticed a day late: the customer still gets the full notice period.
    noticed = notice.notified_at.ToDatetime(tzinfo=UTC)
    assert noticed == T0 + NOTICE_AT
    assert notice.deadline.ToDatetime(tzinfo=UTC) == noticed + timedelta(days=NOTICE_DAYS)
    client = admin(rv)
    acked = client.call(
        client.retention,
        "AcknowledgeNotice",
        rpb.AcknowledgeNoticeRequest(notice_id=notice.notice_id),
    )
    assert acked.notice.acknowledged
    assert _notices(rv) == []  # the e-mailing service's queue is empty
    assert [n.notice_id for n in _notices(rv, include_acknowledged=True)] == [notice.notice_id]

    again = job.run()  # before the deadline nothing more happens
    assert again.count(Outcome.NOTIFIED) == 0 and again.count(Outcome.ANONYMIZED) == 0

    clock.advance(PAST_DEADLINE)
    done = job.run()
    assert done.count(Outcome.ANONYMIZED) == 1
    assert _state(rv, dormant) == "anonymized"
    engine = rv.app.db.engine
    (tombstone,) = rows(
        engine, "SELECT wrapped_dek, kek_version, fields FROM subjects WHERE id = :i", i=dormant
    )
    assert tuple(tombstone) == (None, None, None)
    for table in ("blind_indexes", "tokens"):
        assert scalar(engine, f"SELECT count(*) FROM {table} WHERE subject_id = :i", i=dormant) == 0
    (attributes,) = [
        json.loads(r[0]) for r in rows(engine, "SELECT attributes FROM anonymized_records")
    ]
    assert attributes == {
        "country": "US",
        "date_of_birth": "1970-1979",
        "loyalty_tier": "silver",
        "postal_code": "ZQ1",
    }
    assert done.k_anonymity.records == 1 and done.k_anonymity.groups_below_k == 1

    with pytest.raises(VaultClientError) as caught:
        rv.client().record_activity(dormant)
    assert caught.value.code == "FAILED_PRECONDITION"
    assert audit_actions_per_subject(engine, "AnonymizeSubject") == {dormant: 1}
    assert audit_actions_per_subject(engine, "NotifySubject") == {dormant: 1}
    assert verify_audit_log(rv) > 0


def test_a_rerun_changes_nothing(rv: RunningVault, clock: TestClock) -> None:
    service = rv.client()
    service.batch_create([customer(n) for n in range(30)])
    job = rv.app.retention_job
    clock.advance(NOTICE_AT)
    assert job.run().count(Outcome.NOTIFIED) == 30
    clock.advance(PAST_DEADLINE)
    assert job.run().count(Outcome.ANONYMIZED) == 30
    engine = rv.app.db.engine
    # The audit integrator numbers entries in the background: compare their content only.
    queries = [
        *(f"SELECT * FROM {t}" for t in ("subjects", "retention_notices", "anonymized_records")),
        "SELECT * FROM blind_indexes",
        "SELECT id, entry FROM audit_entries",
    ]
    before = [sorted(map(tuple, rows(engine, q))) for q in queries]
    for _ in range(2):
        rerun = job.run()
        assert rerun.counts == {"notified": 0, "anonymized": 0, "cancelled": 0, "held": 0}
    assert [sorted(map(tuple, rows(engine, q))) for q in queries] == before
    assert set(audit_actions_per_subject(engine, "AnonymizeSubject").values()) == {1}


def test_activity_during_the_notice_cancels_it(rv: RunningVault, clock: TestClock) -> None:
    subject = rv.client().create(customer(3)).subject_id
    job = rv.app.retention_job
    clock.advance(NOTICE_AT)
    job.run()
    assert _state(rv, subject) == "pending_anonymization"

    clock.advance(timedelta(days=NOTICE_DAYS - 2))  # just before the deadline
    meta = rv.client().record_activity(subject)
    assert meta.state == pb.SUBJECT_STATE_ACTIVE
    assert _notices(rv, include_acknowledged=True) == []
    engine = rv.app.db.engine
    assert rows(engine, "SELECT status, close_reason FROM retention_notices") == [
        ("cancelled", "activity")
    ]

    clock.advance(PAST_DEADLINE)
    report = job.run()
    assert report.count(Outcome.ANONYMIZED) == 0 and report.count(Outcome.NOTIFIED) == 0
    assert report.count(Outcome.CANCELLED) == 1  # since the last run
    assert _state(rv, subject) == "active"
    assert audit_actions_per_subject(engine, "AnonymizeSubject") == {}


def test_a_legal_hold_blocks_anonymization_and_is_reported(
    rv: RunningVault, clock: TestClock
) -> None:
    service = rv.client()
    held = service.create(customer(4)).subject_id
    job = rv.app.retention_job
    clock.advance(NOTICE_AT)
    job.run()

    client = admin(rv)
    response = client.call(
        client.retention,
        "SetLegalHold",
        rpb.SetLegalHoldRequest(subject_id=held, reason="matter 2030-117"),
    )
    assert response.cancelled_notice and response.hold.set_by == "ops-1"
    assert _state(rv, held) == "active"

    clock.advance(PAST_DEADLINE + timedelta(days=400))
    report = job.run()
    assert report.count(Outcome.ANONYMIZED) == 0 and report.count(Outcome.NOTIFIED) == 0
    assert report.count(Outcome.HELD) == 1 and report.held_subjects == [held]
    client = admin(rv)
    holds = client.call(client.retention, "ListLegalHolds", rpb.ListLegalHoldsRequest())
    assert [(h.subject_id, h.reason) for h in holds.holds] == [(held, "matter 2030-117")]
    summary = client.call(client.retention, "GetRetentionReport", rpb.GetRetentionReportRequest())
    assert summary.held == 1 and list(summary.held_subject_ids) == [held]
    with pytest.raises(VaultClientError) as caught:
        rv.client().erase(held, "closing the account")
    assert caught.value.code == "FAILED_PRECONDITION"

    client.call(
        client.retention,
        "ClearLegalHold",
        rpb.ClearLegalHoldRequest(subject_id=held, reason="matter 2030-117 closed"),
    )
    assert job.run().count(Outcome.NOTIFIED) == 1  # a fresh notice, a full notice period
    clock.advance(timedelta(days=NOTICE_DAYS - 1))
    assert job.run().count(Outcome.ANONYMIZED) == 0
    clock.advance(timedelta(days=2))
    assert job.run().count(Outcome.ANONYMIZED) == 1

    engine = rv.app.db.engine
    entries = rows(
        engine,
        "SELECT e.action FROM audit_entries e JOIN audit_entry_subjects s ON s.entry_id = e.id "
        "WHERE s.subject_id = :i ORDER BY e.id",
        i=held,
    )
    actions = [a for (a,) in entries]
    assert actions.count("SetLegalHold") == 1 and actions.count("ClearLegalHold") == 1
    assert actions.count("NotifySubject") == 2 and actions.count("AnonymizeSubject") == 1
    verify_audit_log(rv)


def test_retention_rpcs_need_their_permission_and_stay_in_the_tenant(
    rv: RunningVault, clock: TestClock
) -> None:
    subject = rv.client().create(customer(5)).subject_id
    service = rv.client()
    for method, request in (
        ("ListNotices", rpb.ListNoticesRequest()),
        ("SetLegalHold", rpb.SetLegalHoldRequest(subject_id=subject, reason="x")),
        ("GetRetentionReport", rpb.GetRetentionReportRequest()),
    ):
        with pytest.raises(VaultClientError) as caught:
            service.call(service.retention, method, request)
        assert caught.value.code == "PERMISSION_DENIED"
    other = admin(rv, tenant="globex")
    with pytest.raises(VaultClientError) as caught:
        other.call(
            other.retention, "SetLegalHold", rpb.SetLegalHoldRequest(subject_id=subject, reason="x")
        )
    assert caught.value.code == "NOT_FOUND"
    mine = admin(rv)
    for bad in ("", "  ", "line\nbreak"):
        with pytest.raises(VaultClientError) as caught:
            mine.call(
                mine.retention,
                "SetLegalHold",
                rpb.SetLegalHoldRequest(subject_id=subject, reason=bad),
            )
        assert caught.value.code == "INVALID_ARGUMENT"
    with pytest.raises(VaultClientError) as caught:
        mine.call(
            mine.retention,
            "ClearLegalHold",
            rpb.ClearLegalHoldRequest(subject_id=subject, reason="r"),
        )
    assert caught.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as caught:
        mine.call(mine.retention, "ListNotices", rpb.ListNoticesRequest(page_token="bogus"))
    assert caught.value.code == "INVALID_ARGUMENT"


def test_notices_are_paged(rv: RunningVault, clock: TestClock) -> None:
    rv.client().batch_create([customer(n) for n in range(25)])
    clock.advance(NOTICE_AT)
    rv.app.retention_job.run()
    client = admin(rv)
    seen: list[str] = []
    token = ""
    while True:
        page = client.call(
            client.retention, "ListNotices", rpb.ListNoticesRequest(page_size=10, page_token=token)
        )
        seen.extend(n.notice_id for n in page.notices)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 25
    summary = client.call(client.retention, "GetRetentionReport", rpb.GetRetentionReportRequest())
    assert summary.to_notify == 0 and summary.to_anonymize == 0
    clock.advance(PAST_DEADLINE)
    summary = admin(rv).call(
        admin(rv).retention, "GetRetentionReport", rpb.GetRetentionReportRequest()
    )
    assert summary.to_anonymize == 25


def test_a_restriction_during_the_notice_stops_it_and_a_later_notice_replaces_it(
    rv: RunningVault, clock: TestClock
) -> None:
    subject = rv.client().create(customer(6)).subject_id
    job = rv.app.retention_job
    clock.advance(NOTICE_AT)
    job.run()
    dpo = rv.client(principal="dpo-1", roles=("dpo",))
    dpo.call(
        dpo.rights,
        "RestrictProcessing",
        rights_pb2.RestrictProcessingRequest(subject_id=subject, reason="DSR-9 contests accuracy"),
    )
    assert _notices(rv, include_acknowledged=True) == []  # not for mailing any more
    dpo.call(
        dpo.rights,
        "LiftRestriction",
        rights_pb2.LiftRestrictionRequest(subject_id=subject, reason="DSR-9 resolved"),
    )
    assert job.run().count(Outcome.NOTIFIED) == 1  # dormant again: a new notice
    (current,) = _notices(rv)
    engine = rv.app.db.engine
    found = rows(engine, "SELECT status, close_reason FROM retention_notices")
    assert sorted(map(tuple, found), key=str) == [("cancelled", "superseded"), ("open", None)]
    clock.advance(PAST_DEADLINE)
    assert job.run().count(Outcome.ANONYMIZED) == 1
    assert audit_actions_per_subject(engine, "AnonymizeSubject") == {subject: 1}
    assert current.deadline.ToDatetime(tzinfo=UTC) <= clock.now()


def test_the_vault_runs_the_job_on_its_cron_schedule(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = TestClock()
    with retention_vault(
        tmp_path / "data",
        database_url,
        clock,
        retention_schedule="0 4 * * *",
        retention_poll_seconds=0.05,
    ) as scheduled:
        subject = scheduled.client().create(customer(7)).subject_id
        clock.advance(NOTICE_AT)
        deadline = time.monotonic() + 30
        while _state(scheduled, subject) != "pending_anonymization":
            assert time.monotonic() < deadline, "the scheduled run did not happen"
            time.sleep(0.05)


def test_an_anonymized_subjects_data_key_leaves_the_key_cache(
    rv: RunningVault, clock: TestClock
) -> None:
    """The job opens the dormant subject's fields to generalize them, then shreds its data
    key: the key must not stay behind in the serving process's data-key cache."""
    service = rv.client()
    dormant = service.create(customer(1)).subject_id
    rv.client(**DPO).get(dormant, "full", "data_subject_request", "DSR-2026-9")
    cache = rv.app.keyring.dek_cache
    assert cache is not None
    (wrapped,) = rows(
        rv.app.db.engine, "SELECT kek_version, wrapped_dek FROM subjects WHERE id = :i", i=dormant
    )
    kek_version, wrapped_dek = int(wrapped[0]), bytes(wrapped[1])
    assert cache.get(kek_version, wrapped_dek) is not None  # the read cached it

    clock.advance(NOTICE_AT)
    rv.app.retention_job.run()
    clock.advance(PAST_DEADLINE)
    assert rv.app.retention_job.run().count(Outcome.ANONYMIZED) == 1
    assert cache.get(kek_version, wrapped_dek) is None
