"""Every RPC of every service, as a table: how to call it validly, as whom, and with a
malformed request. `test_audit_every_rpc.py` checks each call leaves one audit entry;
`test_hostile_input.py` fuzzes the same methods."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from customer_vault_client.gen.customervault.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    consent_pb2,
    consent_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    requests_pb2,
    retention_pb2,
    retention_pb2_grpc,
    rights_pb2,
    rights_pb2_grpc,
    vault_pb2,
    vault_pb2_grpc,
)
from google.protobuf.message import Message

import audit
from tests.data import ADA, ADMIN, DPO, FRAUD, SERVICE
from tests.integration.harness import RunningVault

Build = Callable[[dict[str, str]], Message]


@dataclass(frozen=True)
class Case:
    """How to call one RPC: a valid request, who may call it, and a malformed request."""

    allowed_as: dict[str, Any]
    request: Build
    malformed: Build
    streaming: bool = False
    # What an allowed call may answer besides OK, when the policy allows it but the
    # thing it names does not exist in the fixture (no retention notice is pending).
    allowed_codes: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.OK,)
    # What a caller the policy does not allow gets.
    denied_codes: tuple[grpc.StatusCode, ...] = (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
    )
    # Entries an allowed call leaves: one, except an export, which adds one per batch
    # sent (linking the batch's subjects; the fixture's two subjects are one batch).
    allowed_entries: int = 1


CASES: dict[str, Case] = {
    "customervault.v1.VaultService/CreateSubject": Case(
        SERVICE,
        lambda f: vault_pb2.CreateSubjectRequest(fields=ADA),
        lambda f: vault_pb2.CreateSubjectRequest(fields={"email": "nope"}),
    ),
    "customervault.v1.VaultService/BatchCreateSubjects": Case(
        SERVICE,
        lambda f: vault_pb2.BatchCreateSubjectsRequest(items=[vault_pb2.SubjectInput(fields=ADA)]),
        lambda f: vault_pb2.BatchCreateSubjectsRequest(),
    ),
    "customervault.v1.VaultService/GetSubject": Case(
        DPO,
        lambda f: vault_pb2.GetSubjectRequest(
            subject_id=f["subject"],
            view="full",
            purpose="data_subject_request",
            justification="DSR-2",
        ),
        lambda f: vault_pb2.GetSubjectRequest(subject_id=f["subject"], view="full", purpose="x"),
    ),
    "customervault.v1.VaultService/UpdateSubject": Case(
        SERVICE,
        lambda f: vault_pb2.UpdateSubjectRequest(
            subject_id=f["subject"], expected_version=1, set_fields={"city": "London"}
        ),
        lambda f: vault_pb2.UpdateSubjectRequest(subject_id=f["subject"], expected_version=1),
    ),
    "customervault.v1.VaultService/FindSubjects": Case(
        DPO,
        lambda f: vault_pb2.FindSubjectsRequest(
            field="email",
            value=ADA["email"],
            view="full",
            purpose="data_subject_request",
            justification="DSR-2",
        ),
        lambda f: vault_pb2.FindSubjectsRequest(
            field="notes", value="x", view="full", purpose="data_subject_request"
        ),
    ),
    "customervault.v1.VaultService/EraseSubject": Case(
        DPO,
        lambda f: vault_pb2.EraseSubjectRequest(subject_id=f["victim"], reason="DSR-1"),
        lambda f: vault_pb2.EraseSubjectRequest(subject_id="", reason=""),
    ),
    "customervault.v1.VaultService/RecordActivity": Case(
        SERVICE,
        lambda f: vault_pb2.RecordActivityRequest(subject_id=f["subject"]),
        lambda f: vault_pb2.RecordActivityRequest(subject_id=""),
    ),
    "customervault.v1.VaultService/ExportView": Case(
        DPO,
        lambda f: vault_pb2.ExportViewRequest(
            view="full", purpose="data_subject_request", justification="DSR-2"
        ),
        lambda f: vault_pb2.ExportViewRequest(view="nope", purpose="data_subject_request"),
        streaming=True,
        allowed_entries=2,
    ),
    "customervault.v1.VaultService/RevealField": Case(
        DPO,
        lambda f: vault_pb2.RevealFieldRequest(
            subject_id=f["subject"],
            field="email",
            purpose="data_subject_request",
            justification="DSR-2",
        ),
        lambda f: vault_pb2.RevealFieldRequest(subject_id=f["subject"], field="email"),
    ),
    "customervault.v1.VaultService/Tokenize": Case(
        SERVICE,
        lambda f: vault_pb2.TokenizeRequest(
            subject_id=f["subject"],
            field="email",
            kind=vault_pb2.TOKEN_KIND_RANDOM,
            purpose="support",
        ),
        lambda f: vault_pb2.TokenizeRequest(
            subject_id=f["subject"], field="email", purpose="support"
        ),
    ),
    "customervault.v1.VaultService/Detokenize": Case(
        FRAUD,
        lambda f: vault_pb2.DetokenizeRequest(
            token=f["token"], purpose="fraud", justification="case FR-1"
        ),
        lambda f: vault_pb2.DetokenizeRequest(token="", purpose="fraud", justification="x"),
    ),
    "customervault.v1.PolicyAdminService/ReloadPolicy": Case(
        ADMIN,
        lambda f: admin_pb2.ReloadPolicyRequest(),
        None,  # type: ignore[arg-type]  # no field to get wrong
    ),
    "customervault.v1.PolicyAdminService/GetPolicyStatus": Case(
        ADMIN,
        lambda f: admin_pb2.GetPolicyStatusRequest(),
        None,  # type: ignore[arg-type]
    ),
    "customervault.v1.PolicyAdminService/CheckPolicy": Case(
        ADMIN,
        lambda f: admin_pb2.CheckPolicyRequest(
            principal="x",
            tenant="acme",
            roles=["support_agent"],
            action="subjects:read",
            resource="view:support",
            purpose="support",
        ),
        lambda f: admin_pb2.CheckPolicyRequest(action="subjects:fly"),
    ),
    "customervault.v1.PolicyAdminService/SimulatePolicy": Case(
        ADMIN,
        lambda f: admin_pb2.SimulatePolicyRequest(fail_on=["widen-restricted"]),
        lambda f: admin_pb2.SimulatePolicyRequest(
            draft_files=[admin_pb2.PolicyFile(name="vault_policy.csv", content="p, x\n")]
        ),
    ),
    "customervault.v1.PolicyAdminService/ListPolicyVersions": Case(
        ADMIN,
        lambda f: admin_pb2.ListPolicyVersionsRequest(),
        lambda f: admin_pb2.ListPolicyVersionsRequest(page_size=-1),
    ),
    "customervault.v1.AuditService/QueryEntries": Case(
        DPO,
        lambda f: audit_pb2.QueryEntriesRequest(page_size=5),
        lambda f: audit_pb2.QueryEntriesRequest(page_size=5, page_token="garbage"),
    ),
    "customervault.v1.AuditService/GetEntry": Case(
        DPO,
        lambda f: audit_pb2.GetEntryRequest(index=0),
        lambda f: audit_pb2.GetEntryRequest(index=-1),
        allowed_codes=(grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND),
    ),
    "customervault.v1.AuditService/ExplainEntry": Case(
        DPO,
        lambda f: audit_pb2.ExplainEntryRequest(index=0),
        lambda f: audit_pb2.ExplainEntryRequest(index=-1),
        allowed_codes=(grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND),
    ),
    "customervault.v1.AuditService/SubjectHistory": Case(
        DPO,
        lambda f: audit_pb2.SubjectHistoryRequest(subject_id=f["subject"]),
        lambda f: audit_pb2.SubjectHistoryRequest(),
    ),
    "customervault.v1.AuditService/GetLatestCheckpoint": Case(
        DPO,
        lambda f: audit_pb2.GetLatestCheckpointRequest(),
        None,  # type: ignore[arg-type]
    ),
    "customervault.v1.AuditService/GetInclusionProof": Case(
        DPO,
        lambda f: audit_pb2.GetInclusionProofRequest(index=0, tree_size=1),
        lambda f: audit_pb2.GetInclusionProofRequest(index=5, tree_size=1),
    ),
    "customervault.v1.AuditService/GetConsistencyProof": Case(
        DPO,
        lambda f: audit_pb2.GetConsistencyProofRequest(first_size=1, second_size=1),
        lambda f: audit_pb2.GetConsistencyProofRequest(first_size=3, second_size=1),
    ),
    "customervault.v1.AuditService/VerifyLogWithProgress": Case(
        DPO,
        lambda f: audit_pb2.VerifyLogWithProgressRequest(),
        lambda f: audit_pb2.VerifyLogWithProgressRequest(trusted_checkpoint="not a note"),
        streaming=True,
    ),
    "customervault.v1.AuditService/VerifyLog": Case(
        DPO,
        lambda f: audit_pb2.VerifyLogRequest(),
        lambda f: audit_pb2.VerifyLogRequest(trusted_checkpoint="not a note"),
    ),
}

CONSENT_SOURCE = consent_pb2.ConsentSource(
    channel=consent_pb2.CONSENT_CHANNEL_WEB, notice_version="2026-01"
)
CASES |= {
    "customervault.v1.ConsentService/GrantConsent": Case(
        SERVICE,
        lambda f: consent_pb2.GrantConsentRequest(
            subject_id=f["subject"], purposes=["marketing"], source=CONSENT_SOURCE
        ),
        lambda f: consent_pb2.GrantConsentRequest(
            subject_id=f["subject"], purposes=["astrology"], source=CONSENT_SOURCE
        ),
    ),
    "customervault.v1.ConsentService/WithdrawConsent": Case(
        SERVICE,
        lambda f: consent_pb2.WithdrawConsentRequest(
            subject_id=f["subject"], purposes=["marketing"], source=CONSENT_SOURCE
        ),
        lambda f: consent_pb2.WithdrawConsentRequest(
            subject_id=f["subject"], source=CONSENT_SOURCE
        ),
    ),
    "customervault.v1.ConsentService/OptOut": Case(
        SERVICE,
        lambda f: consent_pb2.OptOutRequest(
            subject_id=f["subject"], scopes=["all_sharing"], source=CONSENT_SOURCE
        ),
        lambda f: consent_pb2.OptOutRequest(subject_id=f["subject"], scopes=["x"]),
    ),
    "customervault.v1.ConsentService/GetConsent": Case(
        SERVICE,
        lambda f: consent_pb2.GetConsentRequest(subject_id=f["subject"]),
        lambda f: consent_pb2.GetConsentRequest(),
    ),
    "customervault.v1.ConsentService/ListConsentEvents": Case(
        SERVICE,
        lambda f: consent_pb2.ListConsentEventsRequest(subject_id=f["subject"]),
        lambda f: consent_pb2.ListConsentEventsRequest(),
    ),
    "customervault.v1.ConsentService/GetConsentReceipt": Case(
        SERVICE,
        lambda f: consent_pb2.GetConsentReceiptRequest(
            subject_id=f["subject"], receipt_id=f["receipt"]
        ),
        lambda f: consent_pb2.GetConsentReceiptRequest(subject_id=f["subject"], receipt_id="x"),
    ),
    "customervault.v1.RightsService/ExportSubjectData": Case(
        DPO,
        lambda f: rights_pb2.ExportSubjectDataRequest(subject_id=f["subject"], reason="DSR-3"),
        lambda f: rights_pb2.ExportSubjectDataRequest(subject_id=f["subject"]),
    ),
    "customervault.v1.RightsService/RectifySubjectData": Case(
        DPO,
        lambda f: rights_pb2.RectifySubjectDataRequest(
            subject_id=f["subject"],
            expected_version=1,
            set_fields={"city": "London"},
            reason="DSR-4",
        ),
        lambda f: rights_pb2.RectifySubjectDataRequest(
            subject_id=f["subject"], expected_version=1, reason="DSR-4"
        ),
    ),
    "customervault.v1.RightsService/RestrictProcessing": Case(
        DPO,
        lambda f: rights_pb2.RestrictProcessingRequest(subject_id=f["subject"], reason="DSR-5"),
        lambda f: rights_pb2.RestrictProcessingRequest(subject_id=f["subject"]),
    ),
    "customervault.v1.RightsService/LiftRestriction": Case(
        DPO,
        lambda f: rights_pb2.LiftRestrictionRequest(subject_id=f["subject"], reason="DSR-6"),
        lambda f: rights_pb2.LiftRestrictionRequest(subject_id=f["subject"]),
    ),
    "customervault.v1.RightsService/EraseSubjectData": Case(
        DPO,
        lambda f: rights_pb2.EraseSubjectDataRequest(subject_id=f["victim"], reason="DSR-7"),
        lambda f: rights_pb2.EraseSubjectDataRequest(subject_id=f["victim"]),
    ),
}

RET = "customervault.v1.RetentionService"
RIG = "customervault.v1.RightsService"
CASES.update(
    {
        f"{RET}/ListNotices": Case(
            ADMIN,
            lambda f: retention_pb2.ListNoticesRequest(page_size=10),
            lambda f: retention_pb2.ListNoticesRequest(page_token="garbage"),
        ),
        f"{RET}/AcknowledgeNotice": Case(
            ADMIN,
            lambda f: retention_pb2.AcknowledgeNoticeRequest(notice_id="ntc_" + "a" * 26),
            lambda f: retention_pb2.AcknowledgeNoticeRequest(notice_id=""),
            allowed_codes=(grpc.StatusCode.NOT_FOUND,),
        ),
        f"{RET}/SetLegalHold": Case(
            ADMIN,
            lambda f: retention_pb2.SetLegalHoldRequest(subject_id=f["subject"], reason="case-9"),
            lambda f: retention_pb2.SetLegalHoldRequest(subject_id=f["subject"], reason=""),
        ),
        f"{RET}/ClearLegalHold": Case(
            ADMIN,
            lambda f: retention_pb2.ClearLegalHoldRequest(subject_id=f["subject"], reason="ended"),
            lambda f: retention_pb2.ClearLegalHoldRequest(subject_id=f["subject"], reason=""),
            allowed_codes=(grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND),
        ),
        f"{RET}/ListLegalHolds": Case(
            ADMIN,
            lambda f: retention_pb2.ListLegalHoldsRequest(page_size=10),
            lambda f: retention_pb2.ListLegalHoldsRequest(page_size=-1),
        ),
        f"{RIG}/ListDataSubjectRequests": Case(
            DPO,
            lambda f: rights_pb2.ListDataSubjectRequestsRequest(page_size=10),
            lambda f: rights_pb2.ListDataSubjectRequestsRequest(page_token="garbage"),
        ),
        f"{RIG}/GetDataSubjectRequest": Case(
            DPO,
            lambda f: rights_pb2.GetDataSubjectRequestRequest(data_subject_request_id=f["request"]),
            lambda f: rights_pb2.GetDataSubjectRequestRequest(data_subject_request_id="nope"),
        ),
        # The fixture's request is not re-verified: deciding it is refused (and audited).
        f"{RIG}/DecideDataSubjectRequest": Case(
            DPO,
            lambda f: rights_pb2.DecideDataSubjectRequestRequest(
                data_subject_request_id=f["request"],
                decision=rights_pb2.DATA_SUBJECT_REQUEST_DECISION_APPROVE,
                reason="approved",
            ),
            lambda f: rights_pb2.DecideDataSubjectRequestRequest(
                data_subject_request_id=f["request"]
            ),
            allowed_codes=(grpc.StatusCode.FAILED_PRECONDITION,),
        ),
        f"{RET}/GetRetentionReport": Case(
            ADMIN,
            lambda f: retention_pb2.GetRetentionReportRequest(),
            None,  # type: ignore[arg-type]  # no field to get wrong
        ),
        f"{RET}/ListRetentionRuns": Case(
            ADMIN,
            lambda f: retention_pb2.ListRetentionRunsRequest(page_size=10),
            lambda f: retention_pb2.ListRetentionRunsRequest(page_token="run_x"),
        ),
    }
)

CUS = "customervault.v1.CustomerAccessService"
FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}
CUSTOMER: dict[str, Any] = {"principal": "customer", "roles": ("customer",), "subject": "$subject"}
"""A customer token bound to the fixture's subject (`caller` fills in `$subject`)."""
CASES.update(
    {
        f"{CUS}/IssueCustomerToken": Case(
            FRONTEND,
            lambda f: customers_pb2.IssueCustomerTokenRequest(subject_id=f["subject"]),
            lambda f: customers_pb2.IssueCustomerTokenRequest(
                subject_id=f["subject"], ttl_seconds=999_999
            ),
        ),
        f"{CUS}/CreateCustomerLink": Case(
            FRONTEND,
            lambda f: customers_pb2.CreateCustomerLinkRequest(subject_id=f["subject"]),
            lambda f: customers_pb2.CreateCustomerLinkRequest(
                subject_id=f["subject"], ttl_seconds=999_999
            ),
        ),
        f"{CUS}/GetDormancyNotice": Case(
            FRONTEND,
            lambda f: customers_pb2.GetDormancyNoticeRequest(subject_id=f["subject"]),
            lambda f: customers_pb2.GetDormancyNoticeRequest(subject_id="nope"),
        ),
        # The code is the credential: whoever calls, a code that is not a live link is
        # UNAUTHENTICATED (test_customer_access.py redeems real ones).
        f"{CUS}/CreateDataSubjectRequest": Case(
            CUSTOMER,
            lambda f: customers_pb2.CreateDataSubjectRequestRequest(
                subject_id=f["subject"], kind=requests_pb2.DATA_SUBJECT_REQUEST_KIND_RESTRICTION
            ),
            lambda f: customers_pb2.CreateDataSubjectRequestRequest(subject_id=f["subject"]),
        ),
        f"{CUS}/IssueRequestVerificationCode": Case(
            FRONTEND,
            lambda f: customers_pb2.IssueRequestVerificationCodeRequest(
                data_subject_request_id=f["request"]
            ),
            lambda f: customers_pb2.IssueRequestVerificationCodeRequest(
                data_subject_request_id="nope"
            ),
        ),
        # A wrong code is refused and counted (test_subject_requests.py verifies real ones).
        f"{CUS}/VerifyDataSubjectRequest": Case(
            CUSTOMER,
            lambda f: customers_pb2.VerifyDataSubjectRequestRequest(
                data_subject_request_id=f["request"], code="WRONG-CODE0"
            ),
            lambda f: customers_pb2.VerifyDataSubjectRequestRequest(data_subject_request_id="nope"),
            allowed_codes=(grpc.StatusCode.INVALID_ARGUMENT,),
        ),
        f"{CUS}/ListOwnDataSubjectRequests": Case(
            CUSTOMER,
            lambda f: customers_pb2.ListOwnDataSubjectRequestsRequest(subject_id=f["subject"]),
            lambda f: customers_pb2.ListOwnDataSubjectRequestsRequest(subject_id="nope"),
        ),
        f"{CUS}/CancelDataSubjectRequest": Case(
            CUSTOMER,
            lambda f: customers_pb2.CancelDataSubjectRequestRequest(
                data_subject_request_id=f["withdrawn"]
            ),
            lambda f: customers_pb2.CancelDataSubjectRequestRequest(data_subject_request_id="nope"),
        ),
        f"{CUS}/RedeemCustomerLink": Case(
            FRONTEND,
            lambda f: customers_pb2.RedeemCustomerLinkRequest(code=f["token"]),
            lambda f: customers_pb2.RedeemCustomerLinkRequest(code=""),
            allowed_codes=(grpc.StatusCode.UNAUTHENTICATED,),
            denied_codes=(grpc.StatusCode.UNAUTHENTICATED,),
        ),
    }
)

CASES["customervault.v1.EventService/ListEvents"] = Case(
    FRONTEND,
    lambda f: events_pb2.ListEventsRequest(page_size=10),
    lambda f: events_pb2.ListEventsRequest(page_token="not a cursor"),
)

SERVICES = [
    (vault_pb2, "VaultService", vault_pb2_grpc.VaultServiceStub),
    (admin_pb2, "PolicyAdminService", admin_pb2_grpc.PolicyAdminServiceStub),
    (audit_pb2, "AuditService", audit_pb2_grpc.AuditServiceStub),
    (consent_pb2, "ConsentService", consent_pb2_grpc.ConsentServiceStub),
    (rights_pb2, "RightsService", rights_pb2_grpc.RightsServiceStub),
    (retention_pb2, "RetentionService", retention_pb2_grpc.RetentionServiceStub),
    (customers_pb2, "CustomerAccessService", customers_pb2_grpc.CustomerAccessServiceStub),
    (events_pb2, "EventService", events_pb2_grpc.EventServiceStub),
]


def prepare(vault: RunningVault) -> dict[str, str]:
    """Two subjects, a token, a first signed checkpoint and a consent receipt: what the
    requests in `CASES` name (`f["subject"]`, ...)."""
    service = vault.client()
    subject = service.create(ADA).subject_id
    victim = service.create(ADA).subject_id
    token = service.tokenize(subject, "email", vault_pb2.TOKEN_KIND_RANDOM, "support").token
    # Proofs and checkpoints need the integrator to have signed a first tree head.
    deadline = time.monotonic() + 10
    while audit.latest_checkpoint(vault.app.db.engine) is None:
        assert time.monotonic() < deadline, "the integrator never wrote a checkpoint"
        time.sleep(0.05)
    receipt = service.call(
        service.consent,
        "GrantConsent",
        consent_pb2.GrantConsentRequest(
            subject_id=subject, purposes=["personalization"], source=CONSENT_SOURCE
        ),
    ).receipt.receipt_id
    customer = vault.client(principal="customer", roles=("customer",), subject=subject)
    requests = [
        customer.call(
            customer.customers,
            "CreateDataSubjectRequest",
            customers_pb2.CreateDataSubjectRequestRequest(
                subject_id=subject, kind=requests_pb2.DATA_SUBJECT_REQUEST_KIND_ERASURE
            ),
        ).request.request_id
        for _ in range(2)
    ]
    return {
        "subject": subject,
        "victim": victim,
        "token": token,
        "receipt": receipt,
        "request": requests[0],
        "withdrawn": requests[1],
    }


def caller(who: dict[str, Any] | None, prepared: dict[str, str]) -> dict[str, Any] | None:
    """`who` with `$name` values taken from the fixture (a customer's own subject)."""
    if who is None:
        return None
    return {
        k: prepared[v[1:]] if isinstance(v, str) and v.startswith("$") else v
        for k, v in who.items()
    }
