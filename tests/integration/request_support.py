"""What the data-subject request tests share: the callers, the kinds and decisions,
and the front end's part (finding a new request and getting its code)."""

from __future__ import annotations

from typing import Any

from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus
from customer_vault_client.gen.customervault.v1 import requests_pb2 as req
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb

from tests.integration.harness import RunningVault
from vault.api.client import VaultClient

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}
OFFICER: dict[str, Any] = {"principal": "officer-1", "roles": ("compliance_officer",)}
ERASURE = req.DATA_SUBJECT_REQUEST_KIND_ERASURE
RECTIFICATION = req.DATA_SUBJECT_REQUEST_KIND_RECTIFICATION
RESTRICTION = req.DATA_SUBJECT_REQUEST_KIND_RESTRICTION
APPROVE = rpb.DATA_SUBJECT_REQUEST_DECISION_APPROVE
REJECT = rpb.DATA_SUBJECT_REQUEST_DECISION_REJECT
NEW_EMAIL = "ada.byron@example.net"


def customer_client(vault: RunningVault, subject_id: str) -> VaultClient:
    return vault.client(principal=f"customer:{subject_id}", roles=("customer",), subject=subject_id)


def verification_code(vault: RunningVault, request_id: str) -> str:
    """What the front end does: find the new request in the queue, get its code."""
    front = vault.client(**FRONTEND)
    waiting = front.call(
        front.rights,
        "ListDataSubjectRequests",
        rpb.ListDataSubjectRequestsRequest(
            states=[req.DATA_SUBJECT_REQUEST_STATE_AWAITING_VERIFICATION]
        ),
    )
    assert request_id in [r.request_id for r in waiting.requests]
    response = front.call(
        front.customers,
        "IssueRequestVerificationCode",
        cus.IssueRequestVerificationCodeRequest(data_subject_request_id=request_id),
    )
    return str(response.code)


def create_request(
    customer: VaultClient, subject_id: str, kind: int, **values: str
) -> req.DataSubjectRequest:
    response = customer.call(
        customer.customers,
        "CreateDataSubjectRequest",
        cus.CreateDataSubjectRequestRequest(
            subject_id=subject_id, kind=kind, proposed_values=values
        ),
    )
    return response.request


def verify_request(customer: VaultClient, request_id: str, code: str) -> req.DataSubjectRequest:
    response = customer.call(
        customer.customers,
        "VerifyDataSubjectRequest",
        cus.VerifyDataSubjectRequestRequest(data_subject_request_id=request_id, code=code),
    )
    return response.request


def decide_request(
    client: VaultClient, request_id: str, decision: int, reason: str
) -> req.DataSubjectRequest:
    response = client.call(
        client.rights,
        "DecideDataSubjectRequest",
        rpb.DecideDataSubjectRequestRequest(
            data_subject_request_id=request_id, decision=decision, reason=reason
        ),
    )
    return response.request


def verified_request(
    vault: RunningVault, subject_id: str, kind: int, **values: str
) -> tuple[VaultClient, str]:
    customer = customer_client(vault, subject_id)
    created = create_request(customer, subject_id, kind, **values)
    verify_request(customer, created.request_id, verification_code(vault, created.request_id))
    return customer, created.request_id
