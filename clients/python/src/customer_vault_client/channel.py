"""The channel: TLS or mutual TLS, the bearer token, request ids, the retry policy."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import Message

from customer_vault_client.retries import DEFAULT_RETRY, REQUEST_ID, RetryPolicy, service_config
from customer_vault_client.services import all_descriptors

TokenSource = str | Callable[[], str]
"""A bearer token, or a function returning the current one (called for every call)."""


def fill_request_id(request: object) -> None:
    """Give `request` a fresh UUID4 `request_id` when its message has that field and it
    is empty. In place: sending the same message again reuses the id (AIP-155)."""
    if not isinstance(request, Message):
        return
    if REQUEST_ID in request.DESCRIPTOR.fields_by_name and not getattr(request, REQUEST_ID):
        setattr(request, REQUEST_ID, str(uuid.uuid4()))


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _CallInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds the bearer token and fills an empty request_id on every call."""

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        token = self._token() if callable(self._token) else self._token
        if not token:
            return details
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
        return _Details(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        fill_request_id(request)
        return continuation(self._details(details), request)

    def intercept_unary_stream(
        self, continuation: Any, details: Any, request: Any
    ) -> Iterator[Any]:
        fill_request_id(request)
        return continuation(self._details(details), request)  # type: ignore[no-any-return]


def open_channel(
    address: str,
    token: TokenSource = "",
    *,
    tls: bool = False,
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    options: tuple[tuple[str, Any], ...] = (),
) -> tuple[grpc.Channel, grpc.Channel]:
    """(the raw channel to close, the intercepted channel to build stubs on).

    TLS when `tls` or any certificate file is given (`ca_file` to trust a private CA,
    else the system roots; `client_cert` + `client_key` for mutual TLS). Without TLS the
    token travels in clear: for a vault on loopback only.
    """
    channel_options: list[tuple[str, Any]] = [("grpc.enable_retries", int(retry is not None))]
    if retry is not None:
        channel_options.append(("grpc.service_config", service_config(all_descriptors(), retry)))
    channel_options += options
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together (mutual TLS)")
    if tls or ca_file or client_cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca_file.read_bytes() if ca_file else None,
            private_key=client_key.read_bytes() if client_key else None,
            certificate_chain=client_cert.read_bytes() if client_cert else None,
        )
        raw = grpc.secure_channel(address, credentials, options=channel_options)
    else:
        raw = grpc.insecure_channel(address, options=channel_options)
    return raw, grpc.intercept_channel(raw, _CallInterceptor(token))
