"""`serve` warns while the controller details receipts state are placeholders."""

from __future__ import annotations

from pathlib import Path

from vault.config import Settings


def test_default_controller_details_are_placeholders(tmp_path: Path) -> None:
    defaults = Settings(data_dir=tmp_path)
    assert defaults.receipt_placeholders() == [
        "consent_controller",
        "consent_controller_contact",
        "consent_policy_url",
    ]
    configured = Settings(
        data_dir=tmp_path,
        consent_controller="Acme Shop Ltd",
        consent_controller_contact="privacy@acme.example",
        consent_policy_url="https://acme.example/privacy",
    )
    assert configured.receipt_placeholders() == []
