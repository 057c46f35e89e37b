"""A request still awaiting verification when its statutory deadline passes expires in
the leader's background work, with nobody calling anything: its state change is an
event and an audit entry like any other transition. A verified request is left alone."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus

import audit
from tests.data import ADA
from tests.integration.consent_support import SERVICE, MovableClock
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.integration.request_support import ERASURE, RESTRICTION, customer_client
from tests.integration.request_support import verification_code as code_for
from vault.rights.request_expiry import EXPIRY_PRINCIPAL


def _state(vault: RunningVault, request_id: str) -> str:
    with vault.app.db.engine.connect() as conn:
        query = sa.text("SELECT state FROM subject_requests WHERE id = :id")
        return str(conn.execute(query, {"id": request_id}).scalar_one())


def _wait_for_state(vault: RunningVault, request_id: str, state: str) -> None:
    """Until the background work has moved the request (bounded, like the integrator's
    waits: the task runs every 50 ms in this vault)."""
    deadline = time.monotonic() + 30
    while _state(vault, request_id) != state:
        assert time.monotonic() < deadline, f"the request never became {state}"
        time.sleep(0.05)


def _events(vault: RunningVault, request_id: str) -> list[dict[str, str]]:
    query = sa.text("SELECT facts FROM outbox_events WHERE kind = 'request_state_changed'")
    with vault.app.db.engine.connect() as conn:
        facts = [json.loads(row[0]) for row in conn.execute(query)]
    return [f for f in facts if f["request_id"] == request_id]


def test_an_unverified_request_expires_at_its_deadline_untouched(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = MovableClock()
    settings = settings_for(tmp_path / "data", database_url, request_expiry_interval_seconds=0.05)
    with running_vault(settings, clock=clock) as vault:
        ada = vault.client(**SERVICE).create(ADA).subject_id
        customer = customer_client(vault, ada)
        create = customer.customers, "CreateDataSubjectRequest"
        lapsing = customer.call(
            *create, cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=ERASURE)
        ).request
        kept = customer.call(
            *create, cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=RESTRICTION)
        ).request
        customer.call(
            customer.customers,
            "VerifyDataSubjectRequest",
            cus.VerifyDataSubjectRequestRequest(
                data_subject_request_id=kept.request_id,
                code=code_for(vault, kept.request_id),
            ),
        )
        clock.advance(timedelta(days=20))  # within the month: nothing lapses
        assert vault.app.requests.expiry.expire_due() is False
        assert _state(vault, lapsing.request_id) == "awaiting_verification"

        clock.advance(timedelta(days=20))  # past one month (GDPR art. 12(3))
        _wait_for_state(vault, lapsing.request_id, "expired")
        assert _state(vault, kept.request_id) == "pending_decision"
        changes = _events(vault, lapsing.request_id)
        assert [(c["state"], c.get("previous_state")) for c in changes] == [
            ("awaiting_verification", None),
            ("expired", "awaiting_verification"),
        ]
        entries = [
            e.entry
            for e in audit.iter_query(vault.app.db.engine, action="ExpireDataSubjectRequest")
        ]
        [entry] = entries
        assert (entry.actor, entry.tenant, entry.subject_ids) == (EXPIRY_PRINCIPAL, "acme", (ada,))
        assert (entry.decision, entry.result_code) == ("allow", "OK")
        assert entry.extra["request"] == lapsing.request_id
        assert entry.extra["transition"] == "awaiting_verification->expired"

        assert vault.app.requests.expiry.expire_due() is False  # nothing left: no second entry
        again = list(audit.iter_query(vault.app.db.engine, action="ExpireDataSubjectRequest"))
        assert len(again) == 1 and len(_events(vault, lapsing.request_id)) == 2
