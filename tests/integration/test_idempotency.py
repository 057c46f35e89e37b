"""Idempotent retries (AIP-155) over real gRPC, on SQLite and PostgreSQL.

A mutating call with a `request_id` has one effect however often it is retried within
the window: a retry gets the first response, the same id with another request is
ALREADY_EXISTS (IDEMPOTENCY_KEY_REUSED), a failed call is not remembered, concurrent
duplicates make one effect, and a retry after the connection died once the effect had
committed (the server then restarted) gets the first response too.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import audit
from tests.data import ADA, GRACE
from tests.integration.consent_support import AGENT, MovableClock
from tests.integration.harness import RunningVault, running_vault, settings_for

SERVICE = {"principal": "order-service", "roles": ("service",)}


Auth = tuple[tuple[str, str], ...]


def _stub(
    vault: RunningVault, address: str | None = None
) -> tuple[vault_pb2_grpc.VaultServiceStub, grpc.Channel, Auth]:
    channel = grpc.insecure_channel(address or vault.address)
    return vault_pb2_grpc.VaultServiceStub(channel), channel, _auth(vault)


def _auth(vault: RunningVault, **who: object) -> Auth:
    return (("authorization", f"Bearer {vault.token(**{**SERVICE, **who})}"),)  # type: ignore[arg-type]


def _subjects(vault: RunningVault) -> int:
    with vault.app.db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM subjects")).scalar_one())


def _entries(vault: RunningVault, action: str) -> list[tuple[str, dict[str, str], str]]:
    """(result code, extra, server request id) of the action's audit entries, in order."""
    return [
        (e.entry.result_code, dict(e.entry.extra), e.entry.request_id)
        for e in audit.iter_query(vault.app.db.engine, action=action)
    ]


def _create(rid: str, fields: dict[str, str] | None = None) -> pb.CreateSubjectRequest:
    return pb.CreateSubjectRequest(fields=fields or ADA, request_id=rid)


def test_a_retry_returns_the_first_response_without_a_second_effect(vault: RunningVault) -> None:
    stub, channel, auth = _stub(vault)
    rid = str(uuid.uuid4())
    with channel:
        first = stub.CreateSubject(_create(rid), metadata=auth)
        again = stub.CreateSubject(_create(rid.upper()), metadata=auth)  # case-insensitive
    assert again == first
    assert _subjects(vault) == 1
    agent = vault.client(**AGENT)
    assert len(agent.find("email", ADA["email"], "support", "support")) == 1
    (ok, _, first_call), (replay_ok, extra, _) = _entries(vault, "CreateSubject")
    assert (ok, replay_ok) == ("OK", "OK")
    replay = {"idempotent_replay": "true", "first_request_id": first_call}
    assert replay.items() <= extra.items()


def test_the_same_id_with_another_request_is_refused(vault: RunningVault) -> None:
    stub, channel, auth = _stub(vault)
    rid = str(uuid.uuid4())
    with channel:
        stub.CreateSubject(_create(rid), metadata=auth)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateSubject(_create(rid, GRACE), metadata=auth)
    assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    status = rpc_status.from_call(refused.value)
    assert status is not None
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert (info.reason, info.domain) == ("IDEMPOTENCY_KEY_REUSED", "customervault.v1")
    assert _subjects(vault) == 1
    assert [code for code, _, _ in _entries(vault, "CreateSubject")] == ["OK", "ALREADY_EXISTS"]


def test_keys_belong_to_their_caller_and_method(vault: RunningVault) -> None:
    stub, channel, auth = _stub(vault)
    rid = str(uuid.uuid4())
    with channel:
        mine = stub.CreateSubject(_create(rid), metadata=auth)
        other = stub.CreateSubject(_create(rid), metadata=_auth(vault, principal="crm-service"))
        batch = stub.BatchCreateSubjects(
            pb.BatchCreateSubjectsRequest(items=[pb.SubjectInput(fields=GRACE)], request_id=rid),
            metadata=auth,
        )
    assert mine.subject.subject_id != other.subject.subject_id
    assert batch.created == 1
    assert _subjects(vault) == 3


def test_a_failed_call_is_not_remembered_and_a_bad_id_is_refused(vault: RunningVault) -> None:
    stub, channel, auth = _stub(vault)
    rid = str(uuid.uuid4())
    with channel:
        created = stub.CreateSubject(_create(str(uuid.uuid4())), metadata=auth).subject
        update = pb.UpdateSubjectRequest(
            subject_id=created.subject_id,
            expected_version=created.version,
            set_fields={"loyalty_tier": "gold"},
            request_id=rid,
        )
        stale = pb.UpdateSubjectRequest()
        stale.CopyFrom(update)
        stale.expected_version = 99
        with pytest.raises(grpc.RpcError) as conflict:
            stub.UpdateSubject(stale, metadata=auth)
        assert conflict.value.code() is grpc.StatusCode.ABORTED
        # Not remembered: the same id with the corrected request runs, once.
        first = stub.UpdateSubject(update, metadata=auth)
        again = stub.UpdateSubject(update, metadata=auth)
        with pytest.raises(grpc.RpcError) as bad:
            stub.CreateSubject(_create("not-a-uuid"), metadata=auth)
    assert first == again
    assert first.subject.version == created.version + 1
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _subjects(vault) == 1


def test_concurrent_calls_with_one_id_have_one_effect(vault: RunningVault) -> None:
    stub, channel, auth = _stub(vault)
    request = _create(str(uuid.uuid4()))
    start = threading.Barrier(6)

    def create(_: int) -> pb.CreateSubjectResponse:
        start.wait()
        response: pb.CreateSubjectResponse = stub.CreateSubject(request, metadata=auth)
        return response

    with channel, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(create, range(6)))
    assert len({a.subject.subject_id for a in answers}) == 1
    assert _subjects(vault) == 1
    extras = [extra for _, extra, _ in _entries(vault, "CreateSubject")]
    assert sum(1 for e in extras if e.get("idempotent_replay") == "true") == 5


def test_replays_of_an_erasure_and_a_retention_change(vault: RunningVault) -> None:
    stub, channel, auth = _stub(vault)
    with channel:
        subject = stub.CreateSubject(_create(""), metadata=auth).subject
        erase = pb.EraseSubjectRequest(
            subject_id=subject.subject_id, reason="TICKET-1", request_id=str(uuid.uuid4())
        )
        dpo = _auth(vault, principal="dpo-1", roles=("dpo",))
        first = stub.EraseSubject(erase, metadata=dpo)
        again = stub.EraseSubject(erase, metadata=dpo)
    assert first == again
    assert first.subject.state == pb.SUBJECT_STATE_ERASED
    codes = [(code, extra.get("noop")) for code, extra, _ in _entries(vault, "EraseSubject")]
    # The replay did not run the erasure again (a second erasure would say "noop").
    assert codes == [("OK", None), ("OK", None)]


def test_keys_are_forgotten_after_the_window(tmp_path: Path, database_url: str | None) -> None:
    clock = MovableClock()
    settings = settings_for(tmp_path / "data", database_url, idempotency_window_seconds=3600)
    with running_vault(settings, clock) as vault:
        stub, channel, _ = _stub(vault)
        rid = str(uuid.uuid4())
        with channel:  # a fresh token each time: the clock moves past their lifetime
            stub.CreateSubject(_create(rid), metadata=_auth(vault))
            clock.advance(timedelta(minutes=59))
            vault.app.idempotency.prune()
            stub.CreateSubject(_create(rid), metadata=_auth(vault))
            assert _subjects(vault) == 1
            clock.advance(timedelta(minutes=2))
            vault.app.idempotency.prune()
            stub.CreateSubject(_create(rid), metadata=_auth(vault))
        assert _subjects(vault) == 2


# --- a retry after the connection died between the commit and the response -------------


@contextmanager
def _cutting_proxy(target: str) -> Iterator[tuple[str, threading.Event]]:
    """A TCP proxy to `target` that forwards one connection until the server starts its
    response to a call (an HTTP/2 HEADERS frame on a stream), then cuts both sides: the
    server has committed and answered, the client never hears it. Yields its address
    and an event set when it cut."""
    listener = socket.create_server(("127.0.0.1", 0))
    cut = threading.Event()

    def relay(source: socket.socket, sink: socket.socket, frames: bool) -> None:
        buffered = b""
        try:
            while chunk := source.recv(65536):
                if not frames:
                    sink.sendall(chunk)
                    continue
                buffered += chunk
                while len(buffered) >= 9:
                    length = int.from_bytes(buffered[:3], "big")
                    if len(buffered) < 9 + length:
                        break
                    kind, stream = buffered[3], int.from_bytes(buffered[5:9], "big") & 0x7FFFFFFF
                    if kind == 0x1 and stream != 0:  # the response's HEADERS
                        cut.set()
                        return
                    sink.sendall(buffered[: 9 + length])
                    buffered = buffered[9 + length :]
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def accept() -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        host, port = target.rsplit(":", 1)
        server = socket.create_connection((host, int(port)))
        threading.Thread(target=relay, args=(client, server, False), daemon=True).start()
        threading.Thread(target=relay, args=(server, client, True), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", cut
    finally:
        listener.close()


def test_a_retry_after_a_lost_response_and_a_restart(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = settings_for(tmp_path / "data", database_url)
    request = _create(str(uuid.uuid4()))
    with running_vault(settings) as vault, _cutting_proxy(vault.address) as (proxied, cut):
        stub, channel, auth = _stub(vault, proxied)
        with channel, pytest.raises(grpc.RpcError) as lost:
            stub.CreateSubject(request, metadata=auth, wait_for_ready=False)
        assert cut.is_set()
        assert lost.value.code() is grpc.StatusCode.UNAVAILABLE
        assert _subjects(vault) == 1  # committed, though the caller never heard
    with running_vault(settings) as restarted:
        stub, channel, auth = _stub(restarted)
        with channel:
            retried = stub.CreateSubject(request, metadata=auth)
        assert _subjects(restarted) == 1
        agent = restarted.client(**AGENT)
        [found] = agent.find("email", ADA["email"], "support", "support")
        assert found.meta.subject_id == retried.subject.subject_id
