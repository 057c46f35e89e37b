"""Consent request validation: evidence references must not be personal data."""

from __future__ import annotations

import pytest

from vault.consent import checks
from vault.consent.checks import ConsentRequest
from vault.consent.models import Channel


def _request(**changes: object) -> ConsentRequest:
    values: dict[str, object] = {
        "subject_id": "sub_" + "a" * 26,
        "purposes": ["marketing"],
        "channel": Channel.WEB,
        "notice_version": "2026-01",
    }
    values.update(changes)
    return ConsentRequest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ref",
    ["", "form-sub-7f3a", "rec:2026/01/15#3", "https://evidence.example/f/19a7", "INC0012345"],
)
def test_opaque_evidence_references_pass(ref: str) -> None:
    assert checks.common(_request(evidence_ref=ref)) == []


@pytest.mark.parametrize(
    "ref",
    [
        "ada.lovelace@example.com",
        "+442079460018",
        "442079460018",
        "call with Ada Lovelace",
        "QQ 12 34 56 C",
        "x" * 200,
    ],
)
def test_evidence_references_that_could_be_personal_data_are_refused(ref: str) -> None:
    assert [v.field for v in checks.common(_request(evidence_ref=ref))] == ["evidence_ref"]


@pytest.mark.parametrize("code", ["EU", "US-CA", "CN", "GB"])
def test_jurisdiction_codes(code: str) -> None:
    assert checks.common(_request(jurisdiction=code)) == []
    assert checks.common(_request(jurisdiction=code.lower()))


def test_a_withdrawal_names_purposes_or_a_receipt_but_not_both() -> None:
    assert checks.withdrawal_target(_request(purposes=[]))
    assert checks.withdrawal_target(_request(receipt_id="rcpt_" + "a" * 26))
    assert checks.withdrawal_target(_request(purposes=[], receipt_id="rcpt_" + "a" * 26)) == []
    assert checks.withdrawal_target(_request(purposes=[], receipt_id="rcpt_nope"))
