"""The slim Python client (clients/python) against a running vault and against a gRPC
server of the test's own that fails on purpose: typed errors from the status details,
the retry policy of the service config (reads retried, a create without a request id
not), and the default deadline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from customer_vault_client import RetryPolicy, VaultClient, errors
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tests.data import ADA, FRAUD
from tests.integration.harness import RunningVault

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


def test_refusals_are_typed_and_carry_the_status_details(sqlite_vault: RunningVault) -> None:
    service = sqlite_vault.client()
    with pytest.raises(errors.InvalidArgument) as bad:
        service.create({**ADA, "shoe_size": "44"})
    assert bad.value.code == "INVALID_ARGUMENT"
    assert any(field.startswith("fields") for field, _ in bad.value.violations)
    assert bad.value.request_id

    subject = service.create(ADA).subject_id
    with pytest.raises(errors.PermissionDenied) as denied:
        service.get(subject, "full", "data_subject_request", "DSR-1")
    assert denied.value.reason == "POLICY_DENIED"
    assert denied.value.error_metadata.get("rule")
    assert denied.value.request_id

    with pytest.raises(errors.NotFound):  # a well-formed token nobody minted
        sqlite_vault.client(**FRAUD).detokenize("tkr_" + "a" * 43, "fraud", "case FR-1")
    with pytest.raises(errors.Unauthenticated):
        VaultClient(sqlite_vault.address, "not-a-token").get(subject, "support", "support")


class _Flaky:
    """VaultService with GetSubject and CreateSubject answering UNAVAILABLE `failures`
    times first, and GetSubject then a subject; counts every attempt."""

    def __init__(self, failures: int, details: status_pb2.Status | None = None) -> None:
        self.failures = failures
        self.details = details
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _fail(self, method: str, context: grpc.ServicerContext) -> bool:
        with self._lock:
            self.attempts[method] = self.attempts.get(method, 0) + 1
            failing = self.attempts[method] <= self.failures
        if failing:
            if self.details is not None:
                context.set_trailing_metadata(
                    (("grpc-status-details-bin", self.details.SerializeToString()),)
                )
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return failing

    def get(self, request: pb.GetSubjectRequest, context: grpc.ServicerContext) -> Any:
        self._fail("GetSubject", context)
        meta = pb.SubjectMeta(subject_id=request.subject_id, version=1)
        return pb.GetSubjectResponse(subject=pb.SubjectView(meta=meta, view=request.view))

    def create(self, request: pb.CreateSubjectRequest, context: grpc.ServicerContext) -> Any:
        self._fail("CreateSubject", context)
        return pb.CreateSubjectResponse(subject=pb.SubjectMeta(subject_id="sub_new"))


@pytest.fixture
def flaky() -> Iterator[tuple[str, _Flaky]]:
    behaviour = _Flaky(failures=1)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "GetSubject": grpc.unary_unary_rpc_method_handler(
            behaviour.get,
            request_deserializer=pb.GetSubjectRequest.FromString,
            response_serializer=pb.GetSubjectResponse.SerializeToString,
        ),
        "CreateSubject": grpc.unary_unary_rpc_method_handler(
            behaviour.create,
            request_deserializer=pb.CreateSubjectRequest.FromString,
            response_serializer=pb.CreateSubjectResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("customervault.v1.VaultService", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", behaviour
    finally:
        server.stop(None)


def test_the_channel_retries_a_read_and_never_a_create_without_request_id(
    flaky: tuple[str, _Flaky],
) -> None:
    address, behaviour = flaky
    with VaultClient(address, "token", retry=FAST) as client:
        assert client.get("sub_1", "support", "support").meta.subject_id == "sub_1"
        assert behaviour.attempts["GetSubject"] == 2
        if "request_id" not in pb.CreateSubjectRequest.DESCRIPTOR.fields_by_name:
            with pytest.raises(errors.Unavailable):
                client.create({"given_name": "Ada"})
            assert behaviour.attempts["CreateSubject"] == 1
        else:  # carries an idempotency key the client filled: retried
            assert client.create({"given_name": "Ada"}).subject_id == "sub_new"
            assert behaviour.attempts["CreateSubject"] == 2
    with VaultClient(address, "token", retry=None) as client:
        behaviour.attempts.clear()
        with pytest.raises(errors.Unavailable):
            client.get("sub_1", "support", "support")
        assert behaviour.attempts["GetSubject"] == 1


def test_retry_info_and_precondition_failure_are_decoded(flaky: tuple[str, _Flaky]) -> None:
    address, behaviour = flaky
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="try again")
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2))
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="VERSION", subject="sub_1", description="expected version 3, found 4"
            )
        ]
    )
    for detail in (retry, failure, error_details_pb2.RequestInfo(request_id="req-9")):
        status.details.add().Pack(detail)
    behaviour.failures, behaviour.details = 9, status
    with (
        VaultClient(address, "token", retry=None) as client,
        pytest.raises(errors.Unavailable) as caught,
    ):
        client.get("sub_1", "support", "support")
    assert caught.value.retry_delay == 2.0
    assert caught.value.preconditions == [
        errors.PreconditionViolation("VERSION", "sub_1", "expected version 3, found 4")
    ]
    assert caught.value.request_id == "req-9"
    assert len(caught.value.details) == 3


def test_every_call_has_a_deadline() -> None:
    # A listener that never answers: the call ends with DEADLINE_EXCEEDED, not a hang.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with (
            VaultClient(address, "token", timeout=0.3, retry=None) as client,
            pytest.raises(errors.DeadlineExceeded),
        ):
            client.get("sub_1", "support", "support")
