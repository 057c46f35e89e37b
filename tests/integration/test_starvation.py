"""No client, authenticated or not, can starve the server (issue 20, item 1).

More idle streams than the server has worker threads are opened (server-reflection
streams without credentials, ExportView streams that stop reading, unary calls whose
request never comes) and health and GetSubject must still answer, each within a
one-second deadline on the call. Streams beyond the caps are refused
RESOURCE_EXHAUSTED (audited when the caller is known); a stream that stops reading
and a request that never comes are cut after the idle timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.data import ADA
from tests.integration.harness import RunningVault, running_vault, settings_for

WORKERS = 8
PRINCIPALS = 6
PER_PRINCIPAL = 3
PUBLIC = 6
SUBJECTS = 150
# A caller that does not read: its HTTP/2 window stays at 64 KiB (no BDP probing), far
# less than an export of SUBJECTS, so the server's writes to it block.
NOT_READING = [("grpc.http2.bdp_probe", 0)]


def _dpo(vault: RunningVault, n: int) -> tuple[tuple[str, str]]:
    token = vault.token(principal=f"dpo-{n}", roles=("dpo",), clearance="3")
    return (("authorization", f"Bearer {token}"),)


def _fields(i: int) -> dict[str, str]:
    return {**ADA, "email": f"ada.{i}@example.com", "notes": "n" * 1900}


@pytest.fixture
def starved(tmp_path: Path) -> Iterator[RunningVault]:
    settings = settings_for(
        tmp_path / "data",
        None,
        max_workers=WORKERS,
        max_streams=64,
        max_streams_per_principal=PER_PRINCIPAL,
        max_public_streams=PUBLIC,
        stream_idle_timeout_seconds=600,
    )
    with running_vault(settings) as vault:
        created = vault.client(roles=("service",)).batch_create(
            [_fields(i) for i in range(SUBJECTS)]
        )
        assert created.created == SUBJECTS
        yield vault


class _Idle:
    """Request messages that never come, until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def requests(self) -> Iterator[reflection_pb2.ServerReflectionRequest]:
        self.release.wait()
        return
        yield  # a generator that yields nothing


def _answers_within_a_second(vault: RunningVault, subject_id: str, times: int = 1) -> list[float]:
    """Health and GetSubject, `times` each, every call with a one-second deadline; how
    long each pair took (the first on a new connection)."""
    took = []
    with grpc.insecure_channel(vault.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        vault_stub = vault_pb2_grpc.VaultServiceStub(channel)
        get = pb.GetSubjectRequest(
            subject_id=subject_id,
            view="full",
            purpose="data_subject_request",
            justification="DSR-1",
        )
        for _ in range(times):
            started = time.monotonic()
            answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            got = vault_stub.GetSubject(get, metadata=_dpo(vault, 99), timeout=1.0)
            assert got.subject.meta.subject_id == subject_id
            took.append(time.monotonic() - started)
    return took


def _first_subject(vault: RunningVault) -> str:
    with vault.app.db.engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT min(id) FROM subjects")).scalar_one())


@contextmanager
def _channels(count: int, address: str) -> Iterator[list[grpc.Channel]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(grpc.insecure_channel(address, options=NOT_READING))
            for _ in range(count)
        ]


def _wait_for_reply(call: grpc.Future) -> grpc.StatusCode | None:
    """The code the call ended with, or None while it is still open (after a short look)."""
    try:
        call.result(timeout=0.2)  # type: ignore[call-arg]
    except grpc.FutureTimeoutError:
        return None
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_idle_streams_beyond_the_threads_do_not_starve_health_or_calls(
    starved: RunningVault,
) -> None:
    vault = starved
    subject_id = _first_subject(vault)
    idle = _Idle()
    reflections, exports = [], []
    try:
        with _channels(8, vault.address) as channels:
            # Twice the public cap of unauthenticated reflection streams, then every
            # principal's quota of ExportView streams plus one, none of them read.
            for i in range(2 * PUBLIC):
                stub = reflection_pb2_grpc.ServerReflectionStub(channels[i % 8])
                reflections.append(stub.ServerReflectionInfo(idle.requests()))
            for n in range(PRINCIPALS):
                for i in range(PER_PRINCIPAL + 1):
                    stub = vault_pb2_grpc.VaultServiceStub(channels[(n + i) % 8])
                    exports.append(
                        stub.ExportView(
                            pb.ExportViewRequest(
                                view="full", purpose="data_subject_request", justification="DSR-1"
                            ),
                            metadata=_dpo(vault, n),
                        )
                    )
            accepted = PUBLIC + PRINCIPALS * PER_PRINCIPAL
            assert accepted > WORKERS
            _wait_until_open(vault, accepted)

            took = _answers_within_a_second(vault, subject_id, times=20)
            print(
                f"\nwith {accepted} idle streams open on {WORKERS} workers, health + GetSubject:"
                f" first {took[0] * 1000:.0f} ms, then median"
                f" {sorted(took[1:])[9] * 1000:.0f} ms, max {max(took[1:]) * 1000:.0f} ms"
            )

            refused = [c for c in reflections + exports if _wait_for_reply(c) is not None]
            codes = {_wait_for_reply(c) for c in refused}
            assert codes == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert len(refused) == PUBLIC + PRINCIPALS
            assert "streams" in (refused[0].details() or "")
    finally:
        idle.release.set()
        for call in reflections + exports:
            call.cancel()
    with vault.app.db.engine.connect() as conn:
        audited = conn.execute(
            sa.text(
                "SELECT count(*) FROM audit_entries WHERE result_code = 'RESOURCE_EXHAUSTED'"
                " AND action = 'ExportView' AND decision = 'deny'"
            )
        ).scalar_one()
    assert audited == PRINCIPALS


def _wait_until_open(vault: RunningVault, count: int) -> None:
    slots = vault.server.interceptor.slots
    deadline = time.monotonic() + 30
    while slots.open < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slots.open == count


def test_requests_that_never_come_hold_no_thread_and_are_cut(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", None, max_workers=2, stream_idle_timeout_seconds=3)
    with running_vault(settings) as vault:
        subject_id = vault.client().create(ADA).subject_id
        idle = _Idle()
        with grpc.insecure_channel(vault.address) as channel:
            # GetSubject sent as a stream whose one message never comes: the caller is
            # authenticated, then the server waits for the request, on no thread.
            never = channel.stream_unary(
                "/customervault.v1.VaultService/GetSubject",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=pb.GetSubjectResponse.FromString,
            )
            waiting = [never.future(idle.requests(), metadata=_dpo(vault, 1)) for _ in range(8)]
            try:
                _answers_within_a_second(vault, subject_id)
                codes = [_code(call, 30) for call in waiting]
            finally:
                idle.release.set()
        assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 8


def _code(call: grpc.Future, timeout: float) -> grpc.StatusCode:
    try:
        call.result(timeout=timeout)  # type: ignore[call-arg]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_a_stream_that_stops_reading_is_cut_and_frees_its_slot(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path / "data",
        None,
        max_streams_per_principal=1,
        stream_idle_timeout_seconds=2,
    )
    with running_vault(settings) as vault:
        vault.client().batch_create([_fields(i) for i in range(SUBJECTS)])
        with grpc.insecure_channel(vault.address, options=NOT_READING) as channel:
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            request = pb.ExportViewRequest(
                view="full", purpose="data_subject_request", justification="DSR-1"
            )
            stalled = stub.ExportView(request, metadata=_dpo(vault, 1))
            next(stalled)  # the stream is open; then its caller stops reading
            with pytest.raises(grpc.RpcError) as second:
                next(stub.ExportView(request, metadata=_dpo(vault, 1)))
            assert second.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            slots = vault.server.interceptor.slots
            deadline = time.monotonic() + 30
            while slots.open and time.monotonic() < deadline:
                time.sleep(0.1)
            assert slots.open == 0, "the stalled stream was not cut"
            with pytest.raises(grpc.RpcError) as cut:
                for _ in stalled:
                    pass
            assert cut.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert "not read" in (cut.value.details() or "")
            # Its slot is free again.
            assert sum(1 for _ in stub.ExportView(request, metadata=_dpo(vault, 1))) == SUBJECTS


@pytest.mark.postgres
def test_reflection_is_off_outside_the_embedded_default(tmp_path: Path, postgres_url: str) -> None:
    with running_vault(settings_for(tmp_path / "data", postgres_url)) as vault:
        assert _reflect(vault, ()) is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.postgres
def test_reflection_enabled_outside_the_embedded_default_needs_credentials(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = settings_for(tmp_path / "data", postgres_url, reflection=True)
    with running_vault(settings) as vault:
        assert _reflect(vault, ()) is grpc.StatusCode.UNAUTHENTICATED
        assert _reflect(vault, _dpo(vault, 1)) is grpc.StatusCode.OK
        with vault.app.db.engine.connect() as conn:
            audited = conn.execute(
                sa.text(
                    "SELECT result_code, decision FROM audit_entries"
                    " WHERE action = 'ServerReflectionInfo' ORDER BY id"
                )
            ).all()
        assert [tuple(row) for row in audited] == [("UNAUTHENTICATED", "deny"), ("OK", "allow")]


def _reflect(vault: RunningVault, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    with grpc.insecure_channel(vault.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            answers = list(stub.ServerReflectionInfo(iter([ask]), metadata=metadata, timeout=10))
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
        names = {s.name for s in answers[0].list_services_response.service}
        assert "customervault.v1.VaultService" in names
        return grpc.StatusCode.OK


def test_a_stream_its_caller_cancels_frees_its_slot_and_stays_audited(
    starved: RunningVault, caplog: pytest.LogCaptureFixture
) -> None:
    vault = starved
    with grpc.insecure_channel(vault.address, options=NOT_READING) as channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        request = pb.ExportViewRequest(
            view="full", purpose="data_subject_request", justification="DSR-1"
        )
        export = stub.ExportView(request, metadata=_dpo(vault, 1))
        next(export)
        export.cancel()
        slots = vault.server.interceptor.slots
        deadline = time.monotonic() + 30
        while slots.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slots.open == 0
        # The same caller's next export runs to the end.
        assert sum(1 for _ in stub.ExportView(request, metadata=_dpo(vault, 1))) == SUBJECTS
    with vault.app.db.engine.connect() as conn:
        exports = conn.execute(
            sa.text("SELECT result_code FROM audit_entries WHERE action = 'ExportView'")
        ).all()
    # Both exports audited (an entry per batch of subjects), neither as failed.
    assert len(exports) >= 2
    assert {code for (code,) in exports} == {"OK"}
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def _until(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_a_cut_stream_is_gone_with_its_connection_at_the_maximum_age(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path / "data",
        None,
        stream_idle_timeout_seconds=1,
        connection_max_age_seconds=2,
        connection_age_grace_seconds=1,
    )
    with running_vault(settings) as vault:
        vault.client().batch_create([_fields(i) for i in range(SUBJECTS)])
        slots = vault.server.interceptor.slots
        with grpc.insecure_channel(vault.address, options=NOT_READING) as channel:
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            request = pb.ExportViewRequest(
                view="full", purpose="data_subject_request", justification="DSR-1"
            )
            stalled = stub.ExportView(request, metadata=_dpo(vault, 1))
            next(stalled)
            # Cut for not reading: its stream slot is free at once...
            assert _until(lambda: slots.open == 0)
            # ...and the call itself ends when the connection reaches its age and grace.
            assert _until(lambda: slots.calls == 0), "the cut call outlived its connection"


def test_a_stream_ends_at_its_maximum_age(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", None, stream_max_age_seconds=1)
    with running_vault(settings) as vault:
        vault.client().batch_create([_fields(i) for i in range(SUBJECTS)])
        with grpc.insecure_channel(vault.address, options=NOT_READING) as channel:
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            request = pb.ExportViewRequest(
                view="full", purpose="data_subject_request", justification="DSR-1"
            )
            received: list[pb.SubjectView] = []
            with pytest.raises(grpc.RpcError) as ended:
                _read_slowly(stub.ExportView(request, metadata=_dpo(vault, 1)), received)
            assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert "maximum age" in (ended.value.details() or "")
            assert 0 < len(received) < SUBJECTS


def _read_slowly(
    stream: Iterator[pb.ExportViewResponse], into: list[pb.ExportViewResponse]
) -> None:
    """A slow reader: 150 subjects at 20 a second take longer than the maximum age."""
    for item in stream:
        into.append(item)
        time.sleep(0.05)
