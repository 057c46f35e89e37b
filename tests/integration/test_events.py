"""The event feed (transactional outbox) through the real server, on SQLite and
PostgreSQL: consent changes appear after the cursor, the cursor resumes across a
restart, a rolled-back change leaves no event, events written out of commit order are
never skipped, a role without `events:read` is refused and audited, and no event holds
a personal value."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from customer_vault_client.gen.customervault.v1 import events_pb2 as epb

import audit
from tests.data import PII, SECRETS
from tests.integration.audit_faults import audit_store_refusing
from tests.integration.consent_support import SERVICE, grant, opt_out, withdraw
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    customer,
    retention_vault,
)
from vault.api.client import VaultClient, VaultClientError
from vault.clock import to_micros
from vault.event_kinds import EventKind, check_facts
from vault.storage import events as outbox

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}
MARKETER: dict[str, Any] = {"principal": "mkt-1", "roles": ("marketing",)}


def _list(
    vault: RunningVault, token: str = "", page_size: int = 0, kinds: tuple[int, ...] = ()
) -> epb.ListEventsResponse:
    client = vault.client(**FRONTEND)
    request = epb.ListEventsRequest(page_size=page_size, page_token=token, kinds=list(kinds))
    response: epb.ListEventsResponse = client.call(client.events, "ListEvents", request)
    return response


def _kinds(response: epb.ListEventsResponse) -> list[str]:
    return [epb.EventKind.Name(e.kind) for e in response.events]


def test_a_consent_change_appears_after_the_cursor(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(PII).subject_id
    start = _list(vault)
    assert list(start.events) == [] and start.next_page_token == "0"

    receipt = grant(service, ada, "marketing").receipt.receipt_id
    page = _list(vault, start.next_page_token)
    (event,) = page.events
    assert event.subject_id == ada and event.sequence == 1
    assert epb.EventKind.Name(event.kind) == "EVENT_KIND_CONSENT_GRANTED"
    assert event.facts["purposes"] == "marketing"
    assert event.facts["channel"] == "web" and event.facts["receipt_id"] == receipt
    assert event.occur_time.seconds > 0
    assert page.next_page_token == "1" and page.oldest_sequence == 1

    withdraw(service, ada, "marketing")
    opt_out(service, ada, "all_marketing", channel=cpb.CONSENT_CHANNEL_GPC)
    later = _list(vault, page.next_page_token)
    assert _kinds(later) == ["EVENT_KIND_CONSENT_WITHDRAWN", "EVENT_KIND_CONSENT_OPTED_OUT"]
    gpc = later.events[1]
    assert gpc.facts["channel"] == "gpc"
    # GPC opts out of every sharing marker as well as what was named.
    assert set(gpc.facts["purposes"].split(",")) == {"all_marketing", "all_sharing"}
    assert [e.sequence for e in later.events] == [2, 3]
    assert list(_list(vault, later.next_page_token).events) == []

    # A filter by kind returns only those, and its cursor moves past the others.
    only = _list(vault, "0", kinds=(epb.EVENT_KIND_CONSENT_OPTED_OUT,))
    assert [e.sequence for e in only.events] == [3] and only.next_page_token == "3"

    [entry, *_] = [
        e.entry
        for e in audit.iter_query(vault.app.db.engine, action="ListEvents")
        if ada in e.entry.subject_ids
    ]
    assert (entry.actor, entry.decision) == ("shop-frontend", "allow")


def test_the_cursor_resumes_across_a_restart(tmp_path: Path, database_url: str | None) -> None:
    settings = settings_for(tmp_path / "data", database_url)
    with running_vault(settings) as first:
        service = first.client(**SERVICE)
        subjects = [service.create(PII).subject_id for _ in range(3)]
        for subject in subjects:
            grant(service, subject, "marketing")
        page = _list(first, page_size=2)
        assert [e.subject_id for e in page.events] == subjects[:2]
        cursor = page.next_page_token
    with running_vault(settings) as second:
        rest = _list(second, cursor, page_size=2)
        assert [e.subject_id for e in rest.events] == subjects[2:]
        withdraw(second.client(**SERVICE), subjects[0], "marketing")
        (new,) = _list(second, rest.next_page_token).events
        assert (new.subject_id, new.sequence) == (subjects[0], 4)


def test_a_rolled_back_change_leaves_no_event(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(PII).subject_id
    before = _list(vault)
    # The audit entry is the last write of the consent transaction: refusing it rolls
    # back the ledger row, the receipt and the event written before it.
    with audit_store_refusing(vault), pytest.raises(VaultClientError):
        grant(service, ada, "marketing")
    after = _list(vault, before.next_page_token)
    assert list(after.events) == []
    with vault.app.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outbox_events")).scalar() == 0
    grant(service, ada, "marketing")
    assert _kinds(_list(vault, after.next_page_token)) == ["EVENT_KIND_CONSENT_GRANTED"]


# PostgreSQL only: SQLite has one writer at a time, so its commits cannot interleave.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_an_event_committed_late_is_not_skipped(vault: RunningVault) -> None:
    """Two writers: the one that inserted first commits last. The reader has already
    moved past the other's event; the late one still comes, with the next number."""
    engine = vault.app.db.engine
    service = vault.client(**SERVICE)
    first, second = (service.create(PII).subject_id for _ in range(2))

    def event_for(conn: sa.Connection, subject: str) -> None:
        outbox.record_event(
            conn,
            tenant="acme",
            subject_id=subject,
            kind=EventKind.REQUEST_STATE_CHANGED,
            occurred_at=1,
            facts={"request_id": "req_1", "state": "received"},
        )

    slow = engine.connect()
    transaction = slow.begin()
    event_for(slow, first)  # inserted first (the lower id), not committed yet
    with engine.begin() as conn:
        event_for(conn, second)
    page = _list(vault)
    assert [(e.subject_id, e.sequence) for e in page.events] == [(second, 1)]
    transaction.commit()
    slow.close()
    late = _list(vault, page.next_page_token)
    assert [(e.subject_id, e.sequence) for e in late.events] == [(first, 2)]
    assert late.events[0].facts == {"request_id": "req_1", "state": "received"}


def test_a_role_without_permission_is_refused_and_audited(vault: RunningVault) -> None:
    for caller in (SERVICE, MARKETER):
        client: VaultClient = vault.client(**caller)
        with pytest.raises(VaultClientError) as caught:
            client.call(client.events, "ListEvents", epb.ListEventsRequest())
        assert caught.value.code == "PERMISSION_DENIED"
    denied = [e.entry for e in audit.iter_query(vault.app.db.engine, action="ListEvents")]
    assert {(e.actor, e.decision) for e in denied} == {
        ("order-service", "deny"),
        ("mkt-1", "deny"),
    }
    with pytest.raises(VaultClientError) as bad:
        _list(vault, "ev-not-a-cursor")
    assert bad.value.code == "INVALID_ARGUMENT"
    assert [f for f, _ in bad.value.violations] == ["page_token"]


def test_no_event_holds_a_personal_value(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    subject = service.create(PII).subject_id
    grant(service, subject, "marketing", "personalization")
    withdraw(service, subject, "personalization")
    opt_out(service, subject, "all_sharing", channel=cpb.CONSENT_CHANNEL_GPC)
    response = _list(vault)
    assert len(response.events) == 3
    sent = response.SerializeToString()
    with vault.app.db.engine.connect() as conn:
        stored = " ".join(str(r) for r in conn.execute(sa.text("SELECT * FROM outbox_events")))
    for secret in [*SECRETS, *PII.values()]:
        assert secret.encode() not in sent
        assert secret not in stored


def test_free_text_cannot_be_published() -> None:
    with pytest.raises(ValueError, match="'reason_code'") as caught:
        check_facts({"reason_code": PII["email"]})
    assert PII["email"] not in str(caught.value)
    for facts in ({"note": "x"}, {"state": "two words"}, {"state": "a" * 5000}):
        with pytest.raises(ValueError):
            check_facts(facts)


def test_notices_and_anonymizations_are_events_and_old_events_are_pruned(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        dormant = rv.client().create(customer(1)).subject_id
        clock.advance(timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1))
        rv.app.retention_job.run()
        (notice,) = _list(rv).events
        assert (notice.subject_id, epb.EventKind.Name(notice.kind)) == (
            dormant,
            "EVENT_KIND_DORMANCY_NOTICE_CREATED",
        )
        deadline = datetime.fromisoformat(notice.facts["deadline"])
        assert deadline == clock.now() + timedelta(days=NOTICE_DAYS)
        assert notice.facts["notice_id"].startswith("ntc_")

        clock.advance(timedelta(days=NOTICE_DAYS + 1))
        rv.app.retention_job.run()
        page = _list(rv, "1")
        assert _kinds(page) == ["EVENT_KIND_SUBJECT_ANONYMIZED"]
        assert page.events[0].facts["notice_id"] == notice.facts["notice_id"]

        # Past the retention window both are old; the newest is kept so numbering
        # continues after it, and a reader at 0 learns it missed event 1.
        clock.advance(timedelta(days=rv.app.settings.event_retention_days + 1))
        assert rv.app.event_feed().prune_once() is False  # one batch was enough
        pruned = _list(rv)
        assert [e.sequence for e in pruned.events] == [2] and pruned.oldest_sequence == 2


def test_pruning_goes_in_batches_and_keeps_the_newest(vault: RunningVault) -> None:
    db = vault.app.db
    # Recent events: the vault's own `event-prune` task (30 days) leaves them alone.
    now_us = to_micros(vault.app.clock.now())
    with db.write() as conn:
        outbox.record_events(
            conn,
            [
                ("acme", f"sub_{n}", EventKind.CONSENT_GRANTED, now_us - 10 + n, {})
                for n in range(5)
            ],
        )
    vault.app.event_feed().sequence()
    removed = []
    for _ in range(4):
        with db.write() as conn:
            removed.append(outbox.prune(conn, before_us=now_us, limit=2))
    assert removed == [2, 2, 0, 0]
    with db.read() as conn:
        assert (outbox.oldest_sequence(conn), outbox.highest_sequence(conn)) == (5, 5)
