"""Known PII written through every kind of call never shows up in logs, error messages,
error details or the audit tables, whether the call succeeds or fails."""

from __future__ import annotations

import logging

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from grpc_status import rpc_status

from tests.data import DPO, PII, SECRETS
from tests.integration.harness import RunningVault, raw_stub
from vault.api.client import VaultClientError


def _leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [s for s in SECRETS if s.lower() in lowered]


def _audit_text(vault: RunningVault) -> str:
    with vault.app.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_entries")).all()
        subjects = conn.execute(sa.text("SELECT * FROM audit_entry_subjects")).all()
    parts = []
    for row in [*rows, *subjects]:
        for value in row:
            parts.append(
                bytes(value).decode("utf-8", "replace")
                if isinstance(value, bytes | memoryview)
                else str(value)
            )
    return "\n".join(parts)


def _error_text(exc: VaultClientError) -> str:
    return " ".join([exc.code, exc.message, *(f"{f} {d}" for f, d in exc.violations)])


def test_pii_never_reaches_logs_errors_or_the_audit_log(
    vault: RunningVault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = vault.client()
    dpo = vault.client(**DPO)
    errors: list[str] = []

    created = service.create(PII)
    sid = created.subject_id
    dpo.get(sid, "full", "data_subject_request", "DSR-1")
    dpo.find("email", PII["email"], "full", "data_subject_request", "DSR-1")
    dpo.reveal(sid, "national_id", "data_subject_request", "DSR-7")
    service.update(sid, 1, {"city": "Sydneyville"}, reason="moved")
    service.tokenize(sid, "email", pb.TOKEN_KIND_RANDOM, "support")

    bad_calls = [
        lambda: service.create({**PII, "email": "not-an-email-zebulon"}),
        lambda: service.create({**PII, "phone": "Zebulon"}),
        lambda: service.create({**PII, "date_of_birth": "Quartermaine"}),
        lambda: service.create({**PII, "Zebulon": "Quartermaine"}),
        lambda: service.update(sid, 1, {"email": "zebulon.quartermaine@"}, reason="x"),
        lambda: dpo.find("email", "not-an-email-zebulon", "full", "data_subject_request", "DSR-1"),
        lambda: dpo.get(
            "zebulon.quartermaine@example.net", "full", "data_subject_request", "DSR-1"
        ),
        lambda: dpo.reveal("Zebulon", "email", "data_subject_request", "DSR-8"),
        lambda: dpo.get(sid, "Quartermaine", "data_subject_request"),
        lambda: dpo.get(sid, "full", "Kumquats"),
        lambda: service.batch_create([{**PII, "email": "Zebulon"}] * 3, all_or_nothing=True),
    ]
    for call in bad_calls:
        with pytest.raises(VaultClientError) as caught:
            call()
        errors.append(_error_text(caught.value))

    partial = service.batch_create([PII, {**PII, "phone": "Zebulon"}])
    assert partial.failed == 1
    errors.extend(str(item.error) for item in partial.results if item.HasField("error"))

    # Raw status details too (BadRequest, ErrorInfo), not just what the client decodes.
    stub, channel = raw_stub(vault)
    with channel, pytest.raises(grpc.RpcError) as raw:
        stub.CreateSubject(
            pb.CreateSubjectRequest(fields={**PII, "email": "not-an-email-zebulon"}),
            metadata=(("authorization", f"Bearer {vault.token()}"),),
            timeout=10,
        )
    status = rpc_status.from_call(raw.value)
    assert status is not None
    errors.append(str(status))

    assert [e for e in errors if _leaks(e)] == []
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert _leaks(logged) == []
    audit_text = _audit_text(vault)
    assert "GetSubject" in audit_text  # the scan saw the entries
    assert _leaks(audit_text) == []
