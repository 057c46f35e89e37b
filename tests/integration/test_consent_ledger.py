"""The consent ledger through the real server: append-only, audited, bad input refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb

import audit
from tests.data import ADA, DPO
from tests.integration.consent_support import (
    AGENT,
    ANALYST,
    EVIDENCE,
    grant,
    ledger_rows,
    opt_out,
    receipt_rows,
    source,
    ts,
    withdraw,
)
from tests.integration.harness import RunningVault
from vault.api.client import VaultClient, VaultClientError

MISSING = "sub_" + "a" * 26


def _grant_request(subject: str, **changes: Any) -> cpb.GrantConsentRequest:
    values: dict[str, Any] = {"subject_id": subject, "purposes": ["marketing"], "source": source()}
    values.update(changes)
    return cpb.GrantConsentRequest(**values)


BAD_GRANTS: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "undeclared purpose": (
        lambda s: _grant_request(s, purposes=["astrology"]),
        "INVALID_ARGUMENT",
        "purposes[0]",
    ),
    "purpose consent does not govern": (
        lambda s: _grant_request(s, purposes=["support"]),
        "INVALID_ARGUMENT",
        "purposes[0]",
    ),
    "no purpose": (lambda s: _grant_request(s, purposes=[]), "INVALID_ARGUMENT", "purposes"),
    "expiry in the past": (
        lambda s: _grant_request(s, expires_at=ts(datetime.now(UTC) - timedelta(days=1))),
        "INVALID_ARGUMENT",
        "expires_at",
    ),
    "no channel": (
        lambda s: _grant_request(s, source=cpb.ConsentSource(notice_version="2026-01")),
        "INVALID_ARGUMENT",
        "channel",
    ),
    "no notice version": (
        lambda s: _grant_request(s, source=source(notice_version="")),
        "INVALID_ARGUMENT",
        "notice_version",
    ),
    "e-mail as evidence": (
        lambda s: _grant_request(s, source=source(evidence_ref="ada@example.com")),
        "INVALID_ARGUMENT",
        "evidence_ref",
    ),
    "phone number as evidence": (
        lambda s: _grant_request(s, source=source(evidence_ref="call-442079460018")),
        "INVALID_ARGUMENT",
        "evidence_ref",
    ),
    # Personal data the review slipped into the ledger (it survived erasure in a receipt).
    "name and national id as evidence": (
        lambda s: _grant_request(
            s, source=source(evidence_ref="grace.hopper/078-05-1120/consent-form.pdf")
        ),
        "INVALID_ARGUMENT",
        "evidence_ref",
    ),
    "free-text notice version": (
        lambda s: _grant_request(
            s, source=source(notice_version="read-to-grace.hopper:1906-12-09")
        ),
        "INVALID_ARGUMENT",
        "notice_version",
    ),
    "unconfigured notice version": (
        lambda s: _grant_request(s, source=source(notice_version="2019-01")),
        "INVALID_ARGUMENT",
        "notice_version",
    ),
    "missing subject": (lambda s: _grant_request(MISSING), "NOT_FOUND", ""),
    "malformed subject": (lambda s: _grant_request("ada@example.com"), "NOT_FOUND", ""),
    "no subject": (lambda s: _grant_request(""), "INVALID_ARGUMENT", "subject_id"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRANTS))
def test_bad_consent_input_is_refused_and_appends_nothing(vault: RunningVault, case: str) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    build, code, field = BAD_GRANTS[case]
    with pytest.raises(VaultClientError) as caught:
        service.call(service.consent, "GrantConsent", build(subject))
    assert caught.value.code == code
    if field:
        assert field in [f for f, _ in caught.value.violations]
    assert ledger_rows(vault) == 0 and receipt_rows(vault) == 0


def test_consent_of_another_tenants_subject_is_not_found(vault: RunningVault) -> None:
    subject = vault.client().create(ADA).subject_id
    other = vault.client(tenant="globex")
    with pytest.raises(VaultClientError) as caught:
        grant(other, subject, "marketing")
    assert caught.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as caught:
        other.call(
            other.consent, "ListConsentEvents", cpb.ListConsentEventsRequest(subject_id=subject)
        )
    assert caught.value.code == "NOT_FOUND"
    assert ledger_rows(vault) == 0


def test_consent_changes_need_the_consent_write_permission(vault: RunningVault) -> None:
    subject = vault.client().create(ADA).subject_id
    for who in (ANALYST, AGENT):
        with pytest.raises(VaultClientError) as caught:
            grant(vault.client(**who), subject, "marketing")
        assert caught.value.code == "PERMISSION_DENIED"
    assert ledger_rows(vault) == 0
    # A support agent may read consent, an analyst may not.
    agent = vault.client(**AGENT)
    agent.call(agent.consent, "GetConsent", cpb.GetConsentRequest(subject_id=subject))
    analyst = vault.client(**ANALYST)
    with pytest.raises(VaultClientError) as caught:
        analyst.call(analyst.consent, "GetConsent", cpb.GetConsentRequest(subject_id=subject))
    assert caught.value.code == "PERMISSION_DENIED"


def test_the_consent_ledger_only_grows_and_each_change_is_audited_with_it(
    vault: RunningVault,
) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    first = grant(service, subject, "marketing", "personalization")
    second = withdraw(service, subject, "marketing")
    third = opt_out(service, subject, "all_marketing", "all_sharing")
    assert ledger_rows(vault) == 5 and receipt_rows(vault) == 3

    history = _history(vault.client(**DPO), subject)
    assert [(e.purpose, e.action) for e in history] == [
        ("marketing", cpb.CONSENT_ACTION_GRANT),
        ("personalization", cpb.CONSENT_ACTION_GRANT),
        ("marketing", cpb.CONSENT_ACTION_WITHDRAW),
        ("all_marketing", cpb.CONSENT_ACTION_WITHDRAW),
        ("all_sharing", cpb.CONSENT_ACTION_WITHDRAW),
    ]
    sequences = [e.sequence for e in history]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    assert [first.consent_version, second.consent_version, third.consent_version] == [
        str(sequences[1]),
        str(sequences[2]),
        str(sequences[4]),
    ]
    assert {e.source.evidence_ref for e in history} == {EVIDENCE}
    assert {e.recorded_by for e in history} == {"order-service"}

    changes = [
        e.entry
        for e in audit.iter_query(vault.app.db.engine, subject_id=subject)
        if e.entry.action in {"GrantConsent", "WithdrawConsent", "OptOut"}
    ]
    assert [(c.action, c.consent_version, c.extra["receipt_id"]) for c in changes] == [
        ("GrantConsent", first.consent_version, first.receipt.receipt_id),
        ("WithdrawConsent", second.consent_version, second.receipt.receipt_id),
        ("OptOut", third.consent_version, third.receipt.receipt_id),
    ]


def test_consent_state_at_a_past_moment_is_rebuilt_from_the_ledger(vault: RunningVault) -> None:
    service, dpo = vault.client(), vault.client(**DPO)
    subject = service.create(ADA).subject_id
    grant(service, subject, "marketing")
    granted = _history(dpo, subject)[-1].recorded_at.ToDatetime(tzinfo=UTC)
    withdraw(service, subject, "marketing")

    def state(at: datetime | None) -> cpb.GetConsentResponse:
        request = cpb.GetConsentRequest(subject_id=subject, at=ts(at) if at else None)
        response: cpb.GetConsentResponse = dpo.call(dpo.consent, "GetConsent", request)
        return response

    def marketing(status: cpb.GetConsentResponse) -> bool:
        return next(p for p in status.purposes if p.purpose == "marketing").effective

    assert not marketing(state(granted - timedelta(microseconds=1)))
    assert marketing(state(granted))
    assert not marketing(state(None))
    with pytest.raises(VaultClientError) as caught:
        state(datetime.now(UTC) + timedelta(days=1))
    assert caught.value.code == "INVALID_ARGUMENT"


def test_consent_of_an_erased_subject_cannot_change_but_can_be_read(vault: RunningVault) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    grant(service, subject, "marketing")
    service.erase(subject, reason="DSR-5")
    with pytest.raises(VaultClientError) as caught:
        grant(service, subject, "personalization")
    assert caught.value.code == "FAILED_PRECONDITION"
    assert ledger_rows(vault) == 1  # kept: ids and purposes only, no personal data
    assert len(_history(vault.client(**DPO), subject)) == 1


def test_consent_ledger_rows_are_never_updated(vault: RunningVault) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    grant(service, subject, "marketing")
    before = _rows(vault)
    withdraw(service, subject, "marketing")
    opt_out(service, subject, "all_sharing")
    after = _rows(vault)
    assert after[: len(before)] == before


def _history(client: VaultClient, subject: str) -> list[cpb.ConsentEvent]:
    response = client.call(
        client.consent, "ListConsentEvents", cpb.ListConsentEventsRequest(subject_id=subject)
    )
    return list(response.events)


def _rows(vault: RunningVault) -> list[tuple[Any, ...]]:
    with vault.app.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM consent_events ORDER BY id"))]
