"""The policy matrix through the real server: every role x view x purpose, read over
gRPC, gives exactly the field outcomes the policy tables expect (or PERMISSION_DENIED).

The expected tables are the ones the unit tests check the engine against
(tests/unit/policy/test_matrix.py); here they are checked end to end, through
authentication, storage, decryption, masking and the wire format.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

from tests.data import PURPOSES, READ_GRANTS, ROLES, VIEWS
from tests.integration.consent_support import grant
from tests.integration.harness import RunningVault
from vault.api.client import VaultClient, VaultClientError
from vault.principal import Principal

SUBJECT = {
    "given_name": "Grace",
    "family_name": "Hopper",
    "email": "grace.hopper@example.org",
    "phone": "+1 415 555 2671",
    "date_of_birth": "1986-12-09",
    "street_address": "1 Compiler Way",
    "city": "Arlington",
    "postal_code": "22201",
    "country": "US",
    "national_id": "078-05-1120",
    "loyalty_tier": "gold",
    "notes": "Prefers phone calls",
}
CONSENT_PURPOSES = ("marketing", "personalization", "sharing")
_DISCLOSURE = {
    pb.DISCLOSURE_CLEAR: "clear",
    pb.DISCLOSURE_MASKED: "masked",
    pb.DISCLOSURE_PSEUDONYMIZED: "pseudonymized",
    pb.DISCLOSURE_TOKENIZED: "tokenized",
    pb.DISCLOSURE_GENERALIZED: "generalized",
}


def _seen(view: pb.SubjectView) -> dict[str, str]:
    """Each field as the tables spell it: clear, masked:<strategy>, withheld:<reason>..."""
    seen = {}
    for name, value in view.fields.items():
        kind = _DISCLOSURE[value.disclosure]
        seen[name] = f"{kind}:{value.strategy}" if value.strategy else kind
    for withheld in view.withheld:
        seen[withheld.field] = f"withheld:{withheld.reason}"
    return seen


def _customer(vault: RunningVault, subject_id: str) -> VaultClient:
    """A client for the customer `subject_id` (its token is bound to that subject)."""
    who = Principal(f"customer:{subject_id}", "acme", frozenset({"customer"}), subject=subject_id)
    client = VaultClient(vault.address, vault.issuer.issue(who, timedelta(minutes=10)))
    vault.clients.append(client)
    return client


def test_every_role_view_and_purpose_through_the_server(sqlite_vault: RunningVault) -> None:
    service = sqlite_vault.client()
    subject_id = service.create(SUBJECT).subject_id
    grant(service, subject_id, *CONSENT_PURPOSES)  # these tables are about the policy
    failures = []
    for role, view, purpose in itertools.product(ROLES, VIEWS, PURPOSES):
        expected = READ_GRANTS.get((role, view, purpose))
        client = (
            _customer(sqlite_vault, subject_id)
            if role == "customer"
            else sqlite_vault.client(principal="caller-1", roles=(role,))
        )
        try:
            # A justification citing a case satisfies the full view and every purpose.
            got = client.get(subject_id, view, purpose, "CASE-1: policy matrix")
        except VaultClientError as exc:
            if expected is not None or exc.code != "PERMISSION_DENIED":
                failures.append(f"{role}/{view}/{purpose}: {exc.code}")
            continue
        if expected is None:
            failures.append(f"{role}/{view}/{purpose}: allowed, expected PERMISSION_DENIED")
            continue
        want = {name: outcome for name, outcome in expected.items() if outcome != "omitted"}
        if _seen(got) != want:
            failures.append(f"{role}/{view}/{purpose}: {_seen(got)} != {want}")
    assert failures == []


@pytest.mark.parametrize(("clearance", "notes"), [("1", "masked:redact"), ("2", "clear")])
def test_clearance_decides_what_support_sees_of_confidential_fields(
    sqlite_vault: RunningVault, clearance: str, notes: str
) -> None:
    subject_id = sqlite_vault.client().create(SUBJECT).subject_id
    agent = sqlite_vault.client(roles=("support_agent",), clearance=clearance)
    assert _seen(agent.get(subject_id, "support", "support"))["notes"] == notes
