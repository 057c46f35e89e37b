"""The interceptor chain: tracing -> authentication -> handler, with audit and error
mapping around all of it.

Stages get one `RpcCall` dataclass per call (so their inputs can grow without changing
signatures). `before` hooks run in order; `after` hooks run in reverse for every stage
whose `before` ran, with the exception the call ended with (or None), and may replace
it. Finally an exception becomes a rich gRPC status. Unary and server-streaming methods
share the same runner; a stream's `after` hooks run when it is exhausted or fails.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc_status import rpc_status

from vault.api.errors import rich_status, status_code_for
from vault.audit_trail import Auditor
from vault.context import CallContext, current_call
from vault.errors import FieldViolation, InvalidArgumentError, UnauthenticatedError
from vault.identity import (
    CertificateIdentity,
    IdentityMap,
    TokenBindingError,
    TokenVerifier,
    identity_from_auth_context,
)
from vault.principal import Principal

log = logging.getLogger(__name__)

# Health checking and reflection answer without credentials (DESIGN §3).
PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class _Malformed:
    """Stands in for a request whose bytes did not parse (invalid wire format, or a
    string field that is not UTF-8), so the call is authenticated, refused with
    INVALID_ARGUMENT and audited like any other instead of grpc's unaudited INTERNAL."""


MALFORMED = _Malformed()


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - any parse failure is the caller's bad input
            return MALFORMED

    return parse


def _malformed_request() -> InvalidArgumentError:
    return InvalidArgumentError(
        [FieldViolation("request", "not a valid message of this method's request type")],
        "malformed request",
    )


@dataclass
class RpcCall:
    """One call as the stages see it."""

    method: str
    request: Any
    context: grpc.ServicerContext
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

    def __init__(self, verifier: TokenVerifier, identities: IdentityMap | None = None) -> None:
        self._verifier = verifier
        self._identities = identities or IdentityMap({})

    def before(self, rpc: RpcCall) -> None:
        token = _bearer_token(rpc.context)
        peer = identity_from_auth_context(rpc.context.auth_context() or {})
        if peer is not None:
            rpc.call.principal = self._from_certificate(rpc, peer, token)
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


def _bearer_token(context: grpc.ServicerContext) -> str | None:
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


class VaultInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Runs the stage chain around every non-public method."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self._stages = tuple(stages)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        method = details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _begin(self, method: str, request: Any, context: grpc.ServicerContext) -> RpcCall:
        call = CallContext(
            method=method, request_id=uuid.uuid4().hex, caller_address=context.peer() or ""
        )
        return RpcCall(method, request, context, call)

    def _enter(self, rpc: RpcCall) -> tuple[list[Stage], BaseException | None]:
        entered: list[Stage] = []
        try:
            for stage in self._stages:
                entered.append(stage)
                stage.before(rpc)
        except Exception as exc:  # noqa: BLE001 - handed to the after hooks, then mapped
            return entered, exc
        if rpc.request is MALFORMED:  # refused once the caller is known, and audited
            return entered, _malformed_request()
        return entered, None

    def _exit(self, rpc: RpcCall, entered: list[Stage], exc: BaseException | None) -> None:
        for stage in reversed(entered):
            exc = stage.after(rpc, exc)
        if exc is not None:
            rpc.context.abort_with_status(
                rpc_status.to_status(rich_status(exc, rpc.call.request_id))
            )

    def _unary(self, method: str, behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            rpc = self._begin(method, request, context)
            token = current_call.set(rpc.call)
            try:
                entered, exc = self._enter(rpc)
                response = None
                if exc is None:
                    try:
                        response = behavior(request, context)
                    except Exception as raised:  # noqa: BLE001 - mapped to a status below
                        exc = raised
                self._exit(rpc, entered, exc)
                return response
            finally:
                _finish(rpc)
                current_call.reset(token)

        return run

    def _stream(
        self, method: str, behavior: Callable[[Any, Any], Iterator[Any]]
    ) -> Callable[[Any, Any], Iterator[Any]]:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            rpc = self._begin(method, request, context)
            token = current_call.set(rpc.call)
            try:
                entered, exc = self._enter(rpc)
                if exc is None:
                    try:
                        yield from behavior(request, context)
                    except GeneratorExit:
                        rpc.call.reason = rpc.call.reason or "cancelled by the caller"
                        for stage in reversed(entered):
                            stage.after(rpc, None)
                        raise
                    except Exception as raised:  # noqa: BLE001 - mapped to a status below
                        exc = raised
                self._exit(rpc, entered, exc)
            finally:
                _finish(rpc)
                current_call.reset(token)

        return run


def _finish(rpc: RpcCall) -> None:
    for hook in reversed(rpc.on_finish):
        hook()
