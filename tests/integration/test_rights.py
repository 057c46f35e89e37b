"""Data-subject rights through the real server: own permissions, audited, and erasure that
leaves nothing decryptable about the subject anywhere in the database."""

from __future__ import annotations

import base64
import json
import time
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

import audit
from tests.data import ADA, DPO
from tests.integration.consent_support import AGENT, MARKETER, SERVICE, grant
from tests.integration.harness import RunningVault
from vault.api.client import VaultClient, VaultClientError

ADMIN: dict[str, Any] = {"principal": "ops-1", "roles": ("admin",)}


def _rights(client: VaultClient, method: str, request: object) -> Any:
    return client.call(client.rights, method, request)


def test_rights_access_package_holds_fields_consent_and_access_history(
    vault: RunningVault,
) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    granted = grant(service, subject, "marketing")
    vault.client(**MARKETER).get(subject, "marketing", "marketing")

    response = _rights(
        vault.client(**DPO),
        "ExportSubjectData",
        rpb.ExportSubjectDataRequest(subject_id=subject, reason="DSR-2026-001"),
    )
    package = json.loads(response.package_json)
    assert package["format"] == "customervault.access-package/v1"
    assert package["subject"]["subject_id"] == subject
    fields = {name: f["value"] for name, f in package["fields"].items()}
    assert fields["email"] == "ada.lovelace@example.com"
    assert fields["national_id"] and fields["family_name"] == "Lovelace"
    assert set(fields) == set(ADA)
    consent = package["consent"]
    assert consent["consented_purposes"] == ["marketing"]
    assert [e["purpose"] for e in consent["events"]] == ["marketing"]
    assert consent["receipts"][0]["receipt"]["consentReceiptID"] == granted.receipt.receipt_id
    seen = [(a["actor"], a["action"], a["purpose"]) for a in package["access_history"]]
    assert ("order-service", "CreateSubject", "") in seen
    assert ("mkt-1", "GetSubject", "marketing") in seen

    [entry] = [e.entry for e in audit.iter_query(vault.app.db.engine, action="ExportSubjectData")]
    assert entry.subject_ids == (subject,)
    assert entry.purpose == "data_subject_request"
    assert entry.justification == "DSR-2026-001"
    assert entry.consent_version == granted.consent_version
    assert set(entry.field_names) == set(fields)


def test_an_entry_the_vault_did_not_write_stays_out_of_the_access_package(
    vault: RunningVault,
) -> None:
    """The review's attack: a DBA inserts "EraseSubject by dpo-1" for a live subject. On
    the old code it appeared in the subject's access history; it has no valid MAC (the
    key is not in the database), so now it is left out, and the package says one was."""
    subject = vault.client().create(ADA).subject_id
    invented = audit.AuditEntry(
        time=vault.app.clock.now(),
        actor="dpo-1",
        actor_roles=("dpo",),
        tenant="acme",
        action="EraseSubject",
        subject_ids=(subject,),
        decision="allow",
        result_code="OK",
    )
    audit.use_entry_mac(vault.app.db.engine, None)  # the DBA writes without the key
    try:
        with vault.app.db.engine.begin() as conn:
            audit.append_in(conn, [invented])
    finally:
        audit.use_entry_mac(
            vault.app.db.engine, audit.EntryMac.from_file(vault.settings.resolved_audit_mac_key)
        )
    response = _rights(
        vault.client(**DPO),
        "ExportSubjectData",
        rpb.ExportSubjectDataRequest(subject_id=subject, reason="DSR-2026-002"),
    )
    package = json.loads(response.package_json)
    actors = {a["actor"] for a in package["access_history"]}
    assert "order-service" in actors
    assert "dpo-1" not in actors
    assert package["access_history_entries_omitted"] == 1


@pytest.mark.parametrize(
    ("method", "request_for"),
    [
        ("ExportSubjectData", lambda s: rpb.ExportSubjectDataRequest(subject_id=s, reason="DSR-1")),
        (
            "RectifySubjectData",
            lambda s: rpb.RectifySubjectDataRequest(
                subject_id=s, expected_version=1, set_fields={"city": "London"}, reason="DSR-1"
            ),
        ),
        (
            "RestrictProcessing",
            lambda s: rpb.RestrictProcessingRequest(subject_id=s, reason="DSR-1"),
        ),
        ("LiftRestriction", lambda s: rpb.LiftRestrictionRequest(subject_id=s, reason="DSR-1")),
        ("EraseSubjectData", lambda s: rpb.EraseSubjectDataRequest(subject_id=s, reason="DSR-1")),
    ],
)
def test_each_right_needs_its_permission_and_a_reason(
    vault: RunningVault, method: str, request_for: Any
) -> None:
    subject = vault.client().create(ADA).subject_id
    for who in (SERVICE, AGENT, ADMIN, {**ADMIN, "roles": ("admin", "dpo")}):
        with pytest.raises(VaultClientError) as caught:
            _rights(vault.client(**who), method, request_for(subject))
        assert caught.value.code == "PERMISSION_DENIED", who
    request = request_for(subject)
    request.reason = "  "
    with pytest.raises(VaultClientError) as caught:
        _rights(vault.client(**DPO), method, request)
    assert caught.value.code == "INVALID_ARGUMENT"
    with pytest.raises(VaultClientError) as caught:
        _rights(vault.client(tenant="globex", **DPO), method, request_for(subject))
    assert caught.value.code == "NOT_FOUND"


def test_rights_rectification_records_the_reason(vault: RunningVault) -> None:
    subject = vault.client().create(ADA).subject_id
    dpo = vault.client(**DPO)
    request = rpb.RectifySubjectDataRequest(
        subject_id=subject,
        expected_version=1,
        set_fields={"email": "ada@analytical.example"},
        reason="DSR-7: wrong e-mail address",
    )
    changed = _rights(dpo, "RectifySubjectData", request).subject
    assert changed.version == 2
    assert dpo.get(subject, "full", "data_subject_request", "DSR-7").fields["email"].value == (
        "ada@analytical.example"
    )
    [entry] = list(audit.iter_query(vault.app.db.engine, action="RectifySubjectData"))
    assert entry.entry.justification == "DSR-7: wrong e-mail address"
    assert entry.entry.field_names == ("email",)
    # The same message again would be a retry of that change (the client filled its
    # request_id): a new change at the same stale version is refused.
    request.ClearField("request_id")
    with pytest.raises(VaultClientError) as caught:
        _rights(dpo, "RectifySubjectData", request)  # still at version 1: stale
    assert caught.value.code == "ABORTED"


def test_rights_restriction_freezes_processing_but_not_the_subjects_own_requests(
    vault: RunningVault,
) -> None:
    service, dpo, agent = vault.client(), vault.client(**DPO), vault.client(**AGENT)
    subject = service.create(ADA).subject_id
    restricted = _rights(
        dpo, "RestrictProcessing", rpb.RestrictProcessingRequest(subject_id=subject, reason="DSR-3")
    ).subject
    assert restricted.state == pb.SUBJECT_STATE_RESTRICTED

    with pytest.raises(VaultClientError) as caught:
        agent.get(subject, "support", "support")
    assert caught.value.code == "FAILED_PRECONDITION"
    # a search does not even confirm a frozen subject exists
    assert agent.find("family_name", ADA["family_name"], "support", "support") == []
    assert dpo.get(subject, "full", "data_subject_request", "DSR-3").fields  # own request
    assert dpo.get(subject, "full", "legal", "LIT-1: claim").fields  # legal obligations
    again = _rights(
        dpo, "RestrictProcessing", rpb.RestrictProcessingRequest(subject_id=subject, reason="DSR-3")
    ).subject
    assert again.version == restricted.version  # already restricted: no change

    lifted = _rights(
        dpo, "LiftRestriction", rpb.LiftRestrictionRequest(subject_id=subject, reason="DSR-3 done")
    ).subject
    assert lifted.state == pb.SUBJECT_STATE_ACTIVE
    assert agent.get(subject, "support", "support").fields


def _needles(vault: RunningVault, subject: str) -> dict[str, list[bytes]]:
    """Every form the subject's data could take in the database."""
    normalized = vault.app.dictionary.normalize(ADA, require_all=True, today=date.today())
    # Values shorter than five characters (a country code) would match unrelated bytes.
    values = {v for v in (*ADA.values(), *normalized.values()) if len(v.strip()) >= 5}
    with vault.app.db.engine.connect() as conn:
        digests = [
            bytes(d)
            for d in conn.execute(
                sa.text("SELECT digest FROM blind_indexes WHERE subject_id = :s"), {"s": subject}
            ).scalars()
        ]
    assert len(digests) == len(vault.app.dictionary.searchable_fields)
    return {
        "values": [v.strip().encode() for v in values]
        + [v.strip().lower().encode() for v in values],
        "digests": [
            form
            for d in digests
            for form in (d, d.hex().encode(), base64.b64encode(d), base64.urlsafe_b64encode(d))
        ],
    }


def _scan(vault: RunningVault, needles: list[bytes]) -> list[str]:
    """`table.column` of every stored value that contains one of `needles`."""
    engine = vault.app.db.engine
    found = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    raw = (
                        bytes(value)
                        if isinstance(value, bytes | memoryview)
                        else str(value).encode()
                    )
                    if any(n in raw or n in raw.lower() for n in needles):
                        found.append(f"{table}.{column}")
    return found


def test_rights_erasure_leaves_nothing_decryptable_and_the_audit_log_verifies(
    vault: RunningVault,
) -> None:
    service, dpo = vault.client(), vault.client(**DPO)
    subject = service.create(ADA).subject_id
    fraud = vault.client(principal="fraud-1", roles=("fraud_analyst",))
    tokens = [
        service.tokenize(subject, "email", pb.TOKEN_KIND_RANDOM, "support").token,
        fraud.tokenize(
            subject, "national_id", pb.TOKEN_KIND_DETERMINISTIC, "fraud", "case FR-9"
        ).token,
    ]
    grant(service, subject, "marketing")
    vault.client(**MARKETER).get(subject, "marketing", "marketing")
    needles = _needles(vault, subject)
    assert _scan(vault, needles["digests"])  # the scan does find them while they exist
    assert _scan(vault, [t.encode() for t in tokens])

    erased = _rights(
        dpo, "EraseSubjectData", rpb.EraseSubjectDataRequest(subject_id=subject, reason="DSR-9")
    ).subject
    assert erased.state == pb.SUBJECT_STATE_ERASED
    again = _rights(
        dpo, "EraseSubjectData", rpb.EraseSubjectDataRequest(subject_id=subject, reason="DSR-9")
    ).subject
    assert again.version == erased.version  # a second erasure is a no-op

    assert _scan(vault, needles["values"]) == []
    assert _scan(vault, needles["digests"]) == []
    assert _scan(vault, [t.encode() for t in tokens]) == []
    with vault.app.db.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT wrapped_dek, kek_version, fields FROM subjects WHERE id = :s"),
            {"s": subject},
        ).one()
    assert tuple(row) == (None, None, None)  # the data key is gone: nothing can be opened
    with pytest.raises(VaultClientError) as caught:
        dpo.reveal(subject, "email", "data_subject_request", "DSR-9 check")
    assert caught.value.code == "FAILED_PRECONDITION"

    # The access package still reports the tombstone, consents and who saw the data.
    package = json.loads(
        _rights(
            dpo,
            "ExportSubjectData",
            rpb.ExportSubjectDataRequest(subject_id=subject, reason="DSR-9 follow-up"),
        ).package_json
    )
    assert package["fields"] == {} and package["subject"]["state"] == "erased"
    assert any(a["action"] == "EraseSubjectData" for a in package["access_history"])

    verifier = vault.app.audit_verifier()
    deadline = time.monotonic() + 20
    while True:
        report = audit.verify_log(vault.app.db.engine, verifier)
        if report.ok and report.pending == 0:
            break
        assert report.ok, report.problem
        assert time.monotonic() < deadline, "the audit integrator did not catch up"
        time.sleep(0.1)
