"""Consent request validation: evidence references are opaque ids and notice versions
come from configuration, so no personal data reaches the ledger."""

from __future__ import annotations

import pytest

from vault.consent import checks
from vault.consent.checks import ConsentRequest
from vault.consent.models import Channel
from vault.crypto import new_random_id


def _request(**changes: object) -> ConsentRequest:
    values: dict[str, object] = {
        "subject_id": "sub_" + "a" * 26,
        "purposes": ["marketing"],
        "channel": Channel.WEB,
        "notice_version": "2026-01",
    }
    values.update(changes)
    return ConsentRequest(**values)  # type: ignore[arg-type]


NOTICES = frozenset({"2025-06", "2026-01"})


def _common(**changes: object) -> list[str]:
    return [v.field for v in checks.common(_request(**changes), NOTICES)]


@pytest.mark.parametrize("ref", ["", "ev_" + "a" * 26, "ev_" + "z234567q" * 3 + "ab"])
def test_opaque_evidence_references_pass(ref: str) -> None:
    assert _common(evidence_ref=ref) == []


def test_the_vaults_own_random_ids_are_evidence_references() -> None:
    assert _common(evidence_ref=new_random_id("ev")) == []


@pytest.mark.parametrize(
    "ref",
    [
        # What the review got accepted: a name, a national insurance number, a path.
        "grace.hopper/078-05-1120/consent.pdf",
        "grace.hopper.078-05-1120",
        "ada.lovelace@example.com",
        "+442079460018",
        "442079460018",
        "call with Ada Lovelace",
        "QQ 12 34 56 C",
        "form-sub-7f3a",
        "https://evidence.example/f/19a7",
        "ev_" + "a" * 25,
        "ev_" + "a" * 27,
        "ev_" + "A" * 26,
        "ev_" + "1" * 26,
        "EV_" + "a" * 26,
        "x" * 200,
    ],
)
def test_evidence_references_that_could_be_personal_data_are_refused(ref: str) -> None:
    assert _common(evidence_ref=ref) == ["evidence_ref"]


@pytest.mark.parametrize(
    "notice",
    ["", "2019-01", "v2", "shown the notice to Grace Hopper", "2026-01 ", "2026-01\n"],
)
def test_only_configured_notice_versions_pass(notice: str) -> None:
    assert _common(notice_version=notice) == ["notice_version"]
    assert _common(notice_version="2025-06") == []


@pytest.mark.parametrize("code", ["EU", "US-CA", "CN", "GB"])
def test_jurisdiction_codes(code: str) -> None:
    assert _common(jurisdiction=code) == []
    assert _common(jurisdiction=code.lower())


def test_a_withdrawal_names_purposes_or_a_receipt_but_not_both() -> None:
    assert checks.withdrawal_target(_request(purposes=[]))
    assert checks.withdrawal_target(_request(receipt_id="rcpt_" + "a" * 26))
    assert checks.withdrawal_target(_request(purposes=[], receipt_id="rcpt_" + "a" * 26)) == []
    assert checks.withdrawal_target(_request(purposes=[], receipt_id="rcpt_nope"))
