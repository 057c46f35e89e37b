"""OpenTelemetry for the vault: one span per RPC with child spans, metrics, log trace ids.

Nothing is exported unless the standard ``OTEL_*`` variables ask for it (`configure`);
`Settings` reads the few that decide, the SDK reads the rest (endpoint, headers,
service name, sampler, export interval). Switched off, an RPC still gets a
non-recording span, so audit entries and log lines carry a trace id, while child spans
and metric instruments are no-ops.

Only identifiers of the *code* reach telemetry: method names, status codes, policy rule
texts, counts, dialect names. Never a request value, and never an exception's message
(a driver's message can quote bound values): a failed span records the type name only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from vault.config import Settings

log = logging.getLogger(__name__)

SCOPE = "customervault"
"""The instrumentation scope (meter and tracer name)."""
NAMESPACE = "customer_vault"
"""The prefix of the vault's own metric and attribute names; RPC metrics follow the
OpenTelemetry RPC semantic conventions instead (`rpc.server.duration`, `rpc.*`)."""
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MILLISECONDS = tuple(s * 1000 for s in _SECONDS)
_NO_SPAN = nullcontext()
SHUTDOWN_SECONDS = 3.0
_IDS = RandomIdGenerator()
_T = TypeVar("_T")

LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s %(message)s"
)
"""The `serve` log line: every record carries the current trace and span id."""


class RedactingFormatter(logging.Formatter):
    """The `serve` formatter: an exception shows as its type names only, never as a
    traceback or a message. A driver's message quotes SQL and can quote bound values,
    and a library (grpc, asyncio, SQLAlchemy's pool) may log an exception it caught with
    its traceback: whatever logs it, no stack trace, SQL or value reaches a log line."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's own name
        names: list[str] = []
        exc = ei[1] if ei else None
        while exc is not None and len(names) < 8:
            names.append(type(exc).__name__)
            exc = exc.__cause__ or exc.__context__
        return "exception: " + " <- ".join(names) if names else ""

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's own name
        return ""


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (zeros outside any span) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x")
        record.span_id = format(ctx.span_id, "016x")
        return True


@dataclass(frozen=True)
class GaugeSources:
    """Where the observable gauges read from (called at each metric collection)."""

    audit_lag: Callable[[], tuple[int, float]]
    """Entries not yet in a signed checkpoint, and the age in seconds of the oldest."""
    data_keys: Callable[[], Mapping[str, int]]
    """Data keys per KEK version label (``"1"``, ``"2"``, ... and ``"shredded"``)."""
    witness_lag: Callable[[], Mapping[str, int]] = dict
    """Per witness name: leaves of the newest checkpoint its cosignature does not cover."""


class _Instruments:
    def __init__(self, meter: metrics.Meter) -> None:
        # OpenTelemetry RPC semantic conventions: the server-side duration of each call,
        # in milliseconds, with rpc.system, rpc.service, rpc.method and
        # rpc.grpc.status_code; its count is the number of calls.
        self.duration = meter.create_histogram(
            "rpc.server.duration",
            unit="ms",
            description="Measures the duration of inbound RPC",
            explicit_bucket_boundaries_advisory=_MILLISECONDS,
        )
        self.denials = meter.create_counter(
            f"{NAMESPACE}.policy.denials", unit="{request}", description="Denied calls by rule"
        )
        self.audit_write = meter.create_histogram(
            f"{NAMESPACE}.audit.write.duration",
            unit="s",
            description="Time to append an audit entry (in the change's transaction or by "
            "group commit)",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.anonymized = meter.create_counter(
            f"{NAMESPACE}.subjects.anonymized", unit="{subject}", description="Subjects anonymized"
        )
        meter.create_observable_gauge(
            f"{NAMESPACE}.audit.checkpoint_lag",
            [_observe_lag_entries],
            unit="{entry}",
            description="Audit entries not yet covered by a signed checkpoint",
        )
        meter.create_observable_gauge(
            f"{NAMESPACE}.audit.checkpoint_lag.age",
            [_observe_lag_age],
            unit="s",
            description="Age of the oldest audit entry not yet in a signed checkpoint",
        )
        self.integrity_alarms = meter.create_counter(
            f"{NAMESPACE}.audit.integrity_alarms",
            unit="{alarm}",
            description="The integrator or a witness found the stored audit tree rewritten",
        )
        meter.create_observable_gauge(
            f"{NAMESPACE}.audit.witness_lag",
            [_observe_witness_lag],
            unit="{entry}",
            description="Audit entries of the newest checkpoint not yet cosigned, per witness",
        )
        meter.create_observable_gauge(
            f"{NAMESPACE}.keys.data_keys",
            [_observe_data_keys],
            unit="{key}",
            description="Data keys per KEK version (re-wrap progress)",
        )


@dataclass
class _State:
    tracer: trace.Tracer | None = None
    instruments: _Instruments = field(
        default_factory=lambda: _Instruments(metrics.NoOpMeterProvider().get_meter(SCOPE))
    )
    installed: bool = False


_state: _State  # assigned at the end of the module, once the gauge callbacks exist
_sources: GaugeSources | None = None
_globals_set = False


class Telemetry:
    """What `install` or `configure` switched on; `shutdown` flushes and switches off."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        state: _State | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._state = state

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Flush the exporters and stop, waiting at most `timeout` seconds (an unreachable
        collector must not hold up a pod's exit); telemetry is off again afterwards."""
        global _state  # noqa: PLW0603 - the process-wide switch this module exists for
        if self._state is None:
            return
        if _state is self._state:
            _state = _State()
        self._state = None
        flushing = threading.Thread(target=self._flush, name="telemetry-flush", daemon=True)
        flushing.start()
        flushing.join(timeout)
        if flushing.is_alive():
            log.warning("telemetry not flushed within %.0fs; the rest is dropped", timeout)

    def _flush(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def install(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> Telemetry:
    """Use these providers from now on (tests pass in-memory exporters and readers)."""
    global _state  # noqa: PLW0603 - the process-wide switch this module exists for
    state = _State(
        tracer=tracer_provider.get_tracer(SCOPE) if tracer_provider is not None else None,
        instruments=_Instruments((meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE)),
        installed=True,
    )
    _state = state
    return Telemetry(tracer_provider, meter_provider, state)


def configure(settings: Settings) -> Telemetry:
    """Install OTLP (or console) exporters if the ``OTEL_*`` settings ask for them.

    Does nothing, and returns a handle that owns nothing, when they do not or when
    telemetry is already on in this process (a second app, or a test's in-memory setup).
    The providers also become the OpenTelemetry globals, for libraries that use those.
    """
    traces = _exporters(settings, "traces")
    metric_names = _exporters(settings, "metrics")
    if (not traces and not metric_names) or _state.installed:
        return Telemetry()
    resource = _resource()
    tracer_provider = _tracer_provider(resource, traces) if traces else None
    meter_provider = _meter_provider(resource, metric_names) if metric_names else None
    _set_globals(tracer_provider, meter_provider)
    log.info("telemetry export on: traces %s, metrics %s", traces or "off", metric_names or "off")
    return install(tracer_provider, meter_provider)


def _set_globals(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> None:
    # The API allows setting each global once per process; a later app keeps the first.
    global _globals_set  # noqa: PLW0603 - once per process, as the API itself demands
    if _globals_set:
        return
    _globals_set = True
    if tracer_provider is not None:
        trace.set_tracer_provider(tracer_provider)
    if meter_provider is not None:
        metrics.set_meter_provider(meter_provider)


def _exporters(settings: Settings, signal: str) -> list[str]:
    """The exporter names for `signal`: as named by OTEL_<SIGNAL>_EXPORTER, else ``otlp``
    when an OTLP endpoint is set (the variable's documented default), else none."""
    if settings.otel_sdk_disabled:
        return []
    named = getattr(settings, f"otel_{signal}_exporter").strip().lower()
    endpoint = settings.otel_exporter_otlp_endpoint or getattr(
        settings, f"otel_exporter_otlp_{signal}_endpoint"
    )
    if not named:
        return ["otlp"] if endpoint else []
    names = [n.strip() for n in named.split(",") if n.strip() not in ("", "none")]
    unknown = [n for n in names if n not in ("otlp", "console")]
    if unknown:
        log.warning("ignoring unsupported %s exporters %s", signal, unknown)
    return [n for n in names if n in ("otlp", "console")]


def _resource() -> Resource:
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "customer-vault"}))
    return resource


def _tracer_provider(resource: Resource, names: list[str]) -> TracerProvider:
    # Shut down by `Telemetry.shutdown` (bounded), not by an atexit hook that could wait
    # for an unreachable collector.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            # Imported only when asked for: it loads a gRPC stack of its own.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _meter_provider(resource: Resource, names: list[str]) -> MeterProvider:
    readers: list[MetricReader] = []
    for name in names:
        exporter: MetricExporter
        if name == "otlp":
            # Imported only when asked for: it loads a gRPC stack of its own.
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
                OTLPMetricExporter,
            )

            exporter = OTLPMetricExporter()
        else:
            exporter = ConsoleMetricExporter()
        readers.append(PeriodicExportingMetricReader(exporter))
    return MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)


# --- spans ---------------------------------------------------------------------------------


class RpcSpan:
    """The server span of one RPC, current from `begin_rpc` until `detach`."""

    def __init__(self, method: str, metadata: Iterable[tuple[str, str | bytes]]) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self._attributes: dict[str, str | int] = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": name,
        }
        # Only the propagation headers: never hand the bearer token to anything.
        fields = _propagation_fields()
        carrier = {k: v for k, v in metadata if k in fields and isinstance(v, str)}
        parent = propagate.extract(carrier) if carrier else None
        tracer = _state.tracer
        if tracer is None:
            self.span = _unrecorded(parent)
        else:
            self.span = tracer.start_span(
                f"{service}/{name}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=self._attributes,
            )
        self._token = context.attach(trace.set_span_in_context(self.span))
        self._thread = threading.get_ident()
        self._started = time.perf_counter()

    @property
    def trace_id(self) -> str:
        ctx = self.span.get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else ""

    def end(self, code: int, code_name: str, *, denied_by: str = "") -> None:
        """Close the span and count the call; `denied_by` is the refusing rule, if any.
        The span stays current until `detach`."""
        elapsed = time.perf_counter() - self._started
        self.span.set_attribute("rpc.grpc.status_code", code)
        if code != 0:
            self.span.set_status(Status(StatusCode.ERROR, code_name))
        self.span.end()
        attributes = {**self._attributes, "rpc.grpc.status_code": code}
        instruments = _state.instruments
        instruments.duration.record(elapsed * 1000.0, attributes)
        if denied_by:
            instruments.denials.add(1, {**self._attributes, "customer_vault.reason": denied_by})

    def detach(self) -> None:
        """Stop being the current span (worker threads are reused: this must happen)."""
        # A stream the caller abandons is closed from another thread, whose context never
        # had the span attached.
        if threading.get_ident() == self._thread:
            context.detach(self._token)


def _unrecorded(parent: context.Context | None) -> trace.Span:
    """A span that records nothing but has ids (the caller's trace id, if it sent one),
    so audit entries and log lines can name the call when tracing is off."""
    remote = trace.get_current_span(parent).get_span_context() if parent else None
    trace_id = remote.trace_id if remote and remote.is_valid else _IDS.generate_trace_id()
    return trace.NonRecordingSpan(
        trace.SpanContext(trace_id, _IDS.generate_span_id(), is_remote=False)
    )


@cache
def _propagation_fields() -> frozenset[str]:
    return frozenset(propagate.get_global_textmap().fields)


def begin_rpc(method: str, metadata: Iterable[tuple[str, str | bytes]], request_id: str) -> RpcSpan:
    """Start (and make current) the server span of a call, continuing the caller's trace
    if its metadata carries a W3C ``traceparent``."""
    rpc = RpcSpan(method, metadata)
    rpc.span.set_attribute("customer_vault.request_id", request_id)
    return rpc


def span(name: str, **attributes: str | int) -> AbstractContextManager[object]:
    """A child span of the current one: a no-op when tracing is off or outside any span
    (background work such as key re-wrap does not start traces of its own)."""
    tracer = _state.tracer
    if tracer is None or not trace.get_current_span().is_recording():
        return _NO_SPAN
    return _child(tracer, name, attributes)


@contextmanager
def _child(tracer: trace.Tracer, name: str, attributes: Mapping[str, str | int]) -> Iterator[None]:
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


@contextmanager
def audit_write(mode: str) -> Iterator[None]:
    """Span and latency of one audit append (`mode`: in_transaction or group_commit)."""
    started = time.perf_counter()
    with span("audit.append", **{"customer_vault.audit.mode": mode}):
        yield
    _state.instruments.audit_write.record(
        time.perf_counter() - started, {"customer_vault.audit.mode": mode}
    )


# --- metrics -------------------------------------------------------------------------------


def subjects_anonymized(count: int) -> None:
    """Count subjects anonymized (the retention job calls this after each batch)."""
    if count > 0:
        _state.instruments.anonymized.add(count)


def audit_integrity_alarm(source: str) -> None:
    """Count an audit integrity alarm (`source`: integrator or witness)."""
    _state.instruments.integrity_alarms.add(1, {"customer_vault.audit.alarm_source": source})


def watch(sources: GaugeSources) -> Callable[[], None]:
    """Serve the observable gauges from `sources` until the returned function is called."""
    global _sources  # noqa: PLW0603 - one vault per process serves the gauges
    _sources = sources

    def unwatch() -> None:
        global _sources  # noqa: PLW0603 - see watch
        if _sources is sources:
            _sources = None

    return unwatch


def _read_source(read: Callable[[GaugeSources], _T]) -> _T | None:
    sources = _sources
    if sources is None:
        return None
    try:
        return read(sources)
    except Exception as exc:  # noqa: BLE001 - a gauge must not fail the collection
        log.warning("telemetry gauge unavailable (%s)", type(exc).__name__)
        return None


def _observe_lag_entries(_options: CallbackOptions) -> Iterable[Observation]:
    lag = _read_source(lambda s: s.audit_lag())
    return [] if lag is None else [Observation(lag[0])]


def _observe_lag_age(_options: CallbackOptions) -> Iterable[Observation]:
    lag = _read_source(lambda s: s.audit_lag())
    return [] if lag is None else [Observation(lag[1])]


def _observe_witness_lag(_options: CallbackOptions) -> Iterable[Observation]:
    lags = _read_source(lambda s: dict(s.witness_lag()))
    if lags is None:
        return []
    return [Observation(n, {"customer_vault.witness": name}) for name, n in lags.items()]


def _observe_data_keys(_options: CallbackOptions) -> Iterable[Observation]:
    counts = _read_source(lambda s: dict(s.data_keys()))
    if counts is None:
        return []
    return [Observation(n, {"customer_vault.kek_version": v}) for v, n in counts.items()]


_state = _State()
