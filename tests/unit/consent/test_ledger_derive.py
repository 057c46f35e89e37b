"""Deriving consent from ledger events: latest event per purpose wins, grants expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vault.consent.ledger import EMPTY_VERSION, derive
from vault.consent.models import Channel, ConsentAction, ConsentEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(
    number: int, purpose: str, action: ConsentAction, expires_at: datetime | None = None
) -> ConsentEvent:
    return ConsentEvent(
        id=number,
        tenant="acme",
        subject_id="sub_" + "a" * 26,
        purpose=purpose,
        action=action,
        recorded_at=T0 + timedelta(minutes=number),
        expires_at=expires_at,
        channel=Channel.WEB,
        notice_version="2026-01",
        evidence_ref="",
        jurisdiction="EU",
        receipt_id="rcpt_" + "b" * 26,
        actor="order-service",
    )


GRANT, WITHDRAW = ConsentAction.GRANT, ConsentAction.WITHDRAW


def test_no_events_means_no_consent_and_the_empty_version() -> None:
    consent = derive([], T0)
    assert (consent.consented, consent.opted_out, consent.version) == (
        frozenset(),
        frozenset(),
        EMPTY_VERSION,
    )


def test_the_latest_event_of_each_purpose_decides() -> None:
    events = [
        _event(1, "marketing", GRANT),
        _event(2, "sharing", GRANT),
        _event(3, "marketing", WITHDRAW),
        _event(4, "all_marketing", WITHDRAW),
        _event(5, "marketing", GRANT),
    ]
    consent = derive(events, T0 + timedelta(hours=1))
    assert consent.consented == {"marketing", "sharing"}
    assert consent.opted_out == {"all_marketing"}
    assert consent.version == "5"


def test_a_grant_counts_until_its_expiry_exactly() -> None:
    expiry = T0 + timedelta(days=30)
    events = [_event(1, "marketing", GRANT, expires_at=expiry)]
    assert derive(events, expiry - timedelta(microseconds=1)).consented == {"marketing"}
    assert derive(events, expiry).consented == frozenset()
    # An expired grant is no withdrawal: a legitimate-interest purpose is not opted out.
    assert derive(events, expiry).opted_out == frozenset()


def test_a_later_grant_lifts_an_opt_out_marker() -> None:
    events = [_event(1, "all_sharing", WITHDRAW), _event(2, "all_sharing", GRANT)]
    assert derive(events, T0 + timedelta(hours=1)).opted_out == frozenset()
