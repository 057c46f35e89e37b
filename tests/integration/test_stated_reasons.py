"""Powerful reads and erasures need a stated reason (issue 20.8), through the server.

Full clear-text views and exports, and every purpose with a legal-obligation basis,
need a justification, citing a case reference where purposes.yaml says so; every
erasure needs a reason; EraseSubject spends a per-principal erasure budget, so bulk
erasure goes through the data-subject-request path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

import audit
from tests.data import ADA, DPO
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClientError

FRAUD = {"principal": "fraud-1", "roles": ("fraud_analyst",), "clearance": "3"}
MUST_SAY_WHY = ("justification", "must say why")
MUST_CITE = ("justification", "must cite the case reference (e.g. DSR-2026-114)")


def _refused(call: object) -> VaultClientError:
    with pytest.raises(VaultClientError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_full_clear_text_reads_and_exports_state_a_case(vault: RunningVault) -> None:
    subject = vault.client().create(ADA).subject_id
    dpo = vault.client(**DPO)
    for purpose in ("data_subject_request", "legal"):
        error = _refused(lambda p=purpose: dpo.get(subject, "full", p))
        assert (error.code, error.violations) == ("INVALID_ARGUMENT", [MUST_SAY_WHY])
        error = _refused(lambda p=purpose: dpo.get(subject, "full", p, "the regulator asked"))
        assert (error.code, error.violations) == ("INVALID_ARGUMENT", [MUST_CITE])
        error = _refused(lambda p=purpose: list(dpo.export("full", p)))
        assert error.violations == [MUST_SAY_WHY]
        error = _refused(lambda p=purpose: dpo.find("email", ADA["email"], "full", p))
        assert error.violations == [MUST_SAY_WHY]
    shown = dpo.get(subject, "full", "legal", "LEG-2026-0042: court order")
    assert shown.fields["national_id"].value == "QQ 12 34 56 C"
    assert [v.meta.subject_id for v in dpo.export("full", "legal", "LEG-2026-0042")] == [subject]
    entries = [e.entry for e in audit.iter_query(vault.app.db.engine, actor="dpo-1")]
    assert [e.justification for e in entries if e.result_code == "OK"][:2] == [
        "LEG-2026-0042: court order",
        "LEG-2026-0042",
    ]
    # Every refusal was audited, the justification it lacked included.
    assert sum(e.result_code == "INVALID_ARGUMENT" for e in entries) == 8


def test_a_legal_obligation_purpose_needs_a_justification_for_any_view(
    vault: RunningVault,
) -> None:
    subject = vault.client().create(ADA).subject_id
    fraud = vault.client(**FRAUD)
    error = _refused(lambda: fraud.get(subject, "fraud", "fraud"))
    assert (error.code, error.violations) == ("INVALID_ARGUMENT", [MUST_SAY_WHY])
    assert fraud.get(subject, "fraud", "fraud", "alert 7731 on card payments").fields
    # contract and consent purposes keep working without one
    agent = vault.client(principal="agent-1", roles=("support_agent",))
    assert agent.get(subject, "support", "support").fields


def test_every_erasure_needs_a_reason(vault: RunningVault) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    for reason in ("", "   "):
        error = _refused(lambda r=reason: service.erase(subject, r))
        assert (error.code, error.violations) == ("INVALID_ARGUMENT", [("reason", "must say why")])
    dpo = vault.client(**DPO)
    for reason, violation in ((" ", "must name the request"), ("she asked", MUST_CITE[1])):
        request = rpb.EraseSubjectDataRequest(subject_id=subject, reason=reason)
        error = _refused(lambda r=request: dpo.call(dpo.rights, "EraseSubjectData", r))
        assert (error.code, error.violations) == ("INVALID_ARGUMENT", [("reason", violation)])
    assert service.erase(subject, "account closed (TCK-9)").state == pb.SUBJECT_STATE_ERASED


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[RunningVault]:
    settings = settings_for(tmp_path / "data", None, erase_rate_per_minute=2, erase_burst=2)
    with running_vault(settings) as running:
        yield running


def test_erase_subject_spends_a_per_principal_budget_bulk_goes_through_the_dsr_path(
    budgeted: RunningVault,
) -> None:
    vault = budgeted
    service = vault.client()
    ids = [service.create({**ADA, "email": f"ada{n}@example.com"}).subject_id for n in range(6)]
    for subject in ids[:2]:
        service.erase(subject, "account closed")
    error = _refused(lambda: service.erase(ids[2], "account closed"))
    assert error.code == "RESOURCE_EXHAUSTED"
    assert "erasure budget" in error.message
    dpo = vault.client(**DPO)
    assert dpo.get(ids[2], "full", "data_subject_request", "DSR-3").meta.state == (
        pb.SUBJECT_STATE_ACTIVE
    )  # nothing was erased
    [refused] = [
        e.entry
        for e in audit.iter_query(vault.app.db.engine, action="EraseSubject")
        if e.entry.result_code == "RESOURCE_EXHAUSTED"
    ]
    assert (refused.decision, refused.reason, refused.subject_ids) == (
        "deny",
        "rate-limit:erasure",
        (ids[2],),
    )
    # The data-subject-request path has no such budget: one request reference each.
    for n, subject in enumerate(ids[2:]):
        request = rpb.EraseSubjectDataRequest(subject_id=subject, reason=f"DSR-2026-{n}")
        erased = dpo.call(dpo.rights, "EraseSubjectData", request).subject
        assert erased.state == pb.SUBJECT_STATE_ERASED
