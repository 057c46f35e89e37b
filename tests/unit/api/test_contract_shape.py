"""The contract's shape, read from the descriptors: every mutating RPC takes an
idempotency key (AIP-155 `request_id`), every list or search RPC is paged and every
long stream resumable (AIP-158).

Each RPC of customervault.v1 is either named below as a read (or exempt, with the
reason), or must carry `string request_id`; a new RPC fails here until it is one or
the other.
"""

from __future__ import annotations

from customer_vault_client.gen.customervault.v1 import (
    admin_pb2,
    audit_pb2,
    consent_pb2,
    customers_pb2,
    events_pb2,
    retention_pb2,
    rights_pb2,
    vault_pb2,
)
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

MODULES = (
    admin_pb2,
    audit_pb2,
    consent_pb2,
    customers_pb2,
    events_pb2,
    retention_pb2,
    rights_pb2,
    vault_pb2,
)

READS = {
    "VaultService/GetSubject",
    "VaultService/FindSubjects",
    "VaultService/ExportView",
    "VaultService/RevealField",
    "VaultService/Detokenize",
    "PolicyAdminService/GetPolicyStatus",
    "PolicyAdminService/CheckPolicy",
    "PolicyAdminService/SimulatePolicy",
    "PolicyAdminService/ListPolicyVersions",
    "AuditService/QueryEntries",
    "AuditService/GetEntry",
    "AuditService/SubjectHistory",
    "AuditService/GetLatestCheckpoint",
    "AuditService/GetInclusionProof",
    "AuditService/GetConsistencyProof",
    "AuditService/VerifyLog",
    "AuditService/VerifyLogWithProgress",
    "AuditService/ExplainEntry",
    "ConsentService/GetConsent",
    "ConsentService/ListConsentEvents",
    "ConsentService/GetConsentReceipt",
    "RightsService/ExportSubjectData",
    "RetentionService/ListNotices",
    "RetentionService/ListLegalHolds",
    "RetentionService/GetRetentionReport",
    "CustomerAccessService/GetDormancyNotice",
    "CustomerAccessService/ListOwnDataSubjectRequests",
    "RightsService/ListDataSubjectRequests",
    "RightsService/GetDataSubjectRequest",
    "RetentionService/ListRetentionRuns",
    "EventService/ListEvents",
}
"""Calls that change nothing but the audit log: a retry has no effect to repeat."""

EXEMPT = {
    "PolicyAdminService/ReloadPolicy": "re-reads the policy files: twice is once",
    "VaultService/Tokenize": (
        "its response is a token, which must not outlive the subject's erasure in a kept "
        "response; a retry gives the same deterministic token, or another random one "
        "(a reference erased with the subject like the first)"
    ),
    "CustomerAccessService/IssueCustomerToken": (
        "mints a stateless credential the vault does not keep (nor should keep to replay); "
        "a retry mints another with the same rights and lifetime"
    ),
    "CustomerAccessService/CreateCustomerLink": (
        "its response is a one-time credential the vault keeps only as a hash; a retry "
        "issues another link and the lost one expires unused"
    ),
    "CustomerAccessService/RedeemCustomerLink": (
        "unauthenticated (the code is the credential) and single-use by design"
    ),
}
EXEMPT |= {
    "CustomerAccessService/IssueRequestVerificationCode": (
        "its response is a one-time verification code (a credential), not to be kept"
    ),
}
"""Mutating calls without an idempotency key, and why."""

LISTS = {
    "VaultService/FindSubjects",
    "AuditService/QueryEntries",
    "AuditService/SubjectHistory",
    "ConsentService/ListConsentEvents",
    "RetentionService/ListNotices",
    "RetentionService/ListLegalHolds",
    "PolicyAdminService/ListPolicyVersions",
    "RightsService/ListDataSubjectRequests",
    "CustomerAccessService/ListOwnDataSubjectRequests",
    "RetentionService/ListRetentionRuns",
    "EventService/ListEvents",
}
UNPAGED: dict[str, str] = {}
"""List and search RPCs: page_size and page_token in, next_page_token out."""

STREAMS = {"VaultService/ExportView"}
"""Server streams of many items: resumable (resume_token in, and on every item out)."""


def _methods() -> dict[str, MethodDescriptor]:
    return {
        f"{service.name}/{method.name}": method
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def _field(method: MethodDescriptor, name: str, *, response: bool = False) -> FieldDescriptor:
    message = method.output_type if response else method.input_type
    return message.fields_by_name.get(name)  # type: ignore[return-value]


def test_the_tables_name_only_rpcs_that_exist() -> None:
    methods = _methods()
    assert sorted((READS | set(EXEMPT) | LISTS | set(UNPAGED) | STREAMS) - set(methods)) == []


def test_every_mutating_rpc_takes_a_request_id() -> None:
    missing = []
    for name, method in _methods().items():
        found = _field(method, "request_id")
        if name in READS or name in EXEMPT:
            assert found is None, f"{name} is listed as not mutating but takes request_id"
            continue
        if found is None or found.type != FieldDescriptor.TYPE_STRING:
            missing.append(name)
    assert missing == []


def test_every_list_or_search_rpc_is_paged() -> None:
    for name, method in _methods().items():
        if name in LISTS:
            assert _field(method, "page_size").type == FieldDescriptor.TYPE_INT32, name
            assert _field(method, "page_token").type == FieldDescriptor.TYPE_STRING, name
            token = _field(method, "next_page_token", response=True)
            assert token.type == FieldDescriptor.TYPE_STRING, name
        else:
            assert _field(method, "page_token") is None, f"{name} takes a page_token: list it"
        if name.split("/")[1].startswith(("List", "Find", "Query")):
            assert name in LISTS or name in UNPAGED, f"{name} returns a list: page it"


def test_every_long_stream_is_resumable() -> None:
    methods = _methods()
    for name, method in methods.items():
        if method.server_streaming and not name.endswith("WithProgress"):
            assert name in STREAMS, f"{name} streams: make it resumable (resume_token)"
    for name in STREAMS:
        assert _field(methods[name], "resume_token").type == FieldDescriptor.TYPE_STRING
        token = _field(methods[name], "resume_token", response=True)
        assert token.type == FieldDescriptor.TYPE_STRING
