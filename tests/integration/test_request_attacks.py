"""An outside review's probes of the request workflow over gRPC: racing decisions, a
replayed code, a code of one request on another, and a rectification's values kept out
of the audit log, the event feed and the server's logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import requests_pb2 as req

from tests.data import ADA, DPO, GRACE
from tests.integration.consent_support import SERVICE
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.integration.request_support import (
    APPROVE,
    ERASURE,
    RECTIFICATION,
    REJECT,
    RESTRICTION,
    create_request,
    customer_client,
    decide_request,
    verification_code,
    verified_request,
    verify_request,
)
from vault.api.client import VaultClientError


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningVault]:
    with running_vault(settings_for(tmp_path_factory.mktemp("attacks") / "data", None)) as v:
        yield v


def test_two_dpo_decisions_racing_one_wins(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    _, request_id = verified_request(vault, ada, RESTRICTION)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def decide(decision: int) -> None:
        start.wait()
        try:
            decide_request(vault.client(**DPO), request_id, decision, "DSR decided")
            outcomes.append("OK")
        except VaultClientError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=decide, args=(d,)) for d in (APPROVE, REJECT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["FAILED_PRECONDITION", "OK"]
    with vault.app.db.engine.connect() as conn:
        state = conn.execute(
            sa.text("SELECT state FROM subject_requests WHERE id = :id"), {"id": request_id}
        ).scalar_one()
        subject = conn.execute(
            sa.text("SELECT state FROM subjects WHERE id = :id"), {"id": ada}
        ).scalar_one()
    # The winner's effect and the request's state agree.
    assert (state, subject) in {("fulfilled", "restricted"), ("rejected", "active")}


def test_a_code_is_single_use_and_bound_to_its_request(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(GRACE).subject_id
    customer = customer_client(vault, ada)
    first = create_request(customer, ada, ERASURE).request_id
    second = create_request(customer, ada, RESTRICTION).request_id
    code = verification_code(vault, first)
    with pytest.raises(VaultClientError) as other:
        verify_request(customer, second, code)  # the first request's code on the second
    assert other.value.code == "INVALID_ARGUMENT"
    assert (
        verify_request(customer, first, code).state
        == req.DATA_SUBJECT_REQUEST_STATE_PENDING_DECISION
    )
    with pytest.raises(VaultClientError) as replay:
        verify_request(customer, first, code)
    assert replay.value.code == "FAILED_PRECONDITION"


def test_proposed_values_stay_out_of_audit_events_and_logs(
    vault: RunningVault, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "zz.unique.value@example.org"
    ada = vault.client(**SERVICE).create(ADA).subject_id
    with caplog.at_level(logging.DEBUG):
        _, request_id = verified_request(vault, ada, RECTIFICATION, email=secret)
        decide_request(vault.client(**DPO), request_id, APPROVE, "checked against the passport")
    assert secret not in caplog.text
    with vault.app.db.engine.connect() as conn:
        for table in ("audit_entries", "outbox_events", "subject_requests"):
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            dumped = repr(rows)
            assert secret not in dumped, table
            assert secret.encode() not in dumped.encode(), table
