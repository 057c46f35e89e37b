"""Hostile requests to every RPC of every served service get a clean status, write
nothing when refused, echo nothing back and leave the server serving.

The RPCs are found by walking the service descriptors and each request message is
filled by walking its descriptor, so a new RPC or a new field is fuzzed without
anyone remembering to add it here."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import retention_pb2, retention_pb2_grpc, vault_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data import ADA, ADMIN
from tests.integration.harness import RunningVault, raw_stub
from tests.integration.rpc_table import CASES, SERVICES, Case, caller
from vault.api.interceptors import CREDENTIAL_EXCHANGE
from vault.fields.spec import FIELD_NAME

# The audit table leaves the retention service out; it is served, so it is fuzzed too.
RETENTION_CASES = {
    f"customervault.v1.RetentionService/{name}": Case(ADMIN, build, None)  # type: ignore[arg-type]
    for name, build in {
        "ListNotices": lambda f: retention_pb2.ListNoticesRequest(page_size=5),
        "AcknowledgeNotice": lambda f: retention_pb2.AcknowledgeNoticeRequest(notice_id="n"),
        "SetLegalHold": lambda f: retention_pb2.SetLegalHoldRequest(
            subject_id=f["subject"], reason="LIT-1"
        ),
        "ClearLegalHold": lambda f: retention_pb2.ClearLegalHoldRequest(
            subject_id=f["subject"], reason="LIT-1"
        ),
        "ListLegalHolds": lambda f: retention_pb2.ListLegalHoldsRequest(page_size=5),
        "GetRetentionReport": lambda f: retention_pb2.GetRetentionReportRequest(),
    }.items()
}
ALL_CASES = CASES | RETENTION_CASES
ALL_SERVICES = [
    *SERVICES,
    (retention_pb2, "RetentionService", retention_pb2_grpc.RetentionServiceStub),
]

HOSTILE_STRINGS = [
    "",
    "x" * 100_000,
    "\x00",
    "ab\x00cd",  # not a seeded name: free text reaches the audit log as written
    "\x01\x02\x1b[31m\x7f\r\n\t",
    "\u202etxt.exe\u202c",
    "a\u200bd\u200ca\u200d\ufeff",
    "\U0001f600\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "' OR 1=1 --",
    '"; DROP TABLE subjects; --',
    "*",
    "r.sub == p.sub || true",
    "a, b, c",
    "p, intern, *, *, *, *, 0, *, allow",
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\config",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=40),
    st.tuples(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=12)).map("".join),
)
# Keys a map is likely to be checked against, so hostile values get past the key check.
FIELD_NAMES = [*ADA, "city"]
KNOWN_KEYS = st.sampled_from(FIELD_NAMES)

INT_BOUNDS = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**62),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**62),
}
UNCHECKED = grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=256)
        return hostile_text
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        return st.sampled_from([999, -1, *(v.number for v in field.enum_type.values)])
    if kind in INT_BOUNDS:
        low, high = INT_BOUNDS[kind]
        return st.sampled_from([low, high, -1 if low < 0 else 0, 0, 1]) | st.integers(low, high)
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    return st.sampled_from([0.0, -1.0, 1e308])


def _fill(draw: st.DrawFn, message: Message, depth: int = 0) -> None:
    """Overwrite some fields of `message` with hostile values, recursing into messages."""
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        target = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            keys = st.one_of(KNOWN_KEYS, _scalar(field.message_type.fields_by_name["key"]))
            values = _scalar(field.message_type.fields_by_name["value"])
            target.clear()
            target.update(draw(st.dictionaries(keys, values, max_size=4)))
        elif field.message_type is not None:
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 3))):
                    _fill(draw, target.add(), depth + 1)
            else:
                _fill(draw, target, depth + 1)
        elif field.is_repeated:
            del target[:]
            target.extend(draw(st.lists(_scalar(field), max_size=4)))
        else:
            setattr(message, field.name, draw(_scalar(field)))


def _strings(message: Message) -> Iterator[str]:
    """Every string a message holds, map keys included."""
    for field, value in message.ListFields():
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            for key, item in value.items():
                yield key
                if isinstance(item, str):
                    yield item
        elif field.message_type is not None:
            items = value if field.is_repeated else [value]
            for item in items:
                yield from _strings(item)
        elif field.type == FieldDescriptor.TYPE_STRING:
            yield from value if field.is_repeated else [value]


def _methods(service: str) -> list[tuple[str, Any, Descriptor, bool]]:
    module, name, stub_type = next(s for s in ALL_SERVICES if s[1] == service)
    found = []
    for method in module.DESCRIPTOR.services_by_name[name].methods:
        full = f"{module.DESCRIPTOR.package}.{name}/{method.name}"
        found.append((full, stub_type, method.input_type, method.server_streaming))
    return found


def _count(vault: RunningVault, table: str) -> int:
    with vault.app.db.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _serving(channel: grpc.Channel) -> bool:
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def _actions_after(vault: RunningVault, count: int) -> list[str]:
    """The actions of the audit entries after the first `count`."""
    with vault.app.db.engine.connect() as conn:
        query = sa.text("SELECT action FROM audit_entries ORDER BY id LIMIT -1 OFFSET :n")
        return [row[0] for row in conn.execute(query, {"n": count})]


def _call(
    channel: grpc.Channel, stub_type: Any, method: str, request: Message, token: str, stream: bool
) -> tuple[grpc.StatusCode, bytes]:
    """Call one RPC; return its status and everything it sent back, as bytes."""
    rpc = getattr(stub_type(channel), method.split("/")[1])
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        answer = rpc(request, metadata=metadata, timeout=30)
        replies = list(answer) if stream else [answer]
    except grpc.RpcError as exc:
        sent = [(exc.details() or "").encode()]
        sent += [v if isinstance(v, bytes) else v.encode() for _, v in exc.trailing_metadata()]
        return exc.code(), b"\n".join(sent)
    return grpc.StatusCode.OK, b"\n".join(r.SerializeToString() for r in replies)


def test_every_served_rpc_is_fuzzed() -> None:
    walked = {m[0] for _, name, _ in ALL_SERVICES for m in _methods(name)}
    assert walked == set(ALL_CASES)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the 100k-char string
# The same hostile strings go into field values and into free text (a justification is
# recorded as written), so seeding them would flag the test's own reuse, not a leak.
@pytest.mark.no_pii_seeding
@pytest.mark.parametrize("service", [name for _, name, _ in ALL_SERVICES])
def test_hostile_requests_get_a_clean_status_and_change_nothing(
    sqlite_vault: RunningVault, request: pytest.FixtureRequest, service: str
) -> None:
    ids: dict[str, str] = request.getfixturevalue("prepared")
    methods = _methods(service)
    tokens = {
        m[0]: sqlite_vault.token(**(caller(ALL_CASES[m[0]].allowed_as, ids) or {})) for m in methods
    }
    channel = grpc.insecure_channel(sqlite_vault.address)

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        method, stub_type, input_type, stream = data.draw(st.sampled_from(methods))
        if data.draw(st.booleans()):
            request = ALL_CASES[method].request(ids)
        else:
            request = message_factory.GetMessageClass(input_type)()
        _fill(data.draw, request)
        known = {*_strings(_base(method)), *FIELD_NAMES}
        # A string shaped like a field name is schema and may be named in a violation.
        hostile = {s for s in _strings(request) if len(s) >= 8 and not FIELD_NAME.fullmatch(s)}
        hostile -= known
        subjects, entries = _count(sqlite_vault, "subjects"), _count(sqlite_vault, "audit_entries")
        code, sent = _call(channel, stub_type, method, request, tokens[method], stream)
        assert code not in UNCHECKED, f"{method} answered {code.name}"
        added = _actions_after(sqlite_vault, entries)
        if stream and code is grpc.StatusCode.OK:
            # an export's entry, then one per batch it sent (linking the batch's subjects)
            assert added and set(added) == {method.rsplit("/", 1)[1]}, f"{method}: {added}"
        else:
            assert len(added) == 1, f"{method} not audited once: {added}"
        if code is not grpc.StatusCode.OK:
            assert _count(sqlite_vault, "subjects") == subjects, f"{method} failed but wrote"
            for value in hostile:
                assert value.encode() not in sent, f"{method} echoed {value[:40]!r}"
        assert _serving(channel)

    def _base(method: str) -> Message:
        return ALL_CASES[method].request(ids)

    try:
        check()
    finally:
        channel.close()


def test_a_10000_item_batch_with_one_bad_item_writes_nothing(sqlite_vault: RunningVault) -> None:
    items = [vault_pb2.SubjectInput(fields=ADA) for _ in range(10_000)]
    bad = random.Random(9).randrange(len(items))
    items[bad] = vault_pb2.SubjectInput(fields=ADA | {"email": "' OR 1=1 --"})
    request = vault_pb2.BatchCreateSubjectsRequest(items=items, all_or_nothing=True)
    stub, channel = raw_stub(sqlite_vault)
    token = sqlite_vault.token()
    with channel, pytest.raises(grpc.RpcError) as refused:
        stub.BatchCreateSubjects(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=120
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"items[{bad}]" in str(refused.value.trailing_metadata())
    assert _count(sqlite_vault, "subjects") == _count(sqlite_vault, "blind_indexes") == 0


def _wire_string_field(input_type: Descriptor) -> FieldDescriptor | None:
    return next(
        (
            f
            for f in input_type.fields
            if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
        ),
        None,
    )


def _raw_call(
    channel: grpc.Channel, method: str, payload: bytes, token: str, stream: bool
) -> grpc.StatusCode:
    """Send `payload` as the request bytes, unparsed by the client."""
    path = "/" + method
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if stream:
            list(channel.unary_stream(path)(payload, metadata=metadata, timeout=30))
        else:
            channel.unary_unary(path)(payload, metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


UNKNOWN_FIELD = b"\xba\xf0\x04\x05hello"  # field 9999, length-delimited: no message has it


def test_malformed_wire_bytes_are_invalid_argument_and_audited_on_every_rpc(
    sqlite_vault: RunningVault, request: pytest.FixtureRequest
) -> None:
    """Bytes that are not a message (truncated, or a string field that is not UTF-8) get
    INVALID_ARGUMENT after authentication, and an audit entry, on every served RPC;
    unknown fields are ignored (the answer is the one the same request gets without)."""
    ids: dict[str, str] = request.getfixturevalue("prepared")
    channel = grpc.insecure_channel(sqlite_vault.address)
    try:
        for _, service, _ in ALL_SERVICES:
            for method, _, input_type, stream in _methods(service):
                token = sqlite_vault.token(**(caller(ALL_CASES[method].allowed_as, ids) or {}))
                payloads = [b"\x0a\x05ab"]  # field 1, 5 bytes long, 2 bytes sent
                text = _wire_string_field(input_type)
                if text is not None:
                    payloads.append(bytes([text.number << 3 | 2, 2]) + b"\xff\xfe")
                for payload in payloads:
                    entries = _count(sqlite_vault, "audit_entries")
                    code = _raw_call(channel, method, payload, token, stream)
                    assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, payload, code)
                    assert _count(sqlite_vault, "audit_entries") == entries + 1, method
                # Without credentials, garbage is refused as unauthenticated first (but
                # where the request carries its own credential, it is just malformed).
                code = _raw_call(channel, method, b"\x0a\x05ab", "", stream)
                expected = (
                    grpc.StatusCode.INVALID_ARGUMENT
                    if f"/{method}" in CREDENTIAL_EXCHANGE
                    else grpc.StatusCode.UNAUTHENTICATED
                )
                assert code is expected, method
                # The unknown field first: it must be answered as if it were not there
                # (the plain request after it may then meet a changed state: ABORTED).
                base = ALL_CASES[method].request(ids).SerializeToString()
                extended = _raw_call(channel, method, base + UNKNOWN_FIELD, token, stream)
                plain = _raw_call(channel, method, base, token, stream)
                assert extended not in UNCHECKED, method
                invalid = grpc.StatusCode.INVALID_ARGUMENT
                assert (extended is invalid) == (plain is invalid), (method, extended, plain)
        assert _serving(channel)
    finally:
        channel.close()
