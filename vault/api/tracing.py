"""The tracing stage: one server span per RPC, its metrics, and the trace id for audit.

The span continues the caller's trace when its metadata carries a W3C ``traceparent``
and is current for the whole call, so the policy, crypto, database and audit spans of
the domain nest under it, and log lines name it. We do not use
``opentelemetry-instrumentation-grpc``'s server interceptor: it does not record the
status of ``abort_with_status`` (how every error leaves this server) and it would add
the peer address and user agent to every span.
"""

from __future__ import annotations

import grpc

from vault import telemetry
from vault.api.errors import status_code_for
from vault.api.interceptors import RpcCall

_SPAN = "telemetry.rpc"


class TracingStage:
    """Opens the call's span (method, status code and request id only: no PII) and
    counts the call by method and code, and a denial by the rule that refused it."""

    def before(self, rpc: RpcCall) -> None:
        span = telemetry.begin_rpc(
            rpc.method, rpc.context.invocation_metadata() or (), rpc.call.request_id
        )
        rpc.call.trace_id = span.trace_id
        rpc.state[_SPAN] = span
        rpc.on_finish.append(span.detach)

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None:
        span: telemetry.RpcSpan | None = rpc.state.pop(_SPAN, None)
        if span is None:
            return exc
        code = status_code_for(exc) if exc is not None else grpc.StatusCode.OK
        if exc is None and not rpc.context.is_active():
            code = grpc.StatusCode.CANCELLED  # a stream the caller abandoned
        call = rpc.call
        denied_by = call.reason if call.decision == "deny" and code != grpc.StatusCode.OK else ""
        span.end(code.value[0], code.name, denied_by=denied_by)
        return exc
