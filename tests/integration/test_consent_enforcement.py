"""Consent and opt-outs are enforced at read time, through the real server, uncached."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb

import audit
from tests.data import ADA, DPO
from tests.integration.consent_support import (
    ANALYST,
    MARKETER,
    MovableClock,
    grant,
    opt_out,
    ts,
    withdraw,
    withheld,
)
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClientError
from vault.context import CallContext
from vault.principal import Principal


def _entries(vault: RunningVault, action: str) -> list[audit.AuditEntry]:
    return [e.entry for e in audit.iter_query(vault.app.db.engine, action=action)]


def test_consent_purpose_is_withheld_before_a_grant_and_after_a_withdrawal(
    vault: RunningVault,
) -> None:
    service, marketer = vault.client(), vault.client(**MARKETER)
    subject = service.create(ADA).subject_id

    before = marketer.get(subject, "marketing", "marketing")
    assert not before.fields
    assert set(withheld(before).values()) == {"consent"}

    granted = grant(service, subject, "marketing")
    shown = marketer.get(subject, "marketing", "marketing")
    assert shown.fields["email"].value == "ada.lovelace@example.com"
    assert not withheld(shown)

    withdrawn = withdraw(service, subject, "marketing")
    after = marketer.get(subject, "marketing", "marketing")
    assert not after.fields
    assert set(withheld(after).values()) == {"consent"}

    # Each read's audit entry names the ledger version it relied on.
    versions = [e.consent_version for e in _entries(vault, "GetSubject")]
    assert versions == ["0", granted.consent_version, withdrawn.consent_version]
    assert int(withdrawn.consent_version) > int(granted.consent_version)


def test_consent_also_binds_searches(vault: RunningVault) -> None:
    service, marketer = vault.client(), vault.client(**MARKETER)
    subject = service.create(ADA).subject_id
    # without consent a search does not even confirm the subject exists
    assert marketer.find("email", ADA["email"], "marketing", "marketing") == []
    granted = grant(service, subject, "marketing")
    [found] = marketer.find("email", ADA["email"], "marketing", "marketing")
    assert found.fields["email"].value == "ada.lovelace@example.com"
    assert _entries(vault, "FindSubjects")[-1].consent_version == granted.consent_version


@pytest.fixture
def clocked_vault(tmp_path: Path, database_url: str | None) -> Iterator[RunningVault]:
    with running_vault(settings_for(tmp_path / "data", database_url), clock=MovableClock()) as v:
        yield v


def test_consent_lapses_at_its_expiry(clocked_vault: RunningVault) -> None:
    vault = clocked_vault
    clock = vault.app.clock
    assert isinstance(clock, MovableClock)
    service = vault.client()
    subject = service.create(ADA).subject_id
    granted_at = clock.now()
    grant(service, subject, "marketing", expires_at=granted_at + timedelta(days=1))
    assert vault.client(**MARKETER).get(subject, "marketing", "marketing").fields

    clock.advance(timedelta(days=2))
    lapsed = vault.client(**MARKETER).get(subject, "marketing", "marketing")
    assert not lapsed.fields
    assert set(withheld(lapsed).values()) == {"consent"}

    # The ledger rebuilds either moment: granted then, lapsed now.
    dpo = vault.client(**DPO)
    then = dpo.call(
        dpo.consent,
        "GetConsent",
        cpb.GetConsentRequest(subject_id=subject, at=ts(granted_at + timedelta(hours=1))),
    )
    now = dpo.call(dpo.consent, "GetConsent", cpb.GetConsentRequest(subject_id=subject))
    assert _purpose(then, "marketing").effective
    assert not _purpose(now, "marketing").effective
    assert not _purpose(now, "marketing").granted


def test_legitimate_interest_purpose_is_visible_until_an_opt_out(vault: RunningVault) -> None:
    service, analyst = vault.client(), vault.client(**ANALYST)
    subject = service.create(ADA).subject_id
    assert analyst.get(subject, "analytics", "analytics").fields  # no grant needed

    opt_out(service, subject, "all_marketing")  # analytics is not a marketing purpose
    assert analyst.get(subject, "analytics", "analytics").fields

    opt_out(service, subject, "analytics")
    objected = analyst.get(subject, "analytics", "analytics")
    assert not objected.fields
    assert set(withheld(objected).values()) == {"consent"}
    status = service.call(service.consent, "GetConsent", cpb.GetConsentRequest(subject_id=subject))
    assert _purpose(status, "analytics").blocked_by == "analytics"
    assert sorted(status.opted_out_markers) == ["all_marketing"]


def test_a_gpc_signal_opts_out_of_every_sharing_purpose(vault: RunningVault) -> None:
    service, marketer = vault.client(), vault.client(**MARKETER)
    subject = service.create(ADA).subject_id
    grant(service, subject, "sharing", "marketing")
    [shared] = list(marketer.export("marketing", "sharing"))
    assert shared.fields

    signal = opt_out(service, subject, channel=cpb.CONSENT_CHANNEL_GPC)
    assert [e.purpose for e in signal.events] == ["all_sharing"]
    [shared] = list(marketer.export("marketing", "sharing"))
    assert not shared.fields
    assert set(withheld(shared).values()) == {"consent"}
    # Marketing is not a sharing purpose: the consent to it still stands.
    assert marketer.get(subject, "marketing", "marketing").fields
    status = service.call(service.consent, "GetConsent", cpb.GetConsentRequest(subject_id=subject))
    assert _purpose(status, "sharing").granted
    assert not _purpose(status, "sharing").effective
    assert _purpose(status, "sharing").blocked_by == "all_sharing"

    with pytest.raises(VaultClientError) as caught:
        service.call(
            service.consent,
            "GrantConsent",
            cpb.GrantConsentRequest(
                subject_id=subject,
                purposes=["sharing"],
                source=cpb.ConsentSource(channel=cpb.CONSENT_CHANNEL_GPC, notice_version="2026-01"),
            ),
        )
    assert caught.value.code == "INVALID_ARGUMENT"


@pytest.fixture
def small_batch_vault(tmp_path: Path, database_url: str | None) -> Iterator[RunningVault]:
    settings = settings_for(tmp_path / "data", database_url, export_batch_size=1)
    with running_vault(settings) as running:
        yield running


def test_a_withdrawal_binds_the_rest_of_a_running_consent_export(
    small_batch_vault: RunningVault,
) -> None:
    vault = small_batch_vault
    service = vault.client()
    subjects = sorted(service.create(ADA).subject_id for _ in range(3))
    for subject in subjects:
        grant(service, subject, "marketing")
    principal = Principal(
        "mkt-1",
        "acme",
        frozenset({"marketing"}),
        MappingProxyType({"department": "marketing", "clearance": "2"}),
    )
    call = CallContext(
        "/customervault.v1.VaultService/ExportView", "req-export", principal=principal
    )
    stream = vault.app.reader.export(call, "marketing", "marketing", [])
    first = next(stream)
    assert first.meta.id == subjects[0] and first.fields
    withdraw(service, subjects[1], "marketing")  # mid-export, through the server
    rest = list(stream)
    assert [v.meta.id for v in rest] == subjects[1:]
    assert not rest[0].fields and set(rest[0].withheld.values()) == {"consent"}
    assert set(rest[1].fields) == set(first.fields)


def _purpose(status: cpb.GetConsentResponse, name: str) -> cpb.PurposeConsent:
    return next(p for p in status.purposes if p.purpose == name)
