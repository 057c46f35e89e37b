"""`customer-vault events list` against a running vault: a page, its cursor, resuming."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from tests.data import ADA
from tests.integration.consent_support import SERVICE, grant, withdraw
from tests.integration.harness import RunningVault
from vault.cli.events import events_app

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}


def test_events_list_prints_a_page_and_the_cursor_to_resume_from(
    sqlite_vault: RunningVault,
) -> None:
    vault = sqlite_vault
    service = vault.client(**SERVICE)
    subject = service.create(ADA).subject_id
    grant(service, subject, "marketing")
    runner = CliRunner()
    frontend = ["--address", vault.address, "--token", vault.token(**FRONTEND)]

    shown = runner.invoke(events_app, ["list", *frontend])
    assert shown.exit_code == 0, shown.output
    assert "consent_granted" in shown.stdout and subject in shown.stdout
    assert "next cursor: 1" in shown.stderr

    withdraw(service, subject, "marketing")
    lines = runner.invoke(events_app, ["list", "--after", "1", "--jsonl", *frontend])
    assert lines.exit_code == 0, lines.output
    (event,) = [json.loads(line) for line in lines.stdout.splitlines()]
    assert (event["kind"], event["sequence"]) == ("EVENT_KIND_CONSENT_WITHDRAWN", "2")

    filtered = runner.invoke(
        events_app, ["list", "--kind", "consent_opted_out", "--format", "json", *frontend]
    )
    assert filtered.exit_code == 0, filtered.output
    assert json.loads(filtered.stdout).get("events", []) == []

    refused = runner.invoke(events_app, ["list", "--kind", "gossip", *frontend])
    assert refused.exit_code == 2
    denied = runner.invoke(
        events_app, ["list", "--address", vault.address, "--token", vault.token(**SERVICE)]
    )
    assert denied.exit_code == 1 and "PERMISSION_DENIED" in denied.stderr
