"""The CLI's client commands against a running vault, through the root command (so the
lazily imported groups are what runs): subjects, disclosure, retention, customers,
policy, audit; `--format json`, `--output`, and the environment's names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.console_seed import wait_for_checkpoint
from tests.data import ADA, ADMIN, DPO, FRAUD, GRACE
from tests.integration.harness import RunningVault
from vault.cli.main import app

FRONTEND = {"principal": "shop-frontend", "roles": ("frontend",)}


def _run(vault: RunningVault, who: dict[str, Any], *args: str) -> Any:
    runner = CliRunner(env={"CUSTOMER_VAULT_TOKEN": vault.token(**who), "COLUMNS": "200"})
    return runner.invoke(app, [*args, "--address", vault.address])


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_subjects_reveal_tokenize_and_detokenize(
    sqlite_vault: RunningVault, tmp_path: Path
) -> None:
    vault, service = sqlite_vault, {"principal": "order-service", "roles": ("service",)}
    fields = [f"--field={k}={v}" for k, v in ADA.items()]
    created = _json(_run(vault, service, "subjects", "create", *fields, "--format", "json"))
    subject = created["subjectId"]

    shown = _run(
        vault,
        DPO,
        "subjects",
        "get",
        subject,
        "--view",
        "full",
        "--purpose",
        "data_subject_request",
        "--justification",
        "DSR-1",
    )
    assert shown.exit_code == 0 and subject in shown.stdout
    revealed = _json(
        _run(
            vault,
            DPO,
            "subjects",
            "reveal",
            subject,
            "--field",
            "national_id",
            "--purpose",
            "data_subject_request",
            "--justification",
            "DSR-1",
            "--format",
            "json",
        )
    )
    assert revealed["value"]["value"] == ADA["national_id"]

    out = tmp_path / "token.json"
    tokenized = _run(
        vault,
        FRAUD,
        "subjects",
        "tokenize",
        subject,
        "--field",
        "email",
        "--purpose",
        "fraud",
        "--justification",
        "case FR-1",
        "--format",
        "json",
        "--output",
        str(out),
    )
    assert tokenized.exit_code == 0, tokenized.output
    token = json.loads(out.read_text())["token"]
    assert token.startswith("tkd_")
    back = _json(
        _run(
            vault,
            FRAUD,
            "subjects",
            "detokenize",
            token,
            "--purpose",
            "fraud",
            "--justification",
            "case FR-1",
            "--format",
            "json",
        )
    )
    assert (back["subjectId"], back["value"]["value"]) == (subject, ADA["email"].strip().lower())

    lines = tmp_path / "batch.jsonl"
    lines.write_text(json.dumps(GRACE) + "\n" + json.dumps({"no_such_field": "x"}) + "\n")
    batch = _json(_run(vault, service, "subjects", "batch-create", str(lines), "--format", "json"))
    assert batch["created"] == 1 and batch["failed"] == 1

    refused = _run(
        vault,
        service,
        "subjects",
        "reveal",
        subject,
        "--field",
        "national_id",
        "--purpose",
        "support",
        "--justification",
        "curious",
    )
    assert refused.exit_code == 1
    assert "PERMISSION_DENIED" in refused.stderr


def test_retention_customers_policy_and_audit_commands(sqlite_vault: RunningVault) -> None:
    vault = sqlite_vault
    subject = vault.client().create(ADA).subject_id

    held = _json(
        _run(vault, ADMIN, "retention", "hold", subject, "--reason", "matter 1", "--format", "json")
    )
    assert held["hold"]["subjectId"] == subject
    holds = _run(vault, ADMIN, "retention", "holds")
    assert holds.exit_code == 0 and subject in holds.stdout
    assert _run(vault, ADMIN, "retention", "release", subject, "--reason", "done").exit_code == 0
    assert _json(_run(vault, ADMIN, "retention", "holds", "--format", "json")) == {}
    assert _run(vault, ADMIN, "retention", "report").exit_code == 0

    link = _json(_run(vault, FRONTEND, "customers", "create-link", subject, "--format", "json"))
    redeemed = CliRunner().invoke(
        app,
        ["customers", "redeem-link", link["code"], "--address", vault.address, "--format", "json"],
    )
    assert _json(redeemed)["subjectId"] == subject

    status = _json(_run(vault, ADMIN, "policy", "status", "--format", "json"))
    asked = _run(
        vault,
        ADMIN,
        "policy",
        "ask",
        "--principal",
        "agent-1",
        "--tenant",
        "acme",
        "--role",
        "support_agent",
        "--action",
        "subjects:erase",
    )
    assert asked.exit_code == 1 and "DENY" in asked.stdout and status["version"] in asked.stdout

    verified = _json(_run(vault, DPO, "audit", "verify-log", "--progress", "--format", "json"))
    assert verified["ok"] is True
    wait_for_checkpoint(vault)  # entry 0 has a leaf (and a checkpoint) from here on
    entry = _json(_run(vault, DPO, "audit", "entry", "0", "--format", "json"))
    assert entry["action"]


def test_the_token_comes_from_customer_vault_token_never_vault_token(
    sqlite_vault: RunningVault,
) -> None:
    vault = sqlite_vault
    subject = vault.client().create(ADA).subject_id
    args = ["subjects", "get", subject, "--address", vault.address]
    foreign = CliRunner(env={"VAULT_TOKEN": vault.token(), "CUSTOMER_VAULT_TOKEN": None})
    refused = foreign.invoke(app, args)
    assert refused.exit_code == 2
    assert "CUSTOMER_VAULT_TOKEN" in refused.stderr and "VAULT_TOKEN" in refused.stderr
    agent = {"principal": "agent-1", "roles": ("support_agent",)}
    ours = CliRunner(env={"CUSTOMER_VAULT_TOKEN": vault.token(**agent)}).invoke(app, args)
    assert ours.exit_code == 0, ours.output
    assert subject in ours.stdout


def test_export_streams_json_lines_and_local_commands_print_json(
    sqlite_vault: RunningVault, tmp_path: Path
) -> None:
    vault = sqlite_vault
    service = vault.client()
    ids = {service.create(ADA).subject_id, service.create(GRACE).subject_id}
    out = tmp_path / "export.jsonl"
    exported = _run(
        vault,
        DPO,
        "subjects",
        "export",
        "--view",
        "full",
        "--purpose",
        "data_subject_request",
        "--justification",
        "DSR-1",
        "--output",
        str(out),
    )
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["meta"]["subjectId"] for line in lines} == ids

    data = ["--data-dir", str(vault.settings.data_dir)]
    status = CliRunner().invoke(app, ["keys", "status", "--format", "json", *data])
    document = _json(status)
    assert document["kek"]["active_version"] in document["kek"]["versions"]
    checked = CliRunner().invoke(
        app,
        [
            "policy",
            "check",
            "--principal",
            "agent-1",
            "--tenant",
            "acme",
            "--role",
            "support_agent",
            "--action",
            "subjects:erase",
            "--format",
            "json",
        ],
    )
    assert checked.exit_code == 1 and json.loads(checked.stdout)["allowed"] is False
