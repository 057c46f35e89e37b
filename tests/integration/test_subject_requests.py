"""Data-subject requests through the real server: a customer asks, re-verifies with a
code the front end delivers, the DPO decides; the effect happens with the decision.

Attacks: another subject's request, deciding without re-verification, wrong codes, a
role that may not decide. No proposed value reaches the database in clear or the log.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus
from customer_vault_client.gen.customervault.v1 import events_pb2 as epb
from customer_vault_client.gen.customervault.v1 import requests_pb2 as req
from customer_vault_client.gen.customervault.v1 import retention_pb2 as retpb
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import rights_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import audit
from tests.data import ADA, DPO, GRACE
from tests.integration.consent_support import SERVICE, MovableClock
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.integration.request_support import (
    APPROVE,
    ERASURE,
    FRONTEND,
    NEW_EMAIL,
    OFFICER,
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
from vault.api.client import VaultClient, VaultClientError
from vault.principal import Principal
from vault.testing import token_issuer


def _own(customer: VaultClient, subject_id: str) -> list[req.DataSubjectRequest]:
    response = customer.call(
        customer.customers,
        "ListOwnDataSubjectRequests",
        cus.ListOwnDataSubjectRequestsRequest(subject_id=subject_id),
    )
    return list(response.requests)


def _entries(vault: RunningVault, action: str) -> list[audit.AuditEntry]:
    return [e.entry for e in audit.iter_query(vault.app.db.engine, action=action)]


def test_an_approved_erasure_erases_and_the_customer_sees_it_fulfilled(
    vault: RunningVault,
) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer = customer_client(vault, ada)
    created = create_request(customer, ada, ERASURE)
    assert created.state == req.DATA_SUBJECT_REQUEST_STATE_AWAITING_VERIFICATION
    assert created.request_id.startswith("DSR-")
    assert created.regulation.startswith("GDPR")
    assert created.deadline.ToDatetime() > created.create_time.ToDatetime()

    code = verification_code(vault, created.request_id)
    verified = verify_request(customer, created.request_id, code)
    assert verified.state == req.DATA_SUBJECT_REQUEST_STATE_PENDING_DECISION
    with pytest.raises(VaultClientError) as replay:  # the code works once
        verify_request(customer, created.request_id, code)
    assert replay.value.code == "FAILED_PRECONDITION"

    dpo = vault.client(**DPO)
    queue = dpo.call(dpo.rights, "ListDataSubjectRequests", rpb.ListDataSubjectRequestsRequest())
    assert [r.request_id for r in queue.requests] == [created.request_id]

    decided = decide_request(dpo, created.request_id, APPROVE, "identity confirmed, no hold")
    assert decided.state == req.DATA_SUBJECT_REQUEST_STATE_FULFILLED
    assert decided.decided_by == "dpo-1"

    with vault.app.db.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT state, wrapped_dek FROM subjects WHERE id = :id"), {"id": ada}
        ).one()
    assert (row.state, row.wrapped_dek) == ("erased", None)

    [mine] = _own(customer, ada)  # the tombstone still shows the customer its request
    assert mine.state == req.DATA_SUBJECT_REQUEST_STATE_FULFILLED
    assert mine.decision_reason == "identity confirmed, no hold"
    assert mine.decided_by == ""  # a customer is not told which colleague decided

    # The organization's systems learn each state change from the event feed (outbox).
    front = vault.client(**FRONTEND)
    feed = front.call(
        front.events,
        "ListEvents",
        epb.ListEventsRequest(kinds=[epb.EVENT_KIND_REQUEST_STATE_CHANGED]),
    )
    changes = [dict(e.facts) for e in feed.events]
    assert [(c.get("previous_state", ""), c["state"]) for c in changes] == [
        ("", "awaiting_verification"),
        ("awaiting_verification", "pending_decision"),
        ("pending_decision", "fulfilled"),
    ]
    assert {c["request_id"] for c in changes} == {created.request_id}
    assert {e.subject_id for e in feed.events} == {ada}
    assert all("identity confirmed" not in v for c in changes for v in c.values())

    [entry] = _entries(vault, "DecideDataSubjectRequest")
    assert (entry.actor, entry.decision, entry.subject_ids) == ("dpo-1", "allow", (ada,))
    assert entry.extra["request"] == created.request_id
    assert entry.extra["transition"] == "pending_decision->fulfilled"
    assert entry.justification.startswith(created.request_id)
    steps = [
        e.extra.get("transition")
        for action in ("CreateDataSubjectRequest", "VerifyDataSubjectRequest")
        for e in _entries(vault, action)
        if e.result_code == "OK"
    ]
    assert steps == ["->awaiting_verification", "awaiting_verification->pending_decision"]


def test_a_request_without_re_verification_cannot_be_decided(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    created = create_request(customer_client(vault, ada), ada, ERASURE)
    channel = grpc.insecure_channel(vault.address)
    try:
        stub = rights_pb2_grpc.RightsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.DecideDataSubjectRequest(
                rpb.DecideDataSubjectRequestRequest(
                    data_subject_request_id=created.request_id,
                    decision=APPROVE,
                    reason="looks fine",
                ),
                metadata=(("authorization", f"Bearer {vault.token(**DPO)}"),),
            )
    finally:
        channel.close()
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(refused.value)
    assert status is not None
    failures = []
    for detail in status.details:
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            found = error_details_pb2.PreconditionFailure()
            detail.Unpack(found)
            failures.extend(found.violations)
    assert [(v.type, v.subject) for v in failures] == [
        ("VERIFICATION", f"requests/{created.request_id}")
    ]
    [entry] = _entries(vault, "DecideDataSubjectRequest")
    assert (entry.decision, entry.result_code) == ("deny", "FAILED_PRECONDITION")
    assert entry.reason == "request is awaiting_verification"
    with vault.app.db.engine.connect() as conn:
        state = conn.execute(sa.text("SELECT state FROM subjects WHERE id = :id"), {"id": ada})
        assert state.scalar_one() == "active"


def test_a_customer_cannot_see_or_touch_another_subjects_request(vault: RunningVault) -> None:
    service = vault.client(**SERVICE)
    ada, grace = service.create(ADA).subject_id, service.create(GRACE).subject_id
    adas = create_request(customer_client(vault, ada), ada, ERASURE)
    intruder = customer_client(vault, grace)

    with pytest.raises(VaultClientError) as creating:
        create_request(intruder, ada, ERASURE)
    with pytest.raises(VaultClientError) as verifying:
        verify_request(intruder, adas.request_id, "AAAAA-AAAAA")
    with pytest.raises(VaultClientError) as cancelling:
        intruder.call(
            intruder.customers,
            "CancelDataSubjectRequest",
            cus.CancelDataSubjectRequestRequest(data_subject_request_id=adas.request_id),
        )
    with pytest.raises(VaultClientError) as listing:
        _own(intruder, ada)
    for refused in (creating, verifying, cancelling, listing):
        assert refused.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as deciding:  # a customer never decides
        decide_request(intruder, adas.request_id, APPROVE, "mine now")
    assert deciding.value.code == "PERMISSION_DENIED"

    denied = [
        e
        for action in (
            "CreateDataSubjectRequest",
            "VerifyDataSubjectRequest",
            "CancelDataSubjectRequest",
            "ListOwnDataSubjectRequests",
        )
        for e in _entries(vault, action)
        if e.actor == f"customer:{grace}"
    ]
    assert len(denied) == 4
    assert {(e.decision, e.reason) for e in denied} == {
        ("deny", "customer bound to another subject")
    }
    assert _own(customer_client(vault, ada), ada)[0].state == (
        req.DATA_SUBJECT_REQUEST_STATE_AWAITING_VERIFICATION
    )


def test_a_rejection_keeps_the_data_and_shows_the_reason(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer, request_id = verified_request(vault, ada, ERASURE)
    dpo = vault.client(**DPO)
    with pytest.raises(VaultClientError) as no_reason:
        decide_request(dpo, request_id, REJECT, "  ")
    assert no_reason.value.code == "INVALID_ARGUMENT"

    decided = decide_request(dpo, request_id, REJECT, "open invoice: kept under art. 17(3)(b)")
    assert decided.state == req.DATA_SUBJECT_REQUEST_STATE_REJECTED
    [mine] = _own(customer, ada)
    assert mine.decision_reason == "open invoice: kept under art. 17(3)(b)"
    view = dpo.get(ada, "full", "data_subject_request", "DSR-9: check")
    assert view.fields["email"].value == "ada.lovelace@example.com"
    with pytest.raises(VaultClientError) as twice:  # final
        decide_request(dpo, request_id, APPROVE, "changed my mind")
    assert twice.value.code == "FAILED_PRECONDITION"


def test_an_approved_rectification_changes_the_fields_and_never_stores_them_in_clear(
    vault: RunningVault,
) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    _, request_id = verified_request(vault, ada, RECTIFICATION, email=NEW_EMAIL)
    with vault.app.db.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM subject_requests")).mappings().one()
    assert NEW_EMAIL.encode() not in b"".join(
        v if isinstance(v, bytes) else str(v).encode() for v in stored.values()
    )

    officer = vault.client(**OFFICER)  # sees the queue, not the proposed values
    seen = officer.call(
        officer.rights,
        "GetDataSubjectRequest",
        rpb.GetDataSubjectRequestRequest(data_subject_request_id=request_id),
    ).request
    assert dict(seen.proposed_values) == {}
    assert list(seen.proposed_fields) == ["email"]  # names, never values
    with pytest.raises(VaultClientError) as officer_decides:
        decide_request(officer, request_id, APPROVE, "fine")
    assert officer_decides.value.code == "PERMISSION_DENIED"

    dpo = vault.client(**DPO)
    shown = dpo.call(
        dpo.rights,
        "GetDataSubjectRequest",
        rpb.GetDataSubjectRequestRequest(data_subject_request_id=request_id),
    ).request
    assert dict(shown.proposed_values) == {"email": NEW_EMAIL}
    decide_request(dpo, request_id, APPROVE, "new address confirmed")
    view = dpo.get(ada, "full", "data_subject_request", "DSR-9: check")
    assert view.fields["email"].value == NEW_EMAIL
    logged = [e.entry for e in audit.iter_query(vault.app.db.engine)]
    assert logged and not [e for e in logged if "ada.byron" in repr(e).lower()]
    [decided] = [
        e for e in logged if e.action == "DecideDataSubjectRequest" and e.decision == "allow"
    ]
    assert decided.field_names == ("email",)  # the names of what changed, never the values


def test_an_approved_restriction_restricts(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    _, request_id = verified_request(vault, ada, RESTRICTION)
    decide_request(vault.client(**DPO), request_id, APPROVE, "accuracy contested")
    with vault.app.db.engine.connect() as conn:
        state = conn.execute(sa.text("SELECT state FROM subjects WHERE id = :id"), {"id": ada})
        assert state.scalar_one() == "restricted"


def test_wrong_codes_are_counted_and_five_lock_until_a_new_code(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer = customer_client(vault, ada)
    created = create_request(customer, ada, ERASURE)
    verification_code(vault, created.request_id)
    for _ in range(5):
        with pytest.raises(VaultClientError) as wrong:
            verify_request(customer, created.request_id, "AAAAA-AAAAA")
        assert wrong.value.code == "INVALID_ARGUMENT"
    fresh = verification_code(vault, created.request_id)
    with pytest.raises(VaultClientError) as locked:
        verify_request(customer, created.request_id, "AAAAA-AAAAA")
    assert locked.value.code == "INVALID_ARGUMENT"  # a new code reset the count
    assert verify_request(customer, created.request_id, fresh).state == (
        req.DATA_SUBJECT_REQUEST_STATE_PENDING_DECISION
    )


def test_the_customer_may_withdraw_and_bad_input_is_refused(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer = customer_client(vault, ada)
    created = create_request(customer, ada, ERASURE)
    cancelled = customer.call(
        customer.customers,
        "CancelDataSubjectRequest",
        cus.CancelDataSubjectRequestRequest(data_subject_request_id=created.request_id),
    ).request
    assert cancelled.state == req.DATA_SUBJECT_REQUEST_STATE_CANCELLED
    with pytest.raises(VaultClientError) as bad:
        customer.call(
            customer.customers,
            "CreateDataSubjectRequest",
            cus.CreateDataSubjectRequestRequest(
                subject_id=ada,
                kind=RECTIFICATION,
                proposed_values={"email": "not an email"},
                jurisdiction="XX",
            ),
        )
    assert bad.value.code == "INVALID_ARGUMENT"
    assert {field for field, _ in bad.value.violations} == {"jurisdiction"}
    pipl = customer.call(
        customer.customers,
        "CreateDataSubjectRequest",
        cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=RESTRICTION, jurisdiction="CN"),
    ).request
    assert pipl.regulation.startswith("PIPL")


def test_an_approval_that_cannot_be_carried_out_changes_nothing(vault: RunningVault) -> None:
    """A legal hold refuses the erasure: the request stays pending, the data stays, and
    the refused decision is audited; the DPO can then reject it with the reason."""
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer, request_id = verified_request(vault, ada, ERASURE)
    dpo = vault.client(**DPO)
    dpo.call(
        dpo.retention,
        "SetLegalHold",
        retpb.SetLegalHoldRequest(subject_id=ada, reason="MATTER-12"),
    )
    with pytest.raises(VaultClientError) as held:
        decide_request(dpo, request_id, APPROVE, "erase")
    assert held.value.code == "FAILED_PRECONDITION"
    [mine] = _own(customer, ada)
    assert mine.state == req.DATA_SUBJECT_REQUEST_STATE_PENDING_DECISION
    assert mine.decision_reason == ""
    with vault.app.db.engine.connect() as conn:
        state = conn.execute(sa.text("SELECT state FROM subjects WHERE id = :id"), {"id": ada})
        assert state.scalar_one() == "active"
    [refused] = _entries(vault, "DecideDataSubjectRequest")
    assert (refused.decision, refused.result_code) == ("deny", "FAILED_PRECONDITION")

    rejected = decide_request(dpo, request_id, REJECT, "MATTER-12: kept under a legal hold")
    assert rejected.state == req.DATA_SUBJECT_REQUEST_STATE_REJECTED


def test_a_request_never_confirmed_before_its_deadline_expires(tmp_path: Path) -> None:
    clock = MovableClock()
    with running_vault(settings_for(tmp_path / "data", None), clock=clock) as vault:
        issuer = token_issuer(vault.settings, clock)
        ada = vault.client(**SERVICE).create(ADA).subject_id
        made = create_request(customer_client(vault, ada), ada, ERASURE)
        code = verification_code(vault, made.request_id)
        clock.advance(timedelta(days=40))  # past one month
        later = VaultClient(
            vault.address,
            issuer.issue(
                Principal(f"customer:{ada}", "acme", frozenset({"customer"}), subject=ada),
                timedelta(minutes=10),
            ),
        )
        vault.clients.append(later)
        expired = verify_request(later, made.request_id, code)
        assert expired.state == req.DATA_SUBJECT_REQUEST_STATE_EXPIRED
        front = VaultClient(
            vault.address,
            issuer.issue(
                Principal("shop-frontend", "acme", frozenset({"frontend"})), timedelta(minutes=10)
            ),
        )
        vault.clients.append(front)
        with pytest.raises(VaultClientError) as no_code:
            front.call(
                front.customers,
                "IssueRequestVerificationCode",
                cus.IssueRequestVerificationCodeRequest(data_subject_request_id=made.request_id),
            )
        assert no_code.value.code == "FAILED_PRECONDITION"
        [entry] = [
            e
            for e in _entries(vault, "VerifyDataSubjectRequest")
            if e.extra.get("transition") == "awaiting_verification->expired"
        ]
        assert entry.subject_ids == (ada,)
