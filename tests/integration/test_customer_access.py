"""Customers acting for themselves, through the real server: a token bound to one
subject, one-time links, and the attacks on both (another subject, replay, expiry)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb

import audit
from tests.data import ADA, GRACE
from tests.integration.consent_support import MARKETER, SERVICE, MovableClock, grant, source
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClient, VaultClientError
from vault.principal import Principal

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}
SELF = "SELF-1: the customer's own request"


def _issue(vault: RunningVault, subject_id: str, **caller: Any) -> str:
    client = vault.client(**(caller or FRONTEND))
    response = client.call(
        client.customers,
        "IssueCustomerToken",
        cus.IssueCustomerTokenRequest(subject_id=subject_id),
    )
    return str(response.token)


def _as(vault: RunningVault, token: str) -> VaultClient:
    client = VaultClient(vault.address, token)
    vault.clients.append(client)
    return client


def _link(vault: RunningVault, subject_id: str, ttl_seconds: int = 0) -> str:
    client = vault.client(**FRONTEND)
    response = client.call(
        client.customers,
        "CreateCustomerLink",
        cus.CreateCustomerLinkRequest(subject_id=subject_id, ttl_seconds=ttl_seconds),
    )
    return str(response.code)


def _redeem(vault: RunningVault, code: str) -> cus.RedeemCustomerLinkResponse:
    anonymous = _as(vault, "")
    response: cus.RedeemCustomerLinkResponse = anonymous.call(
        anonymous.customers, "RedeemCustomerLink", cus.RedeemCustomerLinkRequest(code=code)
    )
    return response


def _entries(vault: RunningVault, action: str) -> list[audit.AuditEntry]:
    return [e.entry for e in audit.iter_query(vault.app.db.engine, action=action)]


def test_a_customer_token_reads_its_own_subject_through_the_self_view(
    vault: RunningVault,
) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(ADA).subject_id
    customer = _as(vault, _issue(vault, ada))

    view = customer.get(ada, "self", "data_subject_request", SELF)
    shown = {name: f.value for name, f in view.fields.items()}
    assert shown["email"] == "ada.lovelace@example.com"
    assert shown["national_id"] != ADA["national_id"]  # last four only, on a page
    assert shown["national_id"].startswith("*")

    [issued] = _entries(vault, "IssueCustomerToken")
    assert (issued.actor, issued.decision, issued.subject_ids) == ("shop-frontend", "allow", (ada,))
    read = _entries(vault, "GetSubject")[-1]
    assert (read.actor, read.actor_roles, read.decision) == (
        f"customer:{ada}",
        ("customer",),
        "allow",
    )


def test_a_customer_token_cannot_read_or_change_another_subject(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(ADA).subject_id
    grace = service.create(GRACE).subject_id
    customer = _as(vault, _issue(vault, ada))

    with pytest.raises(VaultClientError) as read:
        customer.get(grace, "self", "data_subject_request", SELF)
    assert read.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as change:
        customer.call(
            customer.consent,
            "WithdrawConsent",
            cpb.WithdrawConsentRequest(subject_id=grace, purposes=["marketing"], source=source()),
        )
    assert change.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as activity:
        customer.record_activity(grace)
    assert activity.value.code == "NOT_FOUND"
    denied = [e for e in audit.iter_query(vault.app.db.engine) if e.entry.decision == "deny"]
    reasons = {(e.entry.action, e.entry.reason) for e in denied}
    assert ("GetSubject", "customer bound to another subject") in reasons
    assert ("WithdrawConsent", "customer bound to another subject") in reasons
    assert ("RecordActivity", "customer bound to another subject") in reasons


def test_a_customer_uses_only_its_own_view_and_no_bulk_or_staff_call(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(ADA).subject_id
    customer = _as(vault, _issue(vault, ada))
    for view, purpose in [("full", "data_subject_request"), ("marketing", "marketing")]:
        with pytest.raises(VaultClientError) as refused:
            customer.get(ada, view, purpose, SELF)
        assert refused.value.code == "PERMISSION_DENIED"
    with pytest.raises(VaultClientError) as bulk:
        list(customer.export("self", "data_subject_request", SELF))
    assert bulk.value.code == "PERMISSION_DENIED"
    with pytest.raises(VaultClientError) as erase:
        customer.call(
            customer.rights,
            "EraseSubjectData",
            rpb.EraseSubjectDataRequest(subject_id=ada, reason="DSR-1"),
        )
    assert erase.value.code == "PERMISSION_DENIED"
    with pytest.raises(VaultClientError) as issue:
        customer.call(
            customer.customers,
            "IssueCustomerToken",
            cus.IssueCustomerTokenRequest(subject_id=ada),
        )
    assert issue.value.code == "PERMISSION_DENIED"


def test_only_a_role_the_policy_allows_issues_customer_tokens(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    for caller in (SERVICE, MARKETER):
        with pytest.raises(VaultClientError) as refused:
            _issue(vault, ada, **caller)
        assert refused.value.code == "PERMISSION_DENIED"
    with pytest.raises(VaultClientError) as missing:
        _issue(vault, "sub_" + "a" * 26)
    assert missing.value.code == "NOT_FOUND"
    codes = [(e.decision, e.result_code) for e in _entries(vault, "IssueCustomerToken")]
    assert codes == [
        ("deny", "PERMISSION_DENIED"),
        ("deny", "PERMISSION_DENIED"),
        ("allow", "NOT_FOUND"),
    ]


def test_a_forged_customer_token_is_refused(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    # A token naming the customer role without a bound subject, or a subject on a staff
    # role, is no credential (issued with the vault's own key to show the claim checks).
    for roles, subject in [(frozenset({"customer"}), None), (frozenset({"dpo"}), ada)]:
        with pytest.raises(ValueError, match="customer token"):
            vault.issuer.issue(Principal("x", "acme", roles, subject=subject), timedelta(minutes=5))
    other_tenant = Principal(f"customer:{ada}", "globex", frozenset({"customer"}), subject=ada)
    stranger = _as(vault, vault.issuer.issue(other_tenant, timedelta(minutes=5)))
    with pytest.raises(VaultClientError) as refused:
        stranger.get(ada, "self", "data_subject_request", SELF)
    assert refused.value.code == "NOT_FOUND"


def test_a_one_time_link_is_exchanged_once_for_a_customer_token(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(ADA).subject_id
    grace = service.create(GRACE).subject_id
    code = _link(vault, ada)

    redeemed = _redeem(vault, code)
    assert redeemed.subject_id == ada
    customer = _as(vault, redeemed.token)
    assert customer.get(ada, "self", "data_subject_request", SELF).fields
    with pytest.raises(VaultClientError) as other:
        customer.get(grace, "self", "data_subject_request", SELF)
    assert other.value.code == "NOT_FOUND"

    with pytest.raises(VaultClientError) as replay:
        _redeem(vault, code)
    assert replay.value.code == "UNAUTHENTICATED"
    with pytest.raises(VaultClientError) as tampered:
        _redeem(vault, code[:-4] + ("AAAA" if not code.endswith("AAAA") else "BBBB"))
    assert tampered.value.code == "UNAUTHENTICATED"
    with pytest.raises(VaultClientError) as as_bearer:
        _as(vault, code).get(ada, "self", "data_subject_request", SELF)
    assert as_bearer.value.code == "UNAUTHENTICATED"

    entries = _entries(vault, "RedeemCustomerLink")
    assert (entries[0].decision, entries[0].result_code) == ("allow", "OK")
    assert entries[0].actor == f"customer:{ada}"
    assert all(e.result_code == "UNAUTHENTICATED" for e in entries[1:])
    assert entries[1].reason == "link used, expired or unknown"


def test_an_expired_link_is_refused_and_a_customer_token_expires(tmp_path: Path) -> None:
    clock = MovableClock()
    with running_vault(settings_for(tmp_path / "data", None), clock=clock) as vault:
        ada = vault.client(**SERVICE).create(ADA).subject_id
        code = _link(vault, ada, ttl_seconds=60)
        token = _issue(vault, ada)
        clock.advance(timedelta(minutes=16))
        with pytest.raises(VaultClientError) as expired:
            _redeem(vault, code)
        assert expired.value.code == "UNAUTHENTICATED"
        with pytest.raises(VaultClientError) as stale:
            _as(vault, token).get(ada, "self", "data_subject_request", SELF)
        assert stale.value.code == "UNAUTHENTICATED"


def test_a_link_ttl_beyond_a_day_is_refused(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    with pytest.raises(VaultClientError) as refused:
        _link(vault, ada, ttl_seconds=2 * 86400)
    assert refused.value.code == "INVALID_ARGUMENT"


def test_a_customer_grants_and_withdraws_its_own_consent(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada = service.create(ADA).subject_id
    customer = _as(vault, _issue(vault, ada))
    grant(customer, ada, "marketing")
    assert "email" in vault.client(**MARKETER).get(ada, "marketing", "marketing").fields
    customer.call(
        customer.consent,
        "WithdrawConsent",
        cpb.WithdrawConsentRequest(subject_id=ada, purposes=["marketing"], source=source()),
    )
    after = vault.client(**MARKETER).get(ada, "marketing", "marketing")
    assert "email" not in after.fields
    assert {w.reason for w in after.withheld} == {"consent"}


def test_a_customer_reads_its_own_history_by_team_and_no_one_elses(vault: RunningVault) -> None:
    from customer_vault_client.gen.customervault.v1 import audit_pb2 as apb

    service = vault.client(**SERVICE)
    ada = service.create(ADA).subject_id
    grace = service.create(GRACE).subject_id
    grant(service, ada, "marketing")
    vault.client(**MARKETER).get(ada, "marketing", "marketing")
    customer = _as(vault, _issue(vault, ada))

    mine = customer.call(
        customer.audit, "SubjectHistory", apb.SubjectHistoryRequest(subject_id=ada)
    ).entries
    read = next(e for e in mine if e.action == "GetSubject")
    assert (read.actor, list(read.roles), read.purpose) == ("", ["marketing"], "marketing")
    assert all(list(e.subject_ids) == [ada] and not e.caller_address for e in mine)
    with pytest.raises(VaultClientError) as other:
        customer.call(customer.audit, "SubjectHistory", apb.SubjectHistoryRequest(subject_id=grace))
    assert other.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as search:
        customer.call(customer.audit, "QueryEntries", apb.QueryEntriesRequest())
    assert search.value.code == "PERMISSION_DENIED"
    refused = _entries(vault, "SubjectHistory")[-1]
    assert (refused.decision, refused.reason) == ("deny", "customer bound to another subject")
