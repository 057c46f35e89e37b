"""The compliance console's test people and seeded history, shared by the browser tests
and the audit CLI's integration tests (test modules do not import each other)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from customer_vault_client.gen.customervault.v1 import retention_pb2, rights_pb2

from tests.data import ADA, GRACE
from vault.api.client import VaultClientError
from vault.testing import RunningVault

PEOPLE: dict[str, dict[str, Any]] = {
    "dpo": {"principal": "dpo-1", "roles": ("dpo",), "clearance": "3"},
    "compliance": {"principal": "cmp-2", "roles": ("compliance_officer",)},
    "agent": {"principal": "agent-7", "roles": ("support_agent",), "clearance": "1"},
    "lead": {"principal": "lead-3", "roles": ("support_lead",), "clearance": "3"},
    "admin": {"principal": "ops-1", "roles": ("admin",)},
}


def seed(vault: RunningVault) -> dict[str, str]:
    """A small, plausible history: creations, support reads, denials, a DPO's export and
    reveal, a support lead's reveal of a restricted field, a legal hold."""
    service = vault.client()
    ada = service.create(ADA).subject_id
    grace = service.create(GRACE).subject_id
    agent = vault.client(**PEOPLE["agent"])
    lead = vault.client(**PEOPLE["lead"])
    dpo = vault.client(**PEOPLE["dpo"])
    agent.get(ada, "support", "support")
    agent.get(grace, "support", "support")
    for view, purpose in (("full", "support"), ("support", "marketing")):
        with pytest.raises(VaultClientError):  # refused by the policy (a full view needs
            agent.get(ada, view, purpose, "TCK-4411")  # a justification: it has one)
    lead.reveal(ada, "national_id", "support", "caller verified identity, ticket 4411")
    dpo.get(ada, "full", "data_subject_request", "DSR-2026-114: access request")
    dpo.call(
        dpo.rights,
        "ExportSubjectData",
        rights_pb2.ExportSubjectDataRequest(subject_id=ada, reason="DSR-2026-114"),
    )
    dpo.call(
        dpo.retention,
        "SetLegalHold",
        retention_pb2.SetLegalHoldRequest(subject_id=grace, reason="MATTER-77"),
    )
    return {"ada": ada, "grace": grace}


def wait_for_checkpoint(vault: RunningVault) -> None:
    """Until every entry written so far is covered by a signed checkpoint."""
    import sqlalchemy as sa

    engine = vault.app.db.engine
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pending = conn.execute(
                sa.text("SELECT count(*) FROM audit_entries WHERE leaf_index IS NULL")
            ).scalar_one()
            size = conn.execute(sa.text("SELECT max(size) FROM audit_checkpoints")).scalar()
            total = conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
        if pending == 0 and size == total:
            return
        time.sleep(0.1)
    raise AssertionError("the audit log was not integrated and checkpointed in time")
