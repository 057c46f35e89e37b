"""Page tokens over real gRPC (AIP-158): every list pages, a token is opaque, tamper-
checked and bound to its query and caller, and an export resumes from a token."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc
import pytest
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from customer_vault_client.gen.customervault.v1 import (
    consent_pb2_grpc,
    retention_pb2_grpc,
    vault_pb2_grpc,
)
from customer_vault_client.gen.customervault.v1 import retention_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import audit
from tests.data import ADA, ADMIN, DPO, GRACE, SERVICE
from tests.integration.consent_support import source
from tests.integration.harness import RunningVault, running_vault, settings_for

Auth = tuple[tuple[str, str], ...]
PURPOSES = ["marketing", "personalization", "sharing"]


def _auth(vault: RunningVault, who: dict[str, object]) -> Auth:
    return (("authorization", f"Bearer {vault.token(**who)}"),)  # type: ignore[arg-type]


def _with_ledger(vault: RunningVault) -> tuple[str, str]:
    """Two subjects; the first with seven ledger events."""
    client = vault.client(**SERVICE)
    ada, grace = client.create(ADA).subject_id, client.create(GRACE).subject_id
    for purposes in (PURPOSES, ["marketing"], PURPOSES):
        request = cpb.GrantConsentRequest(subject_id=ada, purposes=purposes, source=source())
        client.call(client.consent, "GrantConsent", request)
    return ada, grace


def _violation(error: grpc.RpcError) -> tuple[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    [found] = bad.field_violations
    return found.field, found.description


def _tampered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[6] ^= 0x01  # one bit of the cursor
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_consent_events_are_paged_and_tokens_bound(vault: RunningVault) -> None:
    ada, grace = _with_ledger(vault)
    auth = _auth(vault, SERVICE)
    with grpc.insecure_channel(vault.address) as channel:
        stub = consent_pb2_grpc.ConsentServiceStub(channel)
        pages, token, size = [], "", 3
        while True:
            request = cpb.ListConsentEventsRequest(subject_id=ada, page_size=size, page_token=token)
            page = stub.ListConsentEvents(request, metadata=auth)
            pages.append([e.sequence for e in page.events])
            token, size = page.next_page_token, 2  # page_size may change between pages
            if not token:
                break
        first = stub.ListConsentEvents(
            cpb.ListConsentEventsRequest(subject_id=ada, page_size=3), metadata=auth
        )
        token = first.next_page_token
        crm = {**SERVICE, "principal": "crm-service"}
        refusals = []
        for subject, sent, who in [
            (grace, token, SERVICE),  # another query
            (ada, _tampered(token), SERVICE),  # edited
            (ada, "garbage", SERVICE),  # forged
            (ada, token, crm),  # another caller
        ]:
            request = cpb.ListConsentEventsRequest(subject_id=subject, page_token=sent)
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListConsentEvents(request, metadata=_auth(vault, who))
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            refusals.append(_violation(refused.value)[0])
    sequences = [s for page in pages for s in page]
    assert [len(p) for p in pages] == [3, 2, 2]
    assert sequences == sorted(sequences) and len(set(sequences)) == 7
    assert refusals == ["page_token"] * 4
    assert first.next_page_token != str(sequences[2])  # sealed, not the bare cursor


def test_a_token_outlives_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    with running_vault(settings) as vault:
        ada, _ = _with_ledger(vault)
        client = vault.client(**SERVICE)
        request = cpb.ListConsentEventsRequest(subject_id=ada, page_size=4)
        token = client.call(client.consent, "ListConsentEvents", request).next_page_token
    with running_vault(settings) as restarted:  # same keys: any replica accepts it
        client = restarted.client(**SERVICE)
        request = cpb.ListConsentEventsRequest(subject_id=ada, page_size=4, page_token=token)
        rest = client.call(client.consent, "ListConsentEvents", request)
    assert len(rest.events) == 3 and not rest.next_page_token


def test_a_tampered_token_of_another_list_is_refused(vault: RunningVault) -> None:
    admin = _auth(vault, ADMIN)
    with grpc.insecure_channel(vault.address) as channel:
        stub = retention_pb2_grpc.RetentionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListLegalHolds(rpb.ListLegalHoldsRequest(page_token="c3ViXzEyMw"), metadata=admin)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _violation(refused.value)[0] == "page_token"


def _export(
    stub: vault_pb2_grpc.VaultServiceStub, auth: Auth, token: str = "", view: str = "full"
) -> grpc.Call:
    request = pb.ExportViewRequest(
        view=view, purpose="data_subject_request", justification="DSR-9", resume_token=token
    )
    return stub.ExportView(request, metadata=auth)  # type: ignore[no-any-return]


def test_an_export_resumes_after_the_last_subject_received(vault: RunningVault) -> None:
    client = vault.client(**SERVICE)
    made = {client.create(ADA).subject_id for _ in range(5)}
    auth = _auth(vault, DPO)
    with grpc.insecure_channel(vault.address) as channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        stream = _export(stub, auth)
        head = [next(stream) for _ in range(2)]
        stream.cancel()  # the stream breaks after two subjects
        rest = list(_export(stub, auth, head[-1].resume_token))
        with pytest.raises(grpc.RpcError) as other_view:
            list(_export(stub, auth, head[-1].resume_token, view="support"))
    got = [m.subject.meta.subject_id for m in head + rest]
    assert len(got) == 5 and set(got) == made  # nothing lost, nothing twice
    assert got == sorted(got)
    assert other_view.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _violation(other_view.value)[0] == "resume_token"
    calls = [
        e.entry
        for e in audit.iter_query(vault.app.db.engine, action="ExportView")
        if "export_batch" not in e.entry.extra
    ]
    assert [c.extra.get("resumed") for c in calls if c.result_code == "OK"][-1] == "true"
