"""Signed consent receipts: Kantara fields, offline verification, any edited byte fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from typer.testing import CliRunner

from tests.data import ADA
from tests.integration.consent_support import grant, ledger_rows, receipt_rows, source
from tests.integration.harness import RunningVault
from vault.api.client import VaultClientError
from vault.cli.consent import consent_app
from vault.consent.receipts import ReceiptError, verify_document
from vault.crypto import generate_ed25519_keypair


def test_a_consent_receipt_carries_the_kantara_fields_and_verifies(vault: RunningVault) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    granted = grant(service, subject, "marketing", "sharing")
    document = granted.receipt.document
    receipt = verify_document(document.encode(), vault.settings.receipt_public_key.read_bytes())

    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["consentReceiptID"] == granted.receipt.receipt_id
    assert receipt["piiPrincipalId"] == subject
    assert receipt["jurisdiction"] == "EU"
    assert receipt["collectionMethod"] == "web"
    assert isinstance(receipt["consentTimestamp"], int)
    assert receipt["piiControllers"][0]["piiController"] == vault.settings.consent_controller
    [service_entry] = receipt["services"]
    purposes = {p["purpose"]: p for p in service_entry["purposes"]}
    assert set(purposes) == {"marketing", "sharing"}
    assert purposes["sharing"]["thirdPartyDisclosure"] is True
    # Only what the purposes can use under the policy: the marketing view's fields; the
    # national id (restricted: never for marketing or sharing) and the phone (in no view
    # marketing may use) are not claimed.
    usable = [
        "given_name",
        "family_name",
        "email",
        "date_of_birth",
        "city",
        "postal_code",
        "country",
        "loyalty_tier",
    ]
    assert purposes["marketing"]["piiCategory"] == usable
    assert purposes["sharing"]["piiCategory"] == usable
    assert receipt["sensitive"] is False and receipt["spiCat"] == []
    extension = receipt["x-customervault"]
    assert extension["noticeVersion"] == "2026-01"
    assert extension["consentVersion"] == granted.consent_version
    # The subject is referred to by its random id only: no personal data in a receipt.
    for value in ("Lovelace", "ada.lovelace", "Ada.Lovelace", "7946", "QQ 12"):
        assert value not in document


def test_any_edited_byte_of_a_consent_receipt_fails_verification(vault: RunningVault) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    document = grant(service, subject, "marketing").receipt.document.encode()
    public = vault.settings.receipt_public_key.read_bytes()
    verify_document(document, public)
    for position in range(len(document)):
        edited = bytearray(document)
        edited[position] ^= 0x01
        with pytest.raises(ReceiptError):
            verify_document(bytes(edited), public)
    # Reformatting is an edit too: only the canonical bytes that were signed verify.
    pretty = json.dumps(json.loads(document), indent=2).encode()
    with pytest.raises(ReceiptError):
        verify_document(pretty, public)


def test_a_consent_receipt_does_not_verify_with_another_key(
    vault: RunningVault, tmp_path: Path
) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    document = grant(service, subject, "marketing").receipt.document.encode()
    generate_ed25519_keypair(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    with pytest.raises(ReceiptError):
        verify_document(document, (tmp_path / "other.pub.pem").read_bytes())


def test_consent_verify_receipt_command_works_offline(vault: RunningVault, tmp_path: Path) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    granted = grant(service, subject, "marketing")
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(granted.receipt.document + "\n")
    runner = CliRunner()

    ok = runner.invoke(
        consent_app,
        [
            "verify-receipt",
            str(receipt_file),
            "--public-key",
            str(vault.settings.receipt_public_key),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert granted.receipt.receipt_id in ok.output
    by_data_dir = runner.invoke(
        consent_app,
        ["verify-receipt", str(receipt_file), "--data-dir", str(vault.settings.data_dir)],
    )
    assert by_data_dir.exit_code == 0, by_data_dir.output

    receipt_file.write_text(granted.receipt.document.replace('"marketing"', '"marketinG"') + "\n")
    bad = runner.invoke(
        consent_app,
        [
            "verify-receipt",
            str(receipt_file),
            "--public-key",
            str(vault.settings.receipt_public_key),
        ],
    )
    assert bad.exit_code == 1
    assert "INVALID" in bad.output


def test_consent_receipts_are_kept_and_withdrawable_only_by_their_own_subject(
    vault: RunningVault,
) -> None:
    service = vault.client()
    ada = service.create(ADA).subject_id
    other = service.create({**ADA, "email": "grace@example.com"}).subject_id
    granted = grant(service, ada, "marketing", "personalization")
    receipt_id = granted.receipt.receipt_id

    fetched = service.call(
        service.consent,
        "GetConsentReceipt",
        cpb.GetConsentReceiptRequest(subject_id=ada, receipt_id=receipt_id),
    )
    assert fetched.receipt.document == granted.receipt.document

    rows, receipts = ledger_rows(vault), receipt_rows(vault)
    with pytest.raises(VaultClientError) as caught:
        service.call(
            service.consent,
            "GetConsentReceipt",
            cpb.GetConsentReceiptRequest(subject_id=other, receipt_id=receipt_id),
        )
    assert caught.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as caught:
        service.call(
            service.consent,
            "WithdrawConsent",
            cpb.WithdrawConsentRequest(subject_id=other, receipt_id=receipt_id, source=source()),
        )
    assert caught.value.code == "NOT_FOUND"
    assert (ledger_rows(vault), receipt_rows(vault)) == (rows, receipts)

    withdrawn = service.call(
        service.consent,
        "WithdrawConsent",
        cpb.WithdrawConsentRequest(subject_id=ada, receipt_id=receipt_id, source=source()),
    )
    assert sorted(e.purpose for e in withdrawn.events) == ["marketing", "personalization"]
    assert {e.action for e in withdrawn.events} == {cpb.CONSENT_ACTION_WITHDRAW}
    verify_document(
        withdrawn.receipt.document.encode(), vault.settings.receipt_public_key.read_bytes()
    )
