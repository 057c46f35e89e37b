"""The data-subject request workflow's mutating RPCs are idempotent (AIP-155): a retry
of Create, Verify, Decide or Cancel with the same request_id gets the first response
with one effect (one row, one state change event); the same id with another request is
ALREADY_EXISTS. A kept response holds no secret (the verification code) and no
proposed value; a wrong code counts even though its keyed call is rolled back. The
customer's own list is paged by sealed tokens."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from google.protobuf.message import Message

from tests.data import ADA, DPO
from tests.integration.consent_support import SERVICE
from tests.integration.harness import RunningVault
from tests.integration.request_support import (
    APPROVE,
    ERASURE,
    NEW_EMAIL,
    RECTIFICATION,
    RESTRICTION,
    customer_client,
    verification_code,
)
from vault.api.client import VaultClient, VaultClientError


def _twice(client: VaultClient, stub: object, method: str, request: Message) -> Message:
    """Send `request` twice (one request_id): both answers must be the same bytes."""
    first = client.call(stub, method, request)
    again = client.call(stub, method, request)
    assert again.SerializeToString(deterministic=True) == first.SerializeToString(
        deterministic=True
    )
    return first


def _refused_reuse(client: VaultClient, stub: object, method: str, request: Message) -> None:
    with pytest.raises(VaultClientError) as refused:
        client.call(stub, method, request)
    assert (refused.value.code, refused.value.reason) == (
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
    )


def _states(vault: RunningVault, request_id: str) -> list[str]:
    """The request's state changes, in order, as the event outbox recorded them."""
    query = sa.text(
        "SELECT facts FROM outbox_events WHERE kind = 'request_state_changed' ORDER BY id"
    )
    with vault.app.db.engine.connect() as conn:
        facts = [json.loads(row[0]) for row in conn.execute(query)]
    return [f["state"] for f in facts if f["request_id"] == request_id]


def _kept_responses(vault: RunningVault) -> bytes:
    with vault.app.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT response FROM idempotency_keys")).scalars()
        return b"".join(bytes(r) for r in rows if r is not None)


def test_create_verify_decide_and_cancel_replay_their_first_answer(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer, dpo = customer_client(vault, ada), vault.client(**DPO)
    key = str(uuid.uuid4())
    create = cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=RESTRICTION, request_id=key)
    created = _twice(customer, customer.customers, "CreateDataSubjectRequest", create)
    rid = created.request.request_id  # type: ignore[attr-defined]
    with vault.app.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM subject_requests")).scalar_one()
    assert rows == 1 and _states(vault, rid) == ["awaiting_verification"]
    create.kind = ERASURE
    _refused_reuse(customer, customer.customers, "CreateDataSubjectRequest", create)

    code = verification_code(vault, rid)
    verify = cus.VerifyDataSubjectRequestRequest(
        data_subject_request_id=rid, code=code, request_id=str(uuid.uuid4())
    )
    verified = _twice(customer, customer.customers, "VerifyDataSubjectRequest", verify)
    assert verified.request.verify_time.seconds > 0  # type: ignore[attr-defined]
    verify.code = "AAAAA-BBBBB"
    _refused_reuse(customer, customer.customers, "VerifyDataSubjectRequest", verify)

    decide = rpb.DecideDataSubjectRequestRequest(
        data_subject_request_id=rid, decision=APPROVE, reason="case 9", request_id=key
    )  # the customer's key on another method (and caller): another key
    decided = _twice(dpo, dpo.rights, "DecideDataSubjectRequest", decide)
    assert decided.request.decided_by == DPO["principal"]  # type: ignore[attr-defined]
    decide.reason = "case 10"
    _refused_reuse(dpo, dpo.rights, "DecideDataSubjectRequest", decide)
    assert _states(vault, rid) == ["awaiting_verification", "pending_decision", "fulfilled"]

    other = customer.call(
        customer.customers,
        "CreateDataSubjectRequest",
        cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=ERASURE),
    ).request.request_id
    cancel = cus.CancelDataSubjectRequestRequest(
        data_subject_request_id=other, request_id=str(uuid.uuid4())
    )
    _twice(customer, customer.customers, "CancelDataSubjectRequest", cancel)
    assert _states(vault, other) == ["awaiting_verification", "cancelled"]
    cancel.data_subject_request_id = rid
    _refused_reuse(customer, customer.customers, "CancelDataSubjectRequest", cancel)

    kept = _kept_responses(vault)
    assert rid.encode() in kept  # the responses are kept...
    assert code.encode() not in kept and code.replace("-", "").encode() not in kept  # no code


def test_a_kept_rectification_holds_no_proposed_value(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer = customer_client(vault, ada)
    create = cus.CreateDataSubjectRequestRequest(
        subject_id=ada,
        kind=RECTIFICATION,
        proposed_values={"email": NEW_EMAIL},
        request_id=str(uuid.uuid4()),
    )
    created = _twice(customer, customer.customers, "CreateDataSubjectRequest", create)
    assert list(created.request.proposed_fields) == ["email"]  # type: ignore[attr-defined]
    kept = _kept_responses(vault)
    assert b"email" in kept and NEW_EMAIL.encode() not in kept


def test_wrong_codes_count_although_keyed_calls_roll_back(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer = customer_client(vault, ada)
    rid = customer.call(
        customer.customers,
        "CreateDataSubjectRequest",
        cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=ERASURE),
    ).request.request_id
    verification_code(vault, rid)
    wrong = cus.VerifyDataSubjectRequestRequest(
        data_subject_request_id=rid, code="AAAAA-BBBBB", request_id=str(uuid.uuid4())
    )
    codes = []
    for _ in range(6):  # one key: a failed call is not remembered, so each runs afresh
        with pytest.raises(VaultClientError) as refused:
            customer.call(customer.customers, "VerifyDataSubjectRequest", wrong)
        codes.append(refused.value.code)
    assert codes == ["INVALID_ARGUMENT"] * 5 + ["FAILED_PRECONDITION"]  # locked after five
    with vault.app.db.engine.connect() as conn:
        query = sa.text("SELECT verification_failures FROM subject_requests WHERE id = :id")
        assert conn.execute(query, {"id": rid}).scalar_one() == 5
    with vault.app.db.engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM idempotency_keys WHERE method LIKE :m")
        keys = conn.execute(query, {"m": "%/VerifyDataSubjectRequest"}).scalar_one()
    assert keys == 0  # nothing remembered of a refused call


def test_the_customers_own_list_is_paged_by_sealed_tokens(vault: RunningVault) -> None:
    ada = vault.client(**SERVICE).create(ADA).subject_id
    customer = customer_client(vault, ada)
    made = []
    for _ in range(5):
        response = customer.call(
            customer.customers,
            "CreateDataSubjectRequest",
            cus.CreateDataSubjectRequestRequest(subject_id=ada, kind=ERASURE),
        )
        made.append(response.request.request_id)
        customer.call(
            customer.customers,
            "CancelDataSubjectRequest",
            cus.CancelDataSubjectRequestRequest(data_subject_request_id=made[-1]),
        )
    seen: list[str] = []
    tokens: list[str] = []
    token = ""
    while True:
        page = customer.call(
            customer.customers,
            "ListOwnDataSubjectRequests",
            cus.ListOwnDataSubjectRequestsRequest(subject_id=ada, page_size=2, page_token=token),
        )
        assert len(page.requests) <= 2
        seen += [r.request_id for r in page.requests]
        token = page.next_page_token
        if not token:
            break
        tokens.append(token)
    assert seen == made[::-1] and len(tokens) == 2  # every one once, newest first
    assert all("." not in t and str(ada) not in t for t in tokens)  # sealed, not a cursor
    forged = tokens[0][:-2] + ("AA" if not tokens[0].endswith("AA") else "BB")
    with pytest.raises(VaultClientError) as refused:
        customer.call(
            customer.customers,
            "ListOwnDataSubjectRequests",
            cus.ListOwnDataSubjectRequestsRequest(subject_id=ada, page_token=forged),
        )
    assert refused.value.code == "INVALID_ARGUMENT"
    assert [field for field, _ in refused.value.violations] == ["page_token"]
    with pytest.raises(VaultClientError) as too_big:
        customer.call(
            customer.customers,
            "ListOwnDataSubjectRequests",
            cus.ListOwnDataSubjectRequestsRequest(subject_id=ada, page_size=101),
        )
    assert too_big.value.code == "INVALID_ARGUMENT"
