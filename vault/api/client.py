"""A small client over the generated stub, for the CLI and for people trying the vault."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vault.api.gen.customervault.v1 import (
    admin_pb2_grpc,
    audit_pb2_grpc,
    consent_pb2_grpc,
    customers_pb2_grpc,
    events_pb2_grpc,
    retention_pb2_grpc,
    rights_pb2_grpc,
    vault_pb2_grpc,
)
from vault.api.gen.customervault.v1 import vault_pb2 as pb


class VaultClientError(Exception):
    """A call failed: the gRPC code name, the message and any field violations."""

    def __init__(self, code: str, message: str, violations: list[tuple[str, str]]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.violations = violations


def _error(exc: grpc.RpcError) -> VaultClientError:
    violations: list[tuple[str, str]] = []
    status = rpc_status.from_call(exc)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    return VaultClientError(exc.code().name, exc.details() or "", violations)


class VaultClient:
    """Calls VaultService with a bearer token over plain or TLS channels."""

    def __init__(
        self,
        address: str,
        token: str,
        *,
        ca_file: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        if ca_file is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=ca_file.read_bytes(),
                private_key=client_key.read_bytes() if client_key else None,
                certificate_chain=client_cert.read_bytes() if client_cert else None,
            )
            self._channel = grpc.secure_channel(address, credentials)
        else:
            self._channel = grpc.insecure_channel(address)
        self._stub = vault_pb2_grpc.VaultServiceStub(self._channel)
        self.admin = admin_pb2_grpc.PolicyAdminServiceStub(self._channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self._channel)
        self.consent = consent_pb2_grpc.ConsentServiceStub(self._channel)
        self.rights = rights_pb2_grpc.RightsServiceStub(self._channel)
        self.retention = retention_pb2_grpc.RetentionServiceStub(self._channel)
        self.customers = customers_pb2_grpc.CustomerAccessServiceStub(self._channel)
        self.events = events_pb2_grpc.EventServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._channel.close()

    def call(self, stub: object, method: str, request: object) -> Any:
        """Any unary method of any of the vault's services, with this client's credentials."""
        try:
            return getattr(stub, method)(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def stream(self, stub: object, method: str, request: object) -> Iterator[Any]:
        """Any server-streaming method of any of the vault's services."""
        try:
            yield from getattr(stub, method)(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def _unary(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def create(self, fields: Mapping[str, str]) -> pb.SubjectMeta:
        response = self._unary("CreateSubject", pb.CreateSubjectRequest(fields=fields))
        assert isinstance(response, pb.CreateSubjectResponse)
        return response.subject

    def batch_create(
        self, items: Sequence[Mapping[str, str]], *, all_or_nothing: bool = False
    ) -> pb.BatchCreateSubjectsResponse:
        request = pb.BatchCreateSubjectsRequest(
            items=[pb.SubjectInput(fields=i) for i in items], all_or_nothing=all_or_nothing
        )
        response = self._unary("BatchCreateSubjects", request)
        assert isinstance(response, pb.BatchCreateSubjectsResponse)
        return response

    def get(
        self, subject_id: str, view: str, purpose: str, justification: str = ""
    ) -> pb.SubjectView:
        request = pb.GetSubjectRequest(
            subject_id=subject_id, view=view, purpose=purpose, justification=justification
        )
        response = self._unary("GetSubject", request)
        assert isinstance(response, pb.GetSubjectResponse)
        return response.subject

    def find(
        self, field: str, value: str, view: str, purpose: str, justification: str = ""
    ) -> list[pb.SubjectView]:
        """Every page of a search (each page is one call against the search budget)."""
        found: list[pb.SubjectView] = []
        token = ""
        while True:
            page = self.find_page(field, value, view, purpose, justification, page_token=token)
            found.extend(page.subjects)
            token = page.next_page_token
            if not token:
                return found

    def find_page(
        self,
        field: str,
        value: str,
        view: str,
        purpose: str,
        justification: str = "",
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.FindSubjectsResponse:
        request = pb.FindSubjectsRequest(
            field=field,
            value=value,
            view=view,
            purpose=purpose,
            justification=justification,
            page_size=page_size,
            page_token=page_token,
        )
        response = self._unary("FindSubjects", request)
        assert isinstance(response, pb.FindSubjectsResponse)
        return response

    def update(
        self,
        subject_id: str,
        expected_version: int,
        set_fields: Mapping[str, str],
        clear_fields: Sequence[str] = (),
        reason: str = "",
    ) -> pb.SubjectMeta:
        request = pb.UpdateSubjectRequest(
            subject_id=subject_id,
            expected_version=expected_version,
            set_fields=set_fields,
            clear_fields=list(clear_fields),
            reason=reason,
        )
        response = self._unary("UpdateSubject", request)
        assert isinstance(response, pb.UpdateSubjectResponse)
        return response.subject

    def erase(self, subject_id: str, reason: str) -> pb.SubjectMeta:
        response = self._unary(
            "EraseSubject", pb.EraseSubjectRequest(subject_id=subject_id, reason=reason)
        )
        assert isinstance(response, pb.EraseSubjectResponse)
        return response.subject

    def record_activity(self, subject_id: str) -> pb.SubjectMeta:
        request = pb.RecordActivityRequest(subject_id=subject_id, kind=pb.ACTIVITY_KIND_OTHER)
        response = self._unary("RecordActivity", request)
        assert isinstance(response, pb.RecordActivityResponse)
        return response.subject

    def export(self, view: str, purpose: str, justification: str = "") -> Iterator[pb.SubjectView]:
        request = pb.ExportViewRequest(view=view, purpose=purpose, justification=justification)
        try:
            yield from self._stub.ExportView(request, metadata=self._metadata, timeout=3600)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def reveal(
        self, subject_id: str, field: str, purpose: str, justification: str
    ) -> pb.RevealFieldResponse:
        request = pb.RevealFieldRequest(
            subject_id=subject_id, field=field, purpose=purpose, justification=justification
        )
        return self._unary("RevealField", request)  # type: ignore[return-value]

    def tokenize(
        self, subject_id: str, field: str, kind: int, purpose: str, justification: str = ""
    ) -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(
            subject_id=subject_id,
            field=field,
            kind=kind,  # type: ignore[arg-type]
            purpose=purpose,
            justification=justification,
        )
        return self._unary("Tokenize", request)  # type: ignore[return-value]

    def detokenize(self, token: str, purpose: str, justification: str) -> pb.DetokenizeResponse:
        request = pb.DetokenizeRequest(token=token, purpose=purpose, justification=justification)
        return self._unary("Detokenize", request)  # type: ignore[return-value]
