"""Reveal, tokenize and detokenize through the real server: own permissions, audited."""

from __future__ import annotations

import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

from tests.data import ADA, DPO, FRAUD
from tests.integration.harness import RunningVault
from vault.api.client import VaultClientError

AGENT = {"principal": "agent-1", "roles": ("support_agent",), "clearance": "1"}


def _code(caught: pytest.ExceptionInfo[VaultClientError]) -> str:
    return caught.value.code


def test_reveal_needs_permission_and_a_justification(vault: RunningVault) -> None:
    created = vault.client().create(ADA)
    dpo = vault.client(**DPO)
    shown = dpo.reveal(
        created.subject_id, "national_id", "data_subject_request", "DSR-2026-114: access request"
    )
    assert shown.value.value == "QQ 12 34 56 C"
    assert shown.value.disclosure == pb.DISCLOSURE_CLEAR
    assert shown.value.provenance.written_by == "order-service"

    with pytest.raises(VaultClientError) as caught:
        dpo.reveal(created.subject_id, "national_id", "data_subject_request", "   ")
    assert _code(caught) == "INVALID_ARGUMENT"
    assert ("justification", "must say why") in caught.value.violations

    with pytest.raises(VaultClientError) as caught:
        vault.client(**AGENT).reveal(created.subject_id, "national_id", "support", "curious")
    assert _code(caught) == "PERMISSION_DENIED"

    with pytest.raises(VaultClientError) as caught:
        dpo.reveal(created.subject_id, "national_id", "no_such_purpose", "DSR-1")
    assert _code(caught) == "INVALID_ARGUMENT"


def test_reveal_of_another_tenants_subject_is_not_found(vault: RunningVault) -> None:
    created = vault.client().create(ADA)
    other = vault.client(tenant="globex", **DPO)
    with pytest.raises(VaultClientError) as caught:
        other.reveal(created.subject_id, "email", "data_subject_request", "DSR-9")
    assert _code(caught) == "NOT_FOUND"


def test_random_tokens_reverse_only_with_the_detokenize_permission(vault: RunningVault) -> None:
    service = vault.client()
    created = service.create(ADA)
    token = service.tokenize(created.subject_id, "email", pb.TOKEN_KIND_RANDOM, "support").token
    assert token.startswith("tkr_")
    again = service.tokenize(created.subject_id, "email", pb.TOKEN_KIND_RANDOM, "support").token
    assert again != token  # random tokens never repeat

    fraud = vault.client(**FRAUD)
    back = fraud.detokenize(token, "fraud", "case FR-77")
    assert (back.subject_id, back.field) == (created.subject_id, "email")
    assert back.value.value == "ada.lovelace@example.com"

    with pytest.raises(VaultClientError) as caught:
        service.detokenize(token, "fraud", "case FR-77")
    assert _code(caught) == "PERMISSION_DENIED"
    with pytest.raises(VaultClientError) as caught:
        vault.client(tenant="globex", **FRAUD).detokenize(token, "fraud", "case FR-77")
    assert _code(caught) == "NOT_FOUND"


def test_deterministic_tokens_join_equal_values_and_die_with_the_subject(
    vault: RunningVault,
) -> None:
    service, fraud = vault.client(), vault.client(**FRAUD)
    first = service.create(ADA)
    second = service.create({**ADA, "email": "ada@example.org"})
    det = pb.TOKEN_KIND_DETERMINISTIC
    one = fraud.tokenize(first.subject_id, "national_id", det, "fraud", "case FR-78").token
    two = fraud.tokenize(second.subject_id, "national_id", det, "fraud", "case FR-78").token
    assert one == two and one.startswith("tkd_")
    other = fraud.tokenize(second.subject_id, "email", det, "fraud", "case FR-78").token
    assert other != one

    assert fraud.detokenize(one, "fraud", "case FR-78").value.value == "QQ 12 34 56 C"

    service.erase(first.subject_id, reason="erasure request")
    service.erase(second.subject_id, reason="erasure request")
    with pytest.raises(VaultClientError) as caught:
        fraud.detokenize(one, "fraud", "case FR-78")
    assert _code(caught) == "NOT_FOUND"


def test_an_update_retires_the_tokens_of_the_changed_field(vault: RunningVault) -> None:
    service = vault.client()
    created = service.create(ADA)
    token = service.tokenize(created.subject_id, "email", pb.TOKEN_KIND_RANDOM, "support").token
    service.update(created.subject_id, 1, {"email": "ada@new.example"}, reason="rectification")
    with pytest.raises(VaultClientError) as caught:
        vault.client(**FRAUD).detokenize(token, "fraud", "case FR-79")
    assert _code(caught) == "NOT_FOUND"
