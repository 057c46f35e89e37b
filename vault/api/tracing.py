"""The tracing stage: one span per RPC; its trace id goes into the audit entry."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from vault.api.errors import status_code_for
from vault.api.interceptors import RpcCall

_tracer = trace.get_tracer("customervault.api")


class TracingStage:
    """Opens a server span per call (attributes: method and result code only, no PII)."""

    def before(self, rpc: RpcCall) -> None:
        span = _tracer.start_span(rpc.call.action, kind=trace.SpanKind.SERVER)
        span.set_attribute("rpc.method", rpc.call.action)
        span.set_attribute("rpc.system", "grpc")
        span.set_attribute("customervault.request_id", rpc.call.request_id)
        ctx = span.get_span_context()
        if ctx.is_valid:
            rpc.call.trace_id = format(ctx.trace_id, "032x")
        rpc.state["span"] = span

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None:
        span = rpc.state.pop("span", None)
        if span is not None:
            code = status_code_for(exc).name if exc is not None else "OK"
            span.set_attribute("rpc.grpc.status_code", code)
            if exc is not None:
                span.set_status(Status(StatusCode.ERROR, code))
            span.end()
        return exc
