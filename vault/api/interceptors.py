"""The stages every authenticated call runs through: tracing -> authentication ->
handler, with audit and error mapping around all of it (`vault.api.runner` runs them).

Stages get one `RpcCall` dataclass per call (so their inputs can grow without changing
signatures). `before` hooks run in order; `after` hooks run in reverse for every stage
whose `before` ran, with the exception the call ended with (or None), and may replace
it. Finally an exception becomes a rich gRPC status. Stages are plain synchronous code.
The runner calls `before` hooks on the server's event loop, so they must not block (no
I/O: they read metadata and verify signatures); `after` hooks (the audit write) run on
its worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from vault.api.errors import status_code_for
from vault.audit_trail import Auditor
from vault.context import CallContext
from vault.errors import UnauthenticatedError
from vault.identity import (
    BearerVerifier,
    CertificateIdentity,
    IdentityMap,
    TokenBindingError,
    identity_from_auth_context,
)
from vault.principal import Principal

log = logging.getLogger(__name__)


# Methods whose request carries its own credential (a one-time link code): they run
# without a bearer token, still audited, and the domain names the principal it verified.
CREDENTIAL_EXCHANGE = frozenset({"/customervault.v1.CustomerAccessService/RedeemCustomerLink"})


class CallInfo:
    """What stages may read of a call's transport: its metadata, TLS peer and address
    (captured on the event loop when the call starts), and whether it is still active."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._metadata = tuple(context.invocation_metadata() or ())
        self._auth = dict(context.auth_context() or {})
        self._peer = context.peer() or ""
        self.active = True

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, Any]:
        return self._auth

    def peer(self) -> str:
        return self._peer

    def is_active(self) -> bool:
        return self.active


@dataclass
class RpcCall:
    """One call as the stages see it."""

    method: str
    request: Any
    context: CallInfo
    call: CallContext
    state: dict[str, Any] = field(default_factory=dict)
    on_finish: list[Callable[[], None]] = field(default_factory=list)
    """Run last, after the status is set (the tracing stage keeps its span current
    until then, so the error mapping's own log line names the trace)."""


class Stage(Protocol):
    def before(self, rpc: RpcCall) -> None: ...

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None: ...


class AuthenticationStage:
    """Builds the principal from verified credentials only, never from plain headers.

    With mutual TLS the principal is the client certificate's mapped identity; a bearer
    token sent beside it must verify and name the same principal and tenant. Without a
    client certificate a verified bearer token is required. A token bound to a client
    certificate (RFC 8705) is refused unless it comes with that very certificate.
    """

    def __init__(self, verifier: BearerVerifier, identities: IdentityMap | None = None) -> None:
        self._verifier = verifier
        self._identities = identities or IdentityMap({})

    def before(self, rpc: RpcCall) -> None:
        token = _bearer_token(rpc.context)
        peer = identity_from_auth_context(rpc.context.auth_context() or {})
        if peer is not None:
            rpc.call.principal = self._from_certificate(rpc, peer, token)
            return
        if token is None and rpc.method in CREDENTIAL_EXCHANGE:
            return
        if token is None:
            rpc.call.reason = "no credentials"
            raise UnauthenticatedError("authentication required")
        rpc.call.principal = self._verify(rpc, token)

    def _verify(
        self, rpc: RpcCall, token: str, peer: CertificateIdentity | None = None
    ) -> Principal:
        try:
            return self._verifier.verify(token, certificate=peer.thumbprint if peer else None)
        except TokenBindingError:
            rpc.call.reason = "token bound to another client certificate"
            raise
        except UnauthenticatedError:
            rpc.call.reason = "invalid credentials"
            raise

    def _from_certificate(
        self, rpc: RpcCall, peer: CertificateIdentity, token: str | None
    ) -> Principal:
        try:
            principal = self._identities.principal_for(peer)
        except UnauthenticatedError:
            rpc.call.reason = "unknown client certificate"
            raise
        if token is not None:
            claimed = self._verify(rpc, token, peer)
            if (claimed.id, claimed.tenant) != (principal.id, principal.tenant):
                rpc.call.reason = "token does not match the client certificate"
                raise UnauthenticatedError("credentials disagree")
        return principal

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None:
        return exc


def _bearer_token(context: CallInfo) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class AuditStage:
    """Writes the entry for every call the domain did not audit itself."""

    def __init__(self, auditor: Auditor) -> None:
        self._auditor = auditor

    def before(self, rpc: RpcCall) -> None:
        return None

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None:
        if rpc.call.audited:
            return exc
        code = status_code_for(exc).name if exc is not None else "OK"
        try:
            self._auditor.record(rpc.call, code)
        except Exception as audit_exc:  # noqa: BLE001 - any audit failure must fail closed
            # No traceback: a driver error can quote bound values.
            log.error(  # noqa: TRY400
                "could not audit %s (request id %s)", rpc.call.action, rpc.call.request_id
            )
            return exc or audit_exc
        return exc
