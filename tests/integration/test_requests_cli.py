"""`customer-vault rights requests list|show|decide` against a running vault."""

from __future__ import annotations

import json

from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus
from customer_vault_client.gen.customervault.v1 import requests_pb2 as req
from typer.testing import CliRunner

from tests.data import ADA, DPO
from tests.integration.harness import RunningVault
from vault.cli.main import app


def test_the_dpo_lists_shows_and_decides_a_request(sqlite_vault: RunningVault) -> None:
    vault = sqlite_vault
    ada = vault.client().create(ADA).subject_id
    customer = vault.client(principal=f"customer:{ada}", roles=("customer",), subject=ada)
    created = customer.call(
        customer.customers,
        "CreateDataSubjectRequest",
        cus.CreateDataSubjectRequestRequest(
            subject_id=ada, kind=req.DATA_SUBJECT_REQUEST_KIND_RESTRICTION
        ),
    ).request
    front = vault.client(principal="shop-frontend", roles=("frontend",))
    code = front.call(
        front.customers,
        "IssueRequestVerificationCode",
        cus.IssueRequestVerificationCodeRequest(data_subject_request_id=created.request_id),
    ).code
    runner = CliRunner()
    dpo = ["--address", vault.address, "--token", vault.token(**DPO)]
    rid = created.request_id

    early = runner.invoke(
        app, ["rights", "requests", "decide", rid, "--approve", "--reason", "ok", *dpo]
    )
    assert early.exit_code == 1
    assert "FAILED_PRECONDITION" in early.output

    customer.call(
        customer.customers,
        "VerifyDataSubjectRequest",
        cus.VerifyDataSubjectRequestRequest(data_subject_request_id=rid, code=code),
    )
    listed = runner.invoke(app, ["rights", "requests", "list", *dpo])
    assert listed.exit_code == 0, listed.output
    assert rid in listed.output and "pending_decision" in listed.output
    as_json = runner.invoke(app, ["rights", "requests", "list", "--format", "json", *dpo])
    [listed_one] = json.loads(as_json.stdout)["requests"]
    assert listed_one["requestId"] == rid

    shown = runner.invoke(app, ["rights", "requests", "show", rid, *dpo])
    assert shown.exit_code == 0, shown.output
    assert "restriction" in shown.output and "GDPR" in shown.output

    decided = runner.invoke(
        app,
        ["rights", "requests", "decide", rid, "--approve", "--reason", "accuracy contested", *dpo],
    )
    assert decided.exit_code == 0, decided.output
    assert rid in decided.output and "fulfilled" in decided.output
    done = runner.invoke(
        app, ["rights", "requests", "list", "--state", "fulfilled", "--format", "json", *dpo]
    )
    [fulfilled] = json.loads(done.stdout)["requests"]
    assert fulfilled["decisionReason"] == "accuracy contested"


def test_a_customer_asks_verifies_and_lists_through_the_cli(sqlite_vault: RunningVault) -> None:
    vault = sqlite_vault
    ada = vault.client().create(ADA).subject_id
    runner = CliRunner()
    me = [
        "--address",
        vault.address,
        "--token",
        vault.token(principal=f"customer:{ada}", roles=("customer",), subject=ada),
    ]
    front = [
        "--address",
        vault.address,
        "--token",
        vault.token(principal="shop-frontend", roles=("frontend",)),
    ]
    made = runner.invoke(
        app,
        ["customers", "request", "create", ada, "--kind", "rectification",
         "--set", "city=Marylebone", "--format", "json", *me],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    rid = json.loads(made.stdout)["request"]["requestId"]
    issued = runner.invoke(
        app, ["customers", "request", "issue-code", rid, "--format", "json", *front]
    )
    assert issued.exit_code == 0, issued.output
    code = json.loads(issued.stdout)["code"]
    verified = runner.invoke(app, ["customers", "request", "verify", rid, code, *me])
    assert verified.exit_code == 0, verified.output
    assert "pending_decision" in verified.output and "(city)" in verified.output
    listed = runner.invoke(app, ["customers", "request", "list", ada, *me])
    assert rid in listed.output
    assert "Marylebone" not in listed.output  # names of fields, never values
