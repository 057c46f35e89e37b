"""The suite-wide PII watch: every personal value a test sends to the vault is seeded;
every log record, error status (message and details), span, metric and audit export the
test produces is captured; at the end of the test none may contain a seeded value.

Seeding happens at the gRPC boundary: a client interceptor on every channel the test
process opens records the values of personal fields in requests (`fields`, `changes`,
the `value` of a lookup), as sent and as the data dictionary normalizes them, and the
error statuses that come back (including per-item batch errors). Servers the test runs
in this process hand over their audit log as JSONL and CSV exports before they close
(`tests.integration.harness` calls `export_audit`). Servers in other processes are
covered by their own tests, which read those processes' logs.

Only whole values are matched (case-insensitively), of at least six characters and not
made of hex digits alone, so ids, hashes and timestamps cannot match by chance; tests
that check fragments keep their own, finer scans (test_no_pii_leaks, test_telemetry).
A test that sends generated garbage rather than personal data (hypothesis) opts out of
seeding with `@pytest.mark.no_pii_seeding`; what it sends is then not treated as PII.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import Engine

import audit
from vault import telemetry as vault_telemetry
from vault.errors import InvalidArgumentError
from vault.fields.dictionary import DataDictionary

REPO_ROOT = Path(__file__).resolve().parents[1]
MIN_LENGTH = 6
_ID_LIKE = re.compile(r"[0-9a-f]+")
_SEEDED_MAPS = frozenset({"fields", "changes", "proposed_values"})
_SEEDED_STRINGS = frozenset({"value"})
_OUR_LOGGERS = ("vault", "audit")
_DETAIL_TYPES = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RequestInfo,
    error_details_pb2.ResourceInfo,
    error_details_pb2.PreconditionFailure,
)
_dictionary: DataDictionary | None = None


def _data_dictionary() -> DataDictionary:
    global _dictionary  # noqa: PLW0603 - loaded once per test process
    if _dictionary is None:
        _dictionary = DataDictionary.from_file(REPO_ROOT / "policies" / "data_dictionary.yaml")
    return _dictionary


@dataclass
class PiiWatch:
    """What one test seeded and what it produced."""

    seeding: bool = True
    seeded: set[str] = field(default_factory=set)
    captured: list[tuple[str, str]] = field(default_factory=list)

    def seed(self, value: str, field_name: str | None = None) -> None:
        """Treat `value` (and its normalized form, when `field_name` says which field
        it is) as personal data this test wrote."""
        forms = {value.strip()}
        if field_name is not None:
            spec = _data_dictionary().fields.get(field_name)
            if spec is None or not spec.pii or spec.type == "enum":
                return
            with contextlib.suppress(InvalidArgumentError):  # then it is seeded as sent
                today = datetime.now(UTC).date()
                forms.add(_data_dictionary().normalize_one(field_name, value, today=today))
        for form in forms:
            lowered = form.lower()
            if len(lowered) >= MIN_LENGTH and not _ID_LIKE.fullmatch(lowered):
                self.seeded.add(lowered)

    def see(self, channel: str, text: str) -> None:
        self.captured.append((channel, text))

    def leaks(self) -> list[tuple[str, str]]:
        """(channel, value) for every seeded value found in captured text."""
        if not self.seeded:
            return []
        by_channel: dict[str, list[str]] = {}
        for channel, text in self.captured:
            by_channel.setdefault(channel, []).append(text)
        found = []
        for channel, texts in by_channel.items():
            lowered = "\n".join(texts).lower()
            found.extend((channel, value) for value in _present(self.seeded, lowered))
        return sorted(found)


_MANY = 50_000_000
"""Above this many (values x characters), `_present` indexes the text first."""


def _present(values: set[str], text: str) -> list[str]:
    """The values that occur in `text`, exactly as `value in text` finds them.

    A test that seeds thousands of customers and exports thousands of audit entries
    would cost one scan of the text per value (tens of seconds); instead every
    MIN_LENGTH-character slice of the text goes into a set once, and only a value whose
    first MIN_LENGTH characters are in it is searched for. That filter is exact: where
    a value occurs, its first MIN_LENGTH characters are a slice starting there.
    """
    if len(values) * len(text) < _MANY:
        return [value for value in values if value in text]
    slices = {text[i : i + MIN_LENGTH] for i in range(len(text) - MIN_LENGTH + 1)}
    return [
        value
        for value in values
        if (len(value) < MIN_LENGTH or value[:MIN_LENGTH] in slices) and value in text
    ]


current: PiiWatch | None = None
"""The watch of the running test (None outside one)."""


# --- seeding and error capture at the gRPC boundary ---------------------------------------


def seed_request(request: Message) -> None:
    if current is None or not current.seeding or not isinstance(request, Message):
        return  # raw bytes sent by a test of malformed input are not seeded
    for descriptor, value in request.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            if descriptor.name in _SEEDED_STRINGS and isinstance(value, str):
                owner = getattr(request, "field", None)
                current.seed(value, owner if isinstance(owner, str) else None)
            continue
        if descriptor.message_type.GetOptions().map_entry:
            if descriptor.name in _SEEDED_MAPS:
                for name, item in value.items():
                    if isinstance(item, str):
                        current.seed(item, name)
            continue
        items = value if descriptor.is_repeated else [value]
        for item in items:
            seed_request(item)


def status_text(status: status_pb2.Status) -> str:
    """A status with its details unpacked, as text."""
    parts = [f"{status.code} {status.message}"]
    for detail in status.details:
        for kind in _DETAIL_TYPES:
            if detail.Is(kind.DESCRIPTOR):
                unpacked = kind()
                detail.Unpack(unpacked)
                parts.append(text_format.MessageToString(unpacked, as_utf8=True))
                break
        else:
            parts.append(detail.value.decode("utf-8", "replace"))
    return "\n".join(parts)


def _statuses_in(message: Message) -> Iterator[status_pb2.Status]:
    for descriptor, value in message.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            continue
        items = value if descriptor.is_repeated else [value]
        for item in items:
            if isinstance(item, status_pb2.Status):
                yield item
            else:
                yield from _statuses_in(item)


def see_error(error: grpc.RpcError) -> None:
    if current is None:
        return
    parts = [str(error.code()), str(error.details())]  # type: ignore[attr-defined]
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            parts.append(status_text(status_pb2.Status.FromString(value)))
        else:
            parts.append(f"{key}={value!r}")
    current.see("error status", "\n".join(parts))


def see_response(response: object) -> None:
    if current is not None and isinstance(response, Message):
        for status in _statuses_in(response):
            current.see("error status in a response", status_text(status))


class _Watching(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Message
    ) -> Any:
        seed_request(request)
        outcome = continuation(details, request)
        outcome.add_done_callback(_on_done)
        return outcome

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Message
    ) -> Any:
        seed_request(request)
        return _WatchedStream(continuation(details, request))


def _on_done(outcome: Any) -> None:
    error = outcome.exception()
    if isinstance(error, grpc.RpcError):
        see_error(error)
    elif error is None:
        see_response(outcome.result())


class _WatchedStream:
    """A response stream whose items and failure are seen on the way through."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> _WatchedStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._call)
        except grpc.RpcError as error:
            see_error(error)
            raise
        see_response(item)
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


def watched_channel_factory(make: Callable[..., grpc.Channel]) -> Callable[..., grpc.Channel]:
    """`grpc.insecure_channel` or `grpc.secure_channel`, with the watch on every call."""

    def make_watched(*args: Any, **kwargs: Any) -> grpc.Channel:
        return grpc.intercept_channel(make(*args, **kwargs), _Watching())

    return make_watched


# --- logs, spans, metrics, audit exports ---------------------------------------------------


class _LogCapture(logging.Handler):
    def __init__(self, watch: PiiWatch) -> None:
        super().__init__(logging.DEBUG)
        self._watch = watch
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a record that cannot format is seen raw
            text = f"{record.msg!r} {record.args!r}"
        self._watch.see(f"log {record.name}", text)


def value_text(value: object) -> str:
    """An attribute value (or mapping, or sequence of them) as searchable text."""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return " ".join(f"{value_text(k)}={value_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(value_text(v) for v in value)
    return str(value)


def span_text(span: ReadableSpan) -> str:
    """Everything a span carries that an exporter would send, as text."""
    parts = [span.name, value_text(dict(span.attributes or {})), str(span.status.description)]
    parts += [f"{e.name} {value_text(dict(e.attributes or {}))}" for e in span.events]
    parts += [value_text(dict(link.attributes or {})) for link in span.links]
    parts.append(value_text(dict(span.resource.attributes)))
    return "\n".join(parts)


def _metric_texts(reader: InMemoryMetricReader) -> Iterable[str]:
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                yield f"{metric.name} {metric.description} {metric.unit}"
                for point in metric.data.data_points:
                    yield value_text(dict(point.attributes or {}))


def export_audit(engine: Engine) -> None:
    """Called by the test harness before a vault it started closes: the audit log, as
    the JSONL and CSV exports a compliance officer would take away."""
    if current is None or not current.seeded:
        return
    entries = list(audit.iter_query(engine))
    for name, write in (("jsonl", audit.write_jsonl), ("csv", audit.write_csv)):
        out = io.StringIO()
        write(entries, out)
        current.see(f"audit export ({name})", out.getvalue())


@dataclass
class Capture:
    """Everything the watch hooked up for one test; `close` unhooks it."""

    watch: PiiWatch
    handler: _LogCapture
    levels: dict[str, int]
    spans: InMemorySpanExporter | None = None
    metrics: InMemoryMetricReader | None = None
    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None
    handle: vault_telemetry.Telemetry | None = None

    def close(self) -> None:
        if self.spans is not None:
            for span in self.spans.get_finished_spans():
                self.watch.see("span", span_text(span))
        if self.metrics is not None:
            for text in _metric_texts(self.metrics):
                self.watch.see("metric", text)
        if self.handle is not None:
            self.handle.shutdown()
        logging.getLogger().removeHandler(self.handler)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


def start(watch: PiiWatch, *, telemetry: bool = True) -> Capture:
    """Hook up log capture, and span and metric capture unless `telemetry` is False (the
    test manages telemetry itself), for `watch`; making it `current` is the caller's."""
    handler = _LogCapture(watch)
    logging.getLogger().addHandler(handler)
    levels = {}
    for name in _OUR_LOGGERS:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
    capture = Capture(watch, handler, levels)
    if telemetry:
        empty = Resource.get_empty()
        capture.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider(resource=empty, shutdown_on_exit=False)
        tracer_provider.add_span_processor(SimpleSpanProcessor(capture.spans))
        capture.tracer_provider = tracer_provider
        capture.metrics = InMemoryMetricReader()
        capture.meter_provider = MeterProvider(
            metric_readers=[capture.metrics], resource=empty, shutdown_on_exit=False
        )
        capture.handle = vault_telemetry.install(tracer_provider, capture.meter_provider)
    return capture
