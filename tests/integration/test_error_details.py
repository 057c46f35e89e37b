"""Error details a client program acts on, over real gRPC: RetryInfo (and gRPC's
retry-pushback trailer) on UNAVAILABLE and on a rate limit's RESOURCE_EXHAUSTED,
PreconditionFailure on a version conflict (ABORTED)."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import rights_pb2_grpc, vault_pb2_grpc
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.data import ADA, DPO, SERVICE
from tests.integration.audit_faults import audit_store_refusing
from tests.integration.harness import RunningVault, running_vault, settings_for

PURPOSE = "data_subject_request"


def _auth(vault: RunningVault, who: dict[str, object]) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {vault.token(**who)}"),)  # type: ignore[arg-type]


def _detail(error: grpc.RpcError, kind: type[Message]) -> Message:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found = kind()
    [packed] = [d for d in status.details if d.Is(kind.DESCRIPTOR)]
    packed.Unpack(found)
    return found


def _trailer(error: grpc.RpcError, key: str) -> str | None:
    return next((v for k, v in error.trailing_metadata() or () if k == key), None)  # type: ignore[attr-defined]


def test_unavailable_says_when_to_retry_and_a_keyed_retry_then_succeeds_once(
    vault: RunningVault,
) -> None:
    request = pb.CreateSubjectRequest(fields=ADA, request_id=str(uuid.uuid4()))
    auth = _auth(vault, SERVICE)
    with grpc.insecure_channel(vault.address) as channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        with audit_store_refusing(vault), pytest.raises(grpc.RpcError) as down:
            stub.CreateSubject(request, metadata=auth)
        created = stub.CreateSubject(request, metadata=auth)  # the retry, once it is back
        again = stub.CreateSubject(request, metadata=auth)
    assert down.value.code() is grpc.StatusCode.UNAVAILABLE
    retry = _detail(down.value, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (1, 0)
    assert _trailer(down.value, "grpc-retry-pushback-ms") == "1000"
    assert again == created
    with vault.app.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM subjects")).scalar_one() == 1


def test_a_rate_limit_says_when_the_budget_allows_the_call_again(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", search_rate_per_minute=2, search_burst=1)
    with running_vault(settings) as vault:
        dpo = _auth(vault, DPO)
        find = pb.FindSubjectsRequest(
            field="email", value=ADA["email"], view="full", purpose=PURPOSE, justification="DSR-1"
        )
        with grpc.insecure_channel(vault.address) as channel:
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            stub.FindSubjects(find, metadata=dpo)
            with pytest.raises(grpc.RpcError) as limited:
                stub.FindSubjects(find, metadata=dpo)
    assert limited.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = _detail(limited.value, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    assert 0 < delay <= 30  # one search every 30 s refills the bucket
    assert 0 < int(_trailer(limited.value, "grpc-retry-pushback-ms") or 0) <= 30_000


def test_a_version_conflict_names_the_subject_and_both_versions(vault: RunningVault) -> None:
    with grpc.insecure_channel(vault.address) as channel:
        records = vault_pb2_grpc.VaultServiceStub(channel)
        rights = rights_pb2_grpc.RightsServiceStub(channel)
        subject = records.CreateSubject(
            pb.CreateSubjectRequest(fields=ADA), metadata=_auth(vault, SERVICE)
        ).subject
        stale = [
            lambda: records.UpdateSubject(
                pb.UpdateSubjectRequest(
                    subject_id=subject.subject_id, expected_version=7, set_fields={"city": "Leeds"}
                ),
                metadata=_auth(vault, SERVICE),
            ),
            lambda: rights.RectifySubjectData(
                rpb.RectifySubjectDataRequest(
                    subject_id=subject.subject_id,
                    expected_version=7,
                    set_fields={"city": "Leeds"},
                    reason="DSR-4",
                ),
                metadata=_auth(vault, DPO),
            ),
        ]
        for call in stale:
            with pytest.raises(grpc.RpcError) as conflict:
                call()
            assert conflict.value.code() is grpc.StatusCode.ABORTED
            failure = _detail(conflict.value, error_details_pb2.PreconditionFailure)
            assert isinstance(failure, error_details_pb2.PreconditionFailure)
            [violation] = failure.violations
            assert (violation.type, violation.subject) == ("SUBJECT_VERSION", subject.subject_id)
            assert violation.description == ("expected version 7, the subject is at 1: re-read it")
            assert _trailer(conflict.value, "grpc-retry-pushback-ms") is None
