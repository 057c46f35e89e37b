"""Tokens are not an equality oracle (issue 26.1) and Detokenize decides permission
before it looks a token up (issue 20.14), through the server."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

import audit
from tests.data import ADA
from tests.integration.consent_support import grant, opt_out
from tests.integration.harness import RunningVault
from vault.api.client import VaultClient, VaultClientError

FRAUD = {"principal": "fraud-1", "roles": ("fraud_analyst",), "clearance": "3"}
AGENT = {"principal": "agent-1", "roles": ("support_agent",), "clearance": "3"}
DET, RND = pb.TOKEN_KIND_DETERMINISTIC, pb.TOKEN_KIND_RANDOM


def _entries(vault: RunningVault, **filters: str) -> list[audit.AuditEntry]:
    return [e.entry for e in audit.iter_query(vault.app.db.engine, **filters)]


def _probe_attack(service: VaultClient, victim: str, probes: dict[str, str]) -> str | None:
    """The reviewer's attack: tokenize the victim's date of birth and every probe
    subject's deterministically; the probe whose token matches gives the date away."""
    target = service.tokenize(victim, "date_of_birth", DET, "support").token
    for candidate, probe in probes.items():
        if service.tokenize(probe, "date_of_birth", DET, "support").token == target:
            return candidate
    return None


def test_probe_subjects_and_deterministic_tokens_do_not_reveal_a_date_of_birth(
    vault: RunningVault,
) -> None:
    service = vault.client()  # may create subjects and tokenize; denied every read
    victim = service.create(ADA).subject_id
    days = [date(1985, 1, 1) + timedelta(days=n) for n in range(365)]
    created = service.batch_create(
        [
            {**ADA, "email": f"probe{n}@example.com", "date_of_birth": d.isoformat()}
            for n, d in enumerate(days)
        ]
    )
    probes = {d.isoformat(): r.subject_id for d, r in zip(days, created.results, strict=True)}

    with pytest.raises(VaultClientError) as caught:
        _probe_attack(service, victim, probes)
    assert caught.value.code == "PERMISSION_DENIED"
    [refused] = _entries(vault, action="Tokenize")
    assert (refused.decision, refused.subject_ids) == ("deny", (victim,))
    assert refused.reason == "p, service, *, fields:*, *, *, 0, *, deny"
    # Random tokens stay the service's: equal dates, unequal tokens, no oracle.
    twin = probes["1985-12-10"]
    one = service.tokenize(victim, "date_of_birth", RND, "support").token
    two = service.tokenize(twin, "date_of_birth", RND, "support").token
    assert one != two and one.startswith("tkr_")


def test_a_gpc_do_not_share_opt_out_refuses_tokens_for_sharing_purposes(
    vault: RunningVault,
) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    with pytest.raises(VaultClientError) as caught:  # sharing needs consent
        service.tokenize(subject, "email", RND, "sharing")
    assert caught.value.code == "PERMISSION_DENIED"
    grant(service, subject, "sharing")
    assert service.tokenize(subject, "email", RND, "sharing").token

    opt_out(service, subject, "all_sharing")  # Global Privacy Control: do not sell or share
    with pytest.raises(VaultClientError) as caught:
        service.tokenize(subject, "email", RND, "sharing")
    assert caught.value.code == "PERMISSION_DENIED"
    last = _entries(vault, action="Tokenize")[-1]
    assert (last.decision, last.reason, last.purpose) == ("deny", "opt-out:all_sharing", "sharing")
    # The opt-out stops sharing, not the contract: support may still tokenize.
    assert service.tokenize(subject, "email", RND, "support").token
    # A national id never serves sharing, in any form.
    with pytest.raises(VaultClientError) as caught:
        service.tokenize(subject, "national_id", RND, "sharing")
    assert caught.value.code == "PERMISSION_DENIED"


def test_tokenize_names_a_declared_purpose_and_a_reason_for_a_legal_obligation(
    vault: RunningVault,
) -> None:
    service, fraud = vault.client(), vault.client(**FRAUD)
    subject = service.create(ADA).subject_id
    for purpose, violation in (("", "must name a purpose"), ("gossip", "undeclared purpose")):
        with pytest.raises(VaultClientError) as caught:
            service.tokenize(subject, "email", RND, purpose)
        assert caught.value.code == "INVALID_ARGUMENT"
        assert ("purpose", violation) in caught.value.violations
    with pytest.raises(VaultClientError) as caught:  # fraud is a legal obligation
        fraud.tokenize(subject, "national_id", DET, "fraud")
    assert ("justification", "must say why") in caught.value.violations
    token = fraud.tokenize(subject, "national_id", DET, "fraud", "case FR-3").token
    assert token.startswith("tkd_")


def test_tokens_of_an_erased_subject_can_neither_be_minted_nor_reversed(
    vault: RunningVault,
) -> None:
    service, fraud = vault.client(), vault.client(**FRAUD)
    subject = service.create(ADA).subject_id
    token = fraud.tokenize(subject, "email", DET, "fraud", "case FR-4").token
    service.erase(subject, "customer closed the account (TCK-1)")
    for kind in (DET, RND):
        with pytest.raises(VaultClientError) as caught:
            fraud.tokenize(subject, "email", kind, "fraud", "case FR-4")
        assert caught.value.code == "FAILED_PRECONDITION"
    with pytest.raises(VaultClientError) as caught:
        fraud.detokenize(token, "fraud", "case FR-4")
    assert caught.value.code == "NOT_FOUND"


def test_detokenize_decides_permission_before_it_looks_the_token_up(
    vault: RunningVault,
) -> None:
    service, fraud = vault.client(), vault.client(**FRAUD)
    subject = service.create(ADA).subject_id
    real = service.tokenize(subject, "email", RND, "support").token
    missing = "tkr_" + "a" * 43
    # Callers who may reverse nothing get the same answer for a real and a made-up token.
    for who in (AGENT, {"principal": "order-service", "roles": ("service",)}):
        answers = set()
        for token in (real, missing):
            with pytest.raises(VaultClientError) as caught:
                vault.client(**who).detokenize(token, "support", "TCK-7")
            answers.add((caught.value.code, caught.value.message))
        assert len(answers) == 1 and next(iter(answers))[0] == "PERMISSION_DENIED"
    refusals = _entries(vault, action="Detokenize")
    assert len(refusals) == 4 and all(e.decision == "deny" for e in refusals)
    assert all(e.subject_ids == () for e in refusals)  # nothing was looked up
    # With the permission, an unknown token is simply not found.
    with pytest.raises(VaultClientError) as caught:
        fraud.detokenize(missing, "fraud", "case FR-5")
    assert caught.value.code == "NOT_FOUND"
    assert fraud.detokenize(real, "fraud", "case FR-5").subject_id == subject


def test_a_token_shown_in_a_view_is_a_join_key_until_tokenize_records_it(
    vault: RunningVault,
) -> None:
    """The contract (DISCLOSURE_TOKENIZED, docs/security.md): a view does not record the
    tokens it shows; Tokenize returns the same deterministic token and records it."""
    service, fraud = vault.client(), vault.client(**FRAUD)
    subject = service.create(ADA).subject_id
    twin = service.create(ADA).subject_id
    shown = fraud.get(subject, "fraud", "fraud", "case FR-9").fields["national_id"]
    assert shown.disclosure == pb.DISCLOSURE_TOKENIZED
    # A join key: the same value shows the same token for another subject.
    assert fraud.get(twin, "fraud", "fraud", "case FR-9").fields["national_id"].value == shown.value
    with pytest.raises(VaultClientError) as caught:
        fraud.detokenize(shown.value, "fraud", "case FR-9")
    assert caught.value.code == "NOT_FOUND"
    recorded = fraud.tokenize(subject, "national_id", DET, "fraud", "case FR-9").token
    assert recorded == shown.value
    revealed = fraud.detokenize(recorded, "fraud", "case FR-9")
    assert (revealed.subject_id, revealed.value.value) == (subject, ADA["national_id"])
