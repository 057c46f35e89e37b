"""OpenTelemetry through a real server: the span tree of a call, its metrics, trace ids in
log lines, and no PII in any span, metric or log line (in-memory exporter and reader)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import audit
from tests.data import DPO, NOBODY, PII, SECRETS
from tests.integration.harness import RunningVault, raw_stub, running_vault, settings_for
from tests.pii_watch import span_text, value_text
from vault import telemetry
from vault.api.client import VaultClientError
from vault.config import Settings
from vault.crypto import LocalKeyFileProvider

VAULT_SERVICE = "customervault.v1.VaultService"

# These tests install telemetry themselves, or check it is off; they scan their own spans.
pytestmark = pytest.mark.own_telemetry


class _Lines(logging.Handler):
    """Formats every record the way `customer-vault serve` does and keeps the lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(telemetry.LOG_FORMAT))
        self.addFilter(telemetry.TraceContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Captured:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: _Lines

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def _metrics(self) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]

    def points(self, name: str) -> list[Any]:
        return [p for m in self._metrics() if m.name == name for p in m.data.data_points]

    def units(self, name: str) -> list[str]:
        return [m.unit for m in self._metrics() if m.name == name]

    def metric_names(self) -> set[str]:
        return {m.name for m in self._metrics()}


@pytest.fixture
def otel() -> Iterator[Captured]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    handle = telemetry.install(tracer_provider, MeterProvider(metric_readers=[reader]))
    lines = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.DEBUG)
    try:
        yield Captured(spans, reader, lines)
    finally:
        root.removeHandler(lines)
        root.setLevel(level)
        handle.shutdown()


@pytest.fixture
def traced(otel: Captured, tmp_path: Path, database_url: str | None) -> Iterator[RunningVault]:
    with running_vault(settings_for(tmp_path / "data", database_url)) as running:
        yield running


def _server_span(captured: Captured, method: str) -> ReadableSpan:
    found = [s for s in captured.finished() if s.name == f"{VAULT_SERVICE}/{method}"]
    assert len(found) == 1, [s.name for s in captured.finished()]
    assert found[0].kind is SpanKind.SERVER
    return found[0]


def _children(captured: Captured, parent: ReadableSpan) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in captured.finished():
        if span.parent is not None and span.parent.span_id == parent.context.span_id:
            out.setdefault(span.name, []).append(span)
    return out


def test_a_call_is_one_server_span_with_policy_crypto_database_and_audit_children(
    otel: Captured, traced: RunningVault
) -> None:
    subject = traced.client().create(PII).subject_id
    traced.client(**DPO).get(subject, "full", "data_subject_request", "DSR-1")

    create = _server_span(otel, "CreateSubject")
    assert create.attributes is not None
    assert create.attributes["rpc.system"] == "grpc"
    assert create.attributes["rpc.service"] == VAULT_SERVICE
    assert create.attributes["rpc.method"] == "CreateSubject"
    assert create.attributes["rpc.grpc.status_code"] == 0
    assert len(str(create.attributes["customer_vault.request_id"])) == 32
    children = _children(otel, create)
    assert {"crypto.seal", "db.write"} <= set(children)
    (write,) = children["db.write"]
    (in_transaction,) = _children(otel, write)["audit.append"]
    assert in_transaction.attributes == {"customer_vault.audit.mode": "in_transaction"}

    get = _server_span(otel, "GetSubject")
    children = _children(otel, get)
    assert {"db.read", "policy.plan_view", "crypto.open", "audit.append"} <= set(children)
    assert children["audit.append"][0].attributes == {"customer_vault.audit.mode": "group_commit"}
    for span in otel.finished():
        assert span.context.trace_id in (create.context.trace_id, get.context.trace_id)
        assert span.end_time is not None

    # The audit entry names the trace, so a log line or a trace leads to the entry.
    (entry,) = audit.query(traced.app.db.engine, action="GetSubject").entries
    assert entry.entry.trace_id == format(get.context.trace_id, "032x")


def test_the_server_span_continues_the_callers_trace(otel: Captured, traced: RunningVault) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    stub, channel = raw_stub(traced)
    with channel:
        stub.CreateSubject(
            pb.CreateSubjectRequest(fields=PII),
            metadata=(
                ("authorization", f"Bearer {traced.token()}"),
                ("traceparent", f"00-{trace_id}-{parent_id}-01"),
            ),
            timeout=10,
        )
    span = _server_span(otel, "CreateSubject")
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == parent_id


def test_metrics_count_calls_by_method_and_code_and_denials_by_rule(
    otel: Captured, traced: RunningVault
) -> None:
    service, dpo = traced.client(), traced.client(**DPO)
    subject = service.create(PII).subject_id
    dpo.get(subject, "full", "data_subject_request", "DSR-1")
    with pytest.raises(VaultClientError) as denied:
        traced.client(**NOBODY).get(subject, "full", "data_subject_request", "DSR-1")
    assert denied.value.code == "PERMISSION_DENIED"

    # OpenTelemetry's RPC semantic conventions: rpc.server.duration in milliseconds,
    # by rpc.system, rpc.service, rpc.method and rpc.grpc.status_code; its count is
    # the number of calls.
    durations = otel.points("rpc.server.duration")
    calls = {
        (p.attributes["rpc.method"], p.attributes["rpc.grpc.status_code"]): p.count
        for p in durations
    }
    assert calls[("CreateSubject", 0)] == 1
    assert calls[("GetSubject", 0)] == 1
    assert calls[("GetSubject", grpc.StatusCode.PERMISSION_DENIED.value[0])] == 1
    assert sum(p.count for p in durations) == 3
    for point in durations:
        assert point.attributes["rpc.system"] == "grpc"
        assert point.attributes["rpc.service"] == VAULT_SERVICE
    (unit,) = otel.units("rpc.server.duration")
    assert unit == "ms"
    # Everything else is the vault's own, under one namespace.
    assert all(
        name.startswith("customer_vault.") or name.startswith("rpc.")
        for name in otel.metric_names()
    )
    (denial,) = otel.points("customer_vault.policy.denials")
    assert denial.value == 1
    assert denial.attributes["rpc.method"] == "GetSubject"
    assert denial.attributes["customer_vault.reason"] == "default-deny"
    modes = {
        p.attributes["customer_vault.audit.mode"]
        for p in otel.points("customer_vault.audit.write.duration")
    }
    assert modes == {"in_transaction", "group_commit"}

    telemetry.subjects_anonymized(2)
    telemetry.subjects_anonymized(0)
    (anonymized,) = otel.points("customer_vault.subjects.anonymized")
    assert anonymized.value == 2


def test_gauges_show_the_audit_checkpoint_lag_and_the_key_rewrap_progress(
    otel: Captured, traced: RunningVault
) -> None:
    service = traced.client()
    for _ in range(3):
        service.create(PII)
    (lag,) = otel.points("customer_vault.audit.checkpoint_lag")
    (age,) = otel.points("customer_vault.audit.checkpoint_lag.age")
    assert lag.value >= 0 and age.value >= 0
    _eventually(lambda: otel.points("customer_vault.audit.checkpoint_lag")[0].value == 0)

    keys = {
        p.attributes["customer_vault.kek_version"]: p.value
        for p in otel.points("customer_vault.keys.data_keys")
    }
    assert keys == {"1": 3}
    LocalKeyFileProvider(traced.settings.resolved_key_file).add_kek_version()
    _eventually(
        lambda: (
            {
                p.attributes["customer_vault.kek_version"]: p.value
                for p in otel.points("customer_vault.keys.data_keys")
                if p.value
            }
            == {"2": 3}
        )
    )


def _eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_an_unexpected_errors_log_line_names_the_calls_trace(
    otel: Captured, traced: RunningVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = traced.client().create(PII).subject_id

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Zebulon")  # a message holding PII, which must not be logged

    monkeypatch.setattr(traced.app.reader, "get", broken)
    with pytest.raises(VaultClientError) as failed:
        traced.client(**DPO).get(subject, "full", "data_subject_request", "DSR-1")
    assert failed.value.code == "INTERNAL"
    span = _server_span(otel, "GetSubject")
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    (line,) = [line for line in otel.logs.lines if "unexpected RuntimeError" in line]
    assert f"trace_id={trace_id} span_id={span_id}" in line
    assert "Zebulon" not in line
    assert span.status.description == "INTERNAL"
    assert not span.events


def _metric_text(captured: Captured) -> str:
    data = captured.metrics.get_metrics_data()
    assert data is not None
    parts = []
    for resource in data.resource_metrics:
        parts.append(value_text(dict(resource.resource.attributes)))
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                parts.append(f"{metric.name} {metric.description} {metric.unit}")
                parts += [value_text(dict(p.attributes or {})) for p in metric.data.data_points]
    return "\n".join(parts)


def _leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [s for s in SECRETS if s.lower() in lowered]


def test_no_pii_in_any_span_metric_or_log_line(otel: Captured, traced: RunningVault) -> None:
    service, dpo = traced.client(), traced.client(**DPO)
    sid = service.create(PII).subject_id
    dpo.get(sid, "full", "data_subject_request", "DSR-1")
    dpo.find("email", PII["email"], "full", "data_subject_request", "DSR-1")
    dpo.reveal(sid, "national_id", "data_subject_request", "DSR-7")
    service.update(sid, 1, {"city": "Sydneyville"}, reason="moved")
    service.tokenize(sid, "email", pb.TOKEN_KIND_RANDOM, "support")
    service.batch_create([PII, {**PII, "phone": "Zebulon"}])
    for bad in (
        lambda: service.create({**PII, "email": "not-an-email-zebulon"}),
        lambda: service.create({**PII, "Zebulon": "Quartermaine"}),
        lambda: dpo.find("email", "not-an-email-zebulon", "full", "data_subject_request", "DSR-1"),
        lambda: dpo.get(
            "zebulon.quartermaine@example.net", "full", "data_subject_request", "DSR-1"
        ),
        lambda: dpo.get(sid, "Quartermaine", "data_subject_request"),
        lambda: dpo.get(sid, "full", "Kumquats"),
        lambda: traced.client(**NOBODY).get(sid, "full", "data_subject_request", "DSR-1"),
    ):
        with pytest.raises(VaultClientError):
            bad()
    # PII in metadata, baggage and a malformed traceparent: none of it may reach a span.
    stub, channel = raw_stub(traced)
    with channel, pytest.raises(grpc.RpcError):
        stub.GetSubject(
            pb.GetSubjectRequest(subject_id=sid, view="full", purpose="Wallaby"),
            metadata=(
                ("authorization", f"Bearer {traced.token(**DPO)}"),
                ("x-customer", "Zebulon Quartermaine"),
                ("baggage", "customer=Zebulon,city=Sydneyville"),
                ("traceparent", "00-zebulon-quartermaine-01"),
            ),
            timeout=10,
        )

    spans = otel.finished()
    assert len(spans) > 30 and {s.name for s in spans} >= {"crypto.open", "db.write"}
    assert [(s.name, _leaks(span_text(s))) for s in spans if _leaks(span_text(s))] == []
    metric_text = _metric_text(otel)
    assert "customer_vault.policy.denials" in metric_text  # the scan saw the labels
    assert _leaks(metric_text) == []
    assert otel.logs.lines  # the scan saw log lines
    assert [line for line in otel.logs.lines if _leaks(line)] == []


def test_telemetry_is_off_unless_the_otel_variables_ask_for_it() -> None:
    assert telemetry.configure(Settings()).tracer_provider is None
    assert telemetry.configure(Settings(otel_traces_exporter="none")).tracer_provider is None
    assert telemetry.configure(Settings(otel_sdk_disabled=True)).meter_provider is None
    assert telemetry.span("db.read") is telemetry.span("db.write")  # one shared no-op
    # Off, a call still gets a trace id (for audit entries and log lines), unrecorded.
    rpc = telemetry.begin_rpc("/customervault.v1.VaultService/GetSubject", (), "r1")
    try:
        assert len(rpc.trace_id) == 32 and rpc.trace_id != "0" * 32
        assert not rpc.span.is_recording()
    finally:
        rpc.end(0, "OK")
        rpc.detach()


def test_which_exporters_the_otel_variables_choose() -> None:
    choose = telemetry._exporters
    endpoint = "http://collector:4317"
    assert choose(Settings(otel_exporter_otlp_endpoint=endpoint), "traces") == ["otlp"]
    assert choose(Settings(otel_exporter_otlp_metrics_endpoint=endpoint), "metrics") == ["otlp"]
    assert choose(Settings(otel_exporter_otlp_metrics_endpoint=endpoint), "traces") == []
    assert choose(Settings(otel_traces_exporter="console,none"), "traces") == ["console"]
    both = Settings(otel_exporter_otlp_endpoint=endpoint, otel_metrics_exporter="none")
    assert choose(both, "metrics") == []
    disabled = Settings(otel_exporter_otlp_endpoint=endpoint, otel_sdk_disabled=True)
    assert choose(disabled, "traces") == []


def test_configure_installs_exporters_and_shutdown_switches_them_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Console exporters: the same path as OTLP without a collector to talk to. The
    # OpenTelemetry globals can be set once per process: leave them to production.
    monkeypatch.setattr(telemetry, "_globals_set", True)
    handle = telemetry.configure(
        Settings(otel_traces_exporter="console", otel_metrics_exporter="none")
    )
    try:
        assert handle.tracer_provider is not None and handle.meter_provider is None
        assert handle.tracer_provider.resource.attributes["service.name"] == "customer-vault"
        assert telemetry.configure(Settings(otel_traces_exporter="console")).tracer_provider is None
    finally:
        handle.shutdown()
    assert telemetry._state.tracer is None
