"""`customer-vault audit query|history|export|checkpoint` through the AuditService of a
real vault: token-authenticated, audited, newest first, paged by cursor, 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.console_seed import PEOPLE, seed, wait_for_checkpoint
from tests.integration.harness import RunningVault
from vault.cli.main import app


@pytest.fixture
def seeded(sqlite_vault: RunningVault) -> tuple[RunningVault, dict[str, str]]:
    subjects = seed(sqlite_vault)
    wait_for_checkpoint(sqlite_vault)
    return sqlite_vault, subjects


def _run(vault: RunningVault, who: str, *args: str) -> object:
    runner = CliRunner(env={"COLUMNS": "80", "CUSTOMER_VAULT_TOKEN": vault.token(**PEOPLE[who])})
    return runner.invoke(app, ["audit", *args, "--address", vault.address])


def test_query_is_newest_first_fits_80_columns_and_pages_by_cursor(
    seeded: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = seeded
    result = _run(vault, "dpo", "query", "--limit", "6")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.rstrip("\n").split("\n")  # type: ignore[attr-defined]
    assert max(len(line) for line in lines) <= 80
    assert len(lines) <= 2 + 6 * 4  # title, header, at most four lines an entry (was 98)
    assert "more: add --cursor" in result.stderr  # type: ignore[attr-defined]

    seen: list[int] = []
    cursor = ""
    while True:
        args = ["query", "--limit", "4", "--format", "json"] + (
            ["--cursor", cursor] if cursor else []
        )
        result = _run(vault, "dpo", *args)
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        document = json.loads(result.stdout)  # type: ignore[attr-defined]
        seen += [e["index"] for e in document["entries"]]
        if not document["next_cursor"]:
            break
        cursor = document["next_cursor"]
    integrated = [i for i in seen if i is not None]
    assert integrated == sorted(integrated, reverse=True) and len(set(seen)) == len(seen)
    assert len(seen) >= 10

    oldest = json.loads(
        _run(vault, "dpo", "query", "--oldest-first", "--limit", "2", "--format", "json").stdout  # type: ignore[attr-defined]
    )
    assert [e["index"] for e in oldest["entries"]] == [0, 1]


def test_filters_history_and_every_call_audited_as_its_caller(
    seeded: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, subjects = seeded
    ada = subjects["ada"]
    result = _run(
        vault,
        "compliance",
        "query",
        "--decision",
        "deny",
        "--role",
        "support_agent",
        "--format",
        "json",
    )
    entries = json.loads(result.stdout)["entries"]  # type: ignore[attr-defined]
    assert len(entries) == 2
    assert all(e["actor"] == "agent-7" and e["decision"] == "deny" for e in entries)
    assert entries[0]["sentence"].startswith("agent-7 (support agent) read the support view")

    result = _run(vault, "dpo", "history", ada)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # type: ignore[attr-defined]
    assert "exported all data of" in text and "DENY" in text
    with vault.app.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT actor, action FROM audit_entries WHERE action IN "
                "('QueryEntries', 'SubjectHistory')"
            )
        ).all()
    assert ("cmp-2", "QueryEntries") in rows and ("dpo-1", "SubjectHistory") in rows


def test_a_role_without_audit_read_is_refused_and_no_token_is_a_usage_error(
    seeded: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = seeded
    result = _run(vault, "agent", "query")
    assert result.exit_code == 1
    assert "PERMISSION_DENIED" in result.stderr  # type: ignore[attr-defined]
    runner = CliRunner(env={"COLUMNS": "80", "CUSTOMER_VAULT_TOKEN": ""})
    result = runner.invoke(app, ["audit", "query", "--address", vault.address])
    assert result.exit_code == 2 and "no token" in result.stderr


def test_export_and_checkpoint_through_the_vault(
    seeded: tuple[RunningVault, dict[str, str]], tmp_path: Path
) -> None:
    vault, subjects = seeded
    result = _run(vault, "dpo", "export", "--subject", subjects["ada"])
    records = [json.loads(line) for line in result.stdout.splitlines()]  # type: ignore[attr-defined]
    assert records and all(subjects["ada"] in r["subject_ids"] for r in records)
    # A journal for the restore runbook: each entry keeps the MAC its leaf covers.
    assert all(r["mac"] and len(bytes.fromhex(r["mac"])) == 32 for r in records)
    out = tmp_path / "report.html"
    result = _run(
        vault,
        "dpo",
        "export",
        "--subject",
        subjects["ada"],
        "--format",
        "html",
        "--output",
        str(out),
    )
    assert result.exit_code == 0 and "Log checkpoint" in out.read_text()

    key = str(vault.settings.audit_public_key)
    result = _run(vault, "dpo", "checkpoint", "--public-key", key)
    assert result.exit_code == 0
    assert result.stdout.startswith("customer-vault/audit\n")  # type: ignore[attr-defined]
    result = _run(vault, "dpo", "checkpoint", "--public-key", key, "--output", str(tmp_path))
    assert result.exit_code == 0 and list(tmp_path.glob("checkpoint-*.txt"))


def test_entries_stay_in_their_tenant(seeded: tuple[RunningVault, dict[str, str]]) -> None:
    from vault.api.client import VaultClientError
    from vault.api.console_client import ConsoleClient, EntryFilters

    vault, _ = seeded
    other = vault.token(principal="dpo-9", tenant="globex", roles=("dpo",))
    mine = vault.token(**PEOPLE["dpo"])
    with ConsoleClient(vault.address, mine) as client:
        assert client.entry(0).entry.tenant == "acme"
    with ConsoleClient(vault.address, other) as client:
        with pytest.raises(VaultClientError) as refused:
            client.entry(0)
        assert refused.value.code == "NOT_FOUND"
        page = client.query(EntryFilters(role="support_agent"), page_size=50)
        assert page.entries == ()
        with pytest.raises(VaultClientError) as bad:
            client.entry(-1)
        assert bad.value.code == "INVALID_ARGUMENT"


def test_verification_streams_its_progress_then_its_result(
    seeded: tuple[RunningVault, dict[str, str]],
) -> None:
    from vault.api.console_client import ConsoleClient

    vault, _ = seeded
    with ConsoleClient(vault.address, vault.token(**PEOPLE["dpo"])) as client:
        steps = list(client.verify_log_with_progress())
    assert steps[-1].result is not None and steps[-1].result.ok
    progress = steps[:-1]
    assert progress and all(s.result is None for s in progress)
    assert [s.checked for s in progress] == sorted(s.checked for s in progress)
    assert progress[-1].checked == progress[-1].total == steps[-1].result.entries_checked
    with vault.app.db.engine.connect() as conn:
        extra = conn.execute(
            sa.text("SELECT count(*) FROM audit_entries WHERE action = 'VerifyLogWithProgress'")
        ).scalar_one()
    assert extra == 1
