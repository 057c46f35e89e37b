"""Restriction of processing (GDPR art. 18) binds writes too (issue 26.2).

Every RPC of every service is classified below (the table must name them all): each
one that changes or uses a restricted subject is refused FAILED_PRECONDITION, changes
nothing and is audited as denied by the subject-state rule; only the data-subject
request's rectification and erasure, lifting the restriction, the subject's own consent
choices and legal holds go through. Searches and exports leave the subject out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from customer_vault_client.gen.customervault.v1 import retention_pb2 as tpb
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.protobuf.message import Message

import audit
from tests.data import ADA, DPO, SERVICE
from tests.integration.consent_support import source
from tests.integration.harness import RunningVault
from tests.integration.rpc_table import SERVICES

LEAD = {"principal": "lead-1", "roles": ("support_lead",), "clearance": "3"}
AGENT = {"principal": "agent-1", "roles": ("support_agent",), "clearance": "2"}
FRAUD = {"principal": "fraud-1", "roles": ("fraud_analyst",), "clearance": "3"}
V, C, R, T = (
    "customervault.v1.VaultService",
    "customervault.v1.ConsentService",
    "customervault.v1.RightsService",
    "customervault.v1.RetentionService",
)
Build = Callable[[dict[str, str]], Message]


def _all_methods() -> list[str]:
    return [
        f"{module.DESCRIPTOR.package}.{name}/{method.name}"
        for module, name, _ in SERVICES
        for method in module.DESCRIPTOR.services_by_name[name].methods
    ]


def _invoke(
    vault: RunningVault, method: str, request: Message, who: dict[str, Any]
) -> grpc.StatusCode:
    """One unary call of any service with `who`'s token; its status code."""
    service, name = method.split("/")
    _, _, stub_type = next(s for s in SERVICES if f"{s[0].DESCRIPTOR.package}.{s[1]}" == service)
    metadata = (("authorization", f"Bearer {vault.token(**who)}"),)
    with grpc.insecure_channel(vault.address) as channel:
        try:
            getattr(stub_type(channel), name)(request, metadata=metadata, timeout=20)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


# Refused on a restricted subject: (caller, request).
REFUSED: dict[str, tuple[dict[str, Any], Build]] = {
    f"{V}/UpdateSubject": (
        SERVICE,
        lambda f: pb.UpdateSubjectRequest(
            subject_id=f["subject"],
            expected_version=int(f["version"]),
            set_fields={"email": "mallory@example.com"},
            reason="account settings",
        ),
    ),
    f"{V}/EraseSubject": (
        SERVICE,
        lambda f: pb.EraseSubjectRequest(subject_id=f["subject"], reason="account closed"),
    ),
    f"{V}/RecordActivity": (SERVICE, lambda f: pb.RecordActivityRequest(subject_id=f["subject"])),
    f"{V}/Tokenize": (
        SERVICE,
        lambda f: pb.TokenizeRequest(
            subject_id=f["subject"], field="email", kind=pb.TOKEN_KIND_RANDOM, purpose="support"
        ),
    ),
    f"{V}/GetSubject": (
        AGENT,
        lambda f: pb.GetSubjectRequest(subject_id=f["subject"], view="support", purpose="support"),
    ),
    f"{V}/RevealField": (
        LEAD,
        lambda f: pb.RevealFieldRequest(
            subject_id=f["subject"], field="email", purpose="support", justification="TCK-1"
        ),
    ),
    f"{V}/Detokenize": (
        FRAUD,
        lambda f: pb.DetokenizeRequest(token=f["token"], purpose="fraud", justification="FR-1"),
    ),
}
# Allowed on a restricted subject, in this order (the erasure last): (caller, request).
ALLOWED: dict[str, tuple[dict[str, Any], Build]] = {
    # the subject's own choices are recorded (they process nothing)
    f"{C}/GrantConsent": (
        SERVICE,
        lambda f: cpb.GrantConsentRequest(
            subject_id=f["subject"], purposes=["personalization"], source=source()
        ),
    ),
    f"{C}/WithdrawConsent": (
        SERVICE,
        lambda f: cpb.WithdrawConsentRequest(
            subject_id=f["subject"], purposes=["personalization"], source=source()
        ),
    ),
    f"{C}/OptOut": (
        SERVICE,
        lambda f: cpb.OptOutRequest(
            subject_id=f["subject"], scopes=["all_sharing"], source=source()
        ),
    ),
    f"{C}/GetConsent": (SERVICE, lambda f: cpb.GetConsentRequest(subject_id=f["subject"])),
    f"{C}/ListConsentEvents": (
        SERVICE,
        lambda f: cpb.ListConsentEventsRequest(subject_id=f["subject"]),
    ),
    # legal claims: storage under a hold
    f"{T}/SetLegalHold": (
        DPO,
        lambda f: tpb.SetLegalHoldRequest(subject_id=f["subject"], reason="LIT-1 claim"),
    ),
    f"{T}/ClearLegalHold": (
        DPO,
        lambda f: tpb.ClearLegalHoldRequest(subject_id=f["subject"], reason="LIT-1 settled"),
    ),
    # the data-subject request path
    f"{R}/ExportSubjectData": (
        DPO,
        lambda f: rpb.ExportSubjectDataRequest(subject_id=f["subject"], reason="DSR-1"),
    ),
    f"{R}/RestrictProcessing": (
        DPO,
        lambda f: rpb.RestrictProcessingRequest(subject_id=f["subject"], reason="DSR-1"),
    ),
    f"{R}/RectifySubjectData": (
        DPO,
        lambda f: rpb.RectifySubjectDataRequest(
            subject_id=f["subject"],
            expected_version=int(f["version"]),
            set_fields={"city": "London"},
            reason="DSR-1 contests the city",
        ),
    ),
    f"{R}/LiftRestriction": (
        DPO,
        lambda f: rpb.LiftRestrictionRequest(subject_id=f["other"], reason="DSR-2 resolved"),
    ),
    f"{R}/EraseSubjectData": (
        DPO,
        lambda f: rpb.EraseSubjectDataRequest(subject_id=f["subject"], reason="DSR-1 erasure"),
    ),
}
# Searches and exports do not name one subject: they leave a restricted one out.
LEFT_OUT = {f"{V}/FindSubjects", f"{V}/ExportView"}
# No stored subject's processing is involved: creating new subjects, the policy, the
# audit log, receipts already issued, retention notices and reports.
ELSEWHERE = {
    f"{V}/CreateSubject",
    f"{V}/BatchCreateSubjects",
    f"{C}/GetConsentReceipt",
    f"{T}/ListNotices",
    f"{T}/AcknowledgeNotice",
    f"{T}/ListLegalHolds",
    f"{T}/GetRetentionReport",
    f"{T}/ListRetentionRuns",
    # The event feed reports changes already made; it reads no subject's data.
    "customervault.v1.EventService/ListEvents",
    *(
        m
        for m in _all_methods()
        if m.split("/")[0].endswith(("PolicyAdminService", "AuditService"))
    ),
    # The request queue names requests, not data; a decision carries a request out
    # through the rights above, under their own subject checks (test_subject_requests.py).
    f"{R}/ListDataSubjectRequests",
    f"{R}/GetDataSubjectRequest",
    f"{R}/DecideDataSubjectRequest",
    # A customer's way in (tokens, links), its dormancy notice and its own requests: no
    # processing of the data; a restricted customer still reaches their own data and
    # may still ask (art. 18 keeps access).
    *(m for m in _all_methods() if m.split("/")[0].endswith("CustomerAccessService")),
}


def test_every_rpc_is_classified() -> None:
    named = [*REFUSED, *ALLOWED, *LEFT_OUT, *ELSEWHERE]
    assert sorted(named) == sorted(_all_methods())


def _snapshot(vault: RunningVault, subject: str) -> tuple[Any, ...]:
    with vault.app.db.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT version, state, fields, wrapped_dek, last_activity_at, legal_hold, "
                "updated_at FROM subjects WHERE id = :id"
            ),
            {"id": subject},
        ).one()
        linked = [
            conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE subject_id = :id"), {"id": subject}
            ).scalar_one()
            for table in ("tokens", "blind_indexes", "consent_events")
        ]
    return (*row, *linked)


def _restrict(vault: RunningVault, subject: str) -> None:
    dpo = vault.client(**DPO)
    request = rpb.RestrictProcessingRequest(subject_id=subject, reason="DSR-1 restriction")
    assert dpo.call(dpo.rights, "RestrictProcessing", request).subject.state == (
        pb.SUBJECT_STATE_RESTRICTED
    )


def test_every_write_or_use_of_a_restricted_subject_is_refused_except_the_dsr_path(
    vault: RunningVault,
) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    other = service.create({**ADA, "email": "ada@other.example"}).subject_id
    token = service.tokenize(subject, "email", pb.TOKEN_KIND_RANDOM, "support").token
    _restrict(vault, subject)
    _restrict(vault, other)
    facts = {"subject": subject, "other": other, "token": token, "version": "2"}

    for method, (who, build) in REFUSED.items():
        before = _snapshot(vault, subject)
        code = _invoke(vault, method, build(facts), who)
        assert code is grpc.StatusCode.FAILED_PRECONDITION, f"{method}: {code.name}"
        assert _snapshot(vault, subject) == before, f"{method} changed the subject"
        action = method.rsplit("/", 1)[1]
        entry = [e.entry for e in audit.iter_query(vault.app.db.engine, action=action)][-1]
        assert (entry.decision, entry.reason, entry.result_code) == (
            "deny",
            "state:restricted",
            "FAILED_PRECONDITION",
        ), method
        assert subject in entry.subject_ids, method

    dpo = vault.client(**DPO)
    assert dpo.find("email", ADA["email"], "full", "data_subject_request", "DSR-1")
    assert vault.client(**AGENT).find("family_name", "Lovelace", "support", "support") == []
    lead = vault.client(**LEAD)
    exported = {v.meta.subject_id: v for v in lead.export("support", "support")}
    assert not exported[subject].fields
    assert {w.reason for w in exported[subject].withheld} == {"state"}

    for method, (who, build) in ALLOWED.items():
        code = _invoke(vault, method, build(facts), who)
        assert code is grpc.StatusCode.OK, f"{method}: {code.name}"
        if method.endswith("RectifySubjectData"):
            facts["version"] = str(_snapshot(vault, subject)[0])
    assert _snapshot(vault, subject)[1] == "erased"
    # Lifted: the other subject takes ordinary writes again.
    assert service.record_activity(other).state == pb.SUBJECT_STATE_ACTIVE
