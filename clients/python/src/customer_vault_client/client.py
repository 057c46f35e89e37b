"""`VaultClient`: every service of the vault on one channel, with typed errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from customer_vault_client.channel import TokenSource, open_channel
from customer_vault_client.errors import VaultClientError
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.retries import DEFAULT_RETRY, RetryPolicy
from customer_vault_client.services import SERVICES

DEFAULT_TIMEOUT = 30.0
"""Seconds a unary call may take unless the caller gives its own `timeout`."""
STREAM_TIMEOUT = 3600.0
"""Seconds a server stream (ExportView, VerifyLogWithProgress) may take by default."""


class VaultClient:
    """The vault's services over one channel, calling with a bearer token.

    Stubs: `vault`, `admin`, `audit`, `consent`, `rights`, `retention`, `customers`, `events` (the
    generated `*Stub` classes). `call` and `stream` run any method of them with this
    client's deadline and turn a failure into a typed `VaultClientError`; the methods
    below wrap the common VaultService calls.
    """

    def __init__(
        self,
        address: str,
        token: TokenSource = "",
        *,
        tls: bool = False,
        ca_file: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        options: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        self._raw, channel = open_channel(
            address,
            token,
            tls=tls,
            ca_file=ca_file,
            client_cert=client_cert,
            client_key=client_key,
            retry=retry,
            options=options,
        )
        self.timeout = timeout
        stubs = {
            name: getattr(grpc_module, f"{service}Stub")(channel)
            for name, (_, grpc_module, service) in SERVICES.items()
        }
        self.vault = stubs["vault"]
        self.admin = stubs["admin"]
        self.audit = stubs["audit"]
        self.consent = stubs["consent"]
        self.rights = stubs["rights"]
        self.retention = stubs["retention"]
        self.customers = stubs["customers"]
        self.events = stubs["events"]

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def call(
        self, stub: object, method: str, request: object, *, timeout: float | None = None
    ) -> Any:
        """Any unary method of any of the vault's services, e.g.
        `client.call(client.consent, "GetConsent", request)`."""
        try:
            return getattr(stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise VaultClientError.from_rpc_error(exc) from None

    def stream(
        self, stub: object, method: str, request: object, *, timeout: float | None = None
    ) -> Iterator[Any]:
        """Any server-streaming method of any of the vault's services."""
        try:
            yield from getattr(stub, method)(request, timeout=timeout or STREAM_TIMEOUT)
        except grpc.RpcError as exc:
            raise VaultClientError.from_rpc_error(exc) from None

    def _unary(self, method: str, request: object) -> Any:
        return self.call(self.vault, method, request)

    def create(self, fields: Mapping[str, str], *, request_id: str = "") -> pb.SubjectMeta:
        """Store a new subject (a retry with the same `request_id` creates nothing new)."""
        request = pb.CreateSubjectRequest(fields=fields)
        _set_request_id(request, request_id)
        response: pb.CreateSubjectResponse = self._unary("CreateSubject", request)
        return response.subject

    def batch_create(
        self, items: Sequence[Mapping[str, str]], *, all_or_nothing: bool = False
    ) -> pb.BatchCreateSubjectsResponse:
        request = pb.BatchCreateSubjectsRequest(
            items=[pb.SubjectInput(fields=i) for i in items], all_or_nothing=all_or_nothing
        )
        response: pb.BatchCreateSubjectsResponse = self._unary("BatchCreateSubjects", request)
        return response

    def get(
        self, subject_id: str, view: str, purpose: str, justification: str = ""
    ) -> pb.SubjectView:
        request = pb.GetSubjectRequest(
            subject_id=subject_id, view=view, purpose=purpose, justification=justification
        )
        response: pb.GetSubjectResponse = self._unary("GetSubject", request)
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
        response: pb.FindSubjectsResponse = self._unary("FindSubjects", request)
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
        response: pb.UpdateSubjectResponse = self._unary("UpdateSubject", request)
        return response.subject

    def erase(self, subject_id: str, reason: str) -> pb.SubjectMeta:
        request = pb.EraseSubjectRequest(subject_id=subject_id, reason=reason)
        response: pb.EraseSubjectResponse = self._unary("EraseSubject", request)
        return response.subject

    def record_activity(self, subject_id: str) -> pb.SubjectMeta:
        request = pb.RecordActivityRequest(subject_id=subject_id, kind=pb.ACTIVITY_KIND_OTHER)
        response: pb.RecordActivityResponse = self._unary("RecordActivity", request)
        return response.subject

    def export(self, view: str, purpose: str, justification: str = "") -> Iterator[pb.SubjectView]:
        """Every subject through the view (the stream's messages carry one each)."""
        request = pb.ExportViewRequest(view=view, purpose=purpose, justification=justification)
        for message in self.stream(self.vault, "ExportView", request):
            yield message.subject

    def reveal(
        self, subject_id: str, field: str, purpose: str, justification: str
    ) -> pb.RevealFieldResponse:
        request = pb.RevealFieldRequest(
            subject_id=subject_id, field=field, purpose=purpose, justification=justification
        )
        response: pb.RevealFieldResponse = self._unary("RevealField", request)
        return response

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
        response: pb.TokenizeResponse = self._unary("Tokenize", request)
        return response

    def detokenize(self, token: str, purpose: str, justification: str) -> pb.DetokenizeResponse:
        request = pb.DetokenizeRequest(token=token, purpose=purpose, justification=justification)
        response: pb.DetokenizeResponse = self._unary("Detokenize", request)
        return response


def _set_request_id(request: Any, request_id: str) -> None:
    if request_id:
        if "request_id" not in request.DESCRIPTOR.fields_by_name:
            raise ValueError(f"{request.DESCRIPTOR.name} has no request_id in this version")
        request.request_id = request_id
