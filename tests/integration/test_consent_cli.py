"""`customer-vault consent ...` and `rights ...` against a running vault."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.data import ADA, DPO
from tests.integration.harness import RunningVault
from vault.cli.consent import consent_app
from vault.cli.rights import rights_app
from vault.consent.checks import is_evidence_ref


def test_consent_and_rights_commands_round_trip(sqlite_vault: RunningVault, tmp_path: Path) -> None:
    vault = sqlite_vault
    subject = vault.client().create(ADA).subject_id
    runner = CliRunner()
    service = ["--address", vault.address, "--token", vault.token()]
    dpo = ["--address", vault.address, "--token", vault.token(**DPO)]
    receipt = tmp_path / "receipt.json"

    minted = runner.invoke(consent_app, ["new-evidence-ref"])
    assert minted.exit_code == 0 and is_evidence_ref(minted.stdout.strip()), minted.output
    granted = runner.invoke(
        consent_app,
        [
            "grant",
            subject,
            "--purpose",
            "marketing",
            "--channel",
            "app",
            "--notice-version",
            "2026-01",
            "--evidence-ref",
            minted.stdout.strip(),
            "--expires",
            "365d",
            "--output",
            str(receipt),
            *service,
        ],
    )
    assert granted.exit_code == 0, granted.output
    assert "grant marketing" in granted.output
    verified = runner.invoke(
        consent_app,
        ["verify-receipt", str(receipt), "--public-key", str(vault.settings.receipt_public_key)],
    )
    assert verified.exit_code == 0, verified.output

    opted = runner.invoke(
        consent_app,
        [
            "opt-out",
            subject,
            "--notice-version",
            "2026-01",
            "--channel",
            "gpc",
            "--format",
            "json",
            *service,
        ],
    )
    assert opted.exit_code == 0, opted.output
    assert [e["purpose"] for e in json.loads(opted.output)["events"]] == ["all_sharing"]

    status = runner.invoke(consent_app, ["status", subject, "--format", "json", *service])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["optedOutMarkers"] == ["all_sharing"]
    history = runner.invoke(consent_app, ["history", subject, "--format", "json", *service])
    assert history.exit_code == 0, history.output
    events = json.loads(history.output)["events"]
    assert [e["purpose"] for e in events] == ["marketing", "all_sharing"]
    assert runner.invoke(consent_app, ["history", subject, *service]).exit_code == 0

    bad = runner.invoke(
        consent_app,
        [
            "grant",
            subject,
            "--purpose",
            "astrology",
            "--channel",
            "web",
            "--notice-version",
            "2026-01",
            *service,
        ],
    )
    assert bad.exit_code == 1
    assert "INVALID_ARGUMENT" in bad.output and "purposes[0]" in bad.output

    package = tmp_path / "package.json"
    access = runner.invoke(
        rights_app, ["access", subject, "--reason", "DSR-11", "--output", str(package), *dpo]
    )
    assert access.exit_code == 0, access.output
    assert json.loads(package.read_text())["fields"]["email"]["value"] == "ada.lovelace@example.com"
    for command in (["restrict"], ["lift-restriction"], ["erase"]):
        done = runner.invoke(rights_app, [*command, subject, "--reason", "DSR-11", *dpo])
        assert done.exit_code == 0, done.output
    assert "erased" in done.output


def test_verify_package_accepts_the_signed_access_package_and_refuses_an_edit(
    vault: RunningVault, tmp_path: Path
) -> None:
    from customer_vault_client.gen.customervault.v1 import rights_pb2

    subject = vault.client().create(ADA).subject_id
    dpo = vault.client(**DPO)
    response = dpo.call(
        dpo.rights,
        "ExportSubjectData",
        rights_pb2.ExportSubjectDataRequest(subject_id=subject, reason="DSR-7"),
    )
    signed = tmp_path / "package.json"
    signed.write_text(response.signed_package + "\n")
    key = str(vault.settings.receipt_public_key)
    runner = CliRunner()
    ok = runner.invoke(consent_app, ["verify-package", str(signed), "--public-key", key])
    assert ok.exit_code == 0, ok.output
    assert f"valid access package for {subject}" in ok.output
    signed.write_text(response.signed_package.replace("Lovelace", "Lovelacf"))
    bad = runner.invoke(consent_app, ["verify-package", str(signed), "--public-key", key])
    assert bad.exit_code == 1 and "INVALID" in bad.output
