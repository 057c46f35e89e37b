"""Bulk methods (`CallLimits.bulk_methods`) run `max_bulk_calls` at a time per process,
the rest queued holding no thread, and each caller has at most
`max_bulk_calls_per_principal` of them in flight; a caller who leaves while queued (at
the bulk gate or the large-request gate) still ends its call through the `after` hooks
(the audit stage), as cancelled, and gives its place back; one still queued after
`max_queue_seconds` (a caller that set no deadline) is refused UNAVAILABLE the same way.

A real grpc.aio server on a loopback port with the vault's interceptor in front of a
test service, and a stage that names the caller from its metadata where the
authentication stage would verify a token: the gates belong to the interceptor, whatever
the method does and however the caller was authenticated.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from vault.api.interceptors import RpcCall
from vault.api.limits import CallCancelledError, CallLimits
from vault.api.runner import VaultInterceptor
from vault.context import CallContext
from vault.errors import PermissionDeniedError, ResourceExhaustedError, UnavailableError
from vault.principal import Principal

BULK = "/test.Bulk/Run"
OTHER = "/test.Bulk/Other"
CALLS = 4
SMALL = 1024  # max_request_bytes: larger requests take the large-request gate
WAIT = 10.0


class Inside:
    """Handler runs inside now, the most there ever were, and each run's request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.seen: list[bytes] = []
        self.release = threading.Event()

    def handler(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.now += 1
            self.seen.append(request)
            self.most = max(self.most, self.now)
        try:
            self.release.wait(WAIT)
        finally:
            with self._lock:
                self.now -= 1
        return request[:16]

    def until(self, inside: int) -> None:
        """Wait until `inside` runs are inside at once."""
        deadline = time.monotonic() + WAIT
        while self.now < inside:
            assert time.monotonic() < deadline, f"{self.now} inside, waited for {inside}"
            time.sleep(0.01)


class Caller:
    """Names the caller from `x-caller` (the authentication stage's place) and records
    how each call ended: what the audit stage is given."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, bytes | None, type[BaseException] | None]] = []
        self._lock = threading.Lock()

    def before(self, rpc: RpcCall) -> None:
        name = dict(rpc.context.invocation_metadata()).get("x-caller", "a")
        rpc.call.principal = Principal(str(name), "acme")

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None:
        request = rpc.request[:16] if isinstance(rpc.request, bytes) else None
        with self._lock:
            self.ended.append((rpc.method, request, None if exc is None else type(exc)))
        return exc

    def count(self, kind: type[BaseException] | None) -> int:
        with self._lock:
            return sum(1 for _, _, k in self.ended if k is kind)

    def until(self, kind: type[BaseException] | None, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.count(kind) < count:
            assert time.monotonic() < deadline, f"{self.ended}"
            time.sleep(0.01)


def _admit_bulk(call: CallContext) -> None:
    """The domain's question (may this caller batch-create at all?): not the `intruder`."""
    assert call.principal is not None
    if call.principal.id == "intruder":
        raise PermissionDeniedError("role may not create", rule="no rule allows")


@contextmanager
def serving(inside: Inside, caller: Caller, **limits: Any) -> Iterator[grpc.Channel]:
    """The interceptor (bulk method BULK) on a grpc.aio server in a thread of its own,
    and a channel to it."""
    loop = asyncio.new_event_loop()
    pool = ThreadPoolExecutor(16)
    settings = CallLimits(
        bulk_methods=frozenset({BULK}),
        max_request_bytes=SMALL,
        request_bytes_by_method={BULK: 1 << 20, OTHER: 1 << 20},
        **limits,
    )
    handlers = {
        "Run": grpc.unary_unary_rpc_method_handler(inside.handler),
        "Other": grpc.unary_unary_rpc_method_handler(inside.handler),
    }
    state: dict[str, Any] = {}

    async def start() -> None:
        interceptor = VaultInterceptor(
            [caller], pool, settings, ("/grpc.health",), admit_bulk=_admit_bulk
        )
        server = grpc.aio.server(interceptors=[interceptor])
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Bulk", handlers)]
        )
        state["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        state["server"] = server

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(WAIT)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{state['port']}") as channel:
            yield channel
    finally:
        inside.release.set()
        asyncio.run_coroutine_threadsafe(state["server"].stop(None), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
        pool.shutdown()


def _sender(channel: grpc.Channel, method: str) -> Callable[..., Any]:
    send = channel.unary_unary(method)  # bytes out and in as they are

    def call(payload: bytes, who: str = "a", timeout: float = 30) -> Any:
        return send(payload, metadata=(("x-caller", who),), timeout=timeout)

    call.future = lambda payload, who="a", timeout=30: send.future(  # type: ignore[attr-defined]
        payload, metadata=(("x-caller", who),), timeout=timeout
    )
    return call


def _requests(count: int, size: int = 16) -> list[bytes]:
    return [(b"r%02d" % i).ljust(size, b".") for i in range(count)]


@pytest.mark.parametrize("max_bulk_calls", [1, 2])
def test_bulk_calls_run_at_most_max_bulk_calls_at_once(max_bulk_calls: int) -> None:
    inside, caller = Inside(), Caller()
    with serving(inside, caller, max_bulk_calls=max_bulk_calls) as channel:
        send = _sender(channel, BULK)
        futures = [send.future(r, who=f"c{i}") for i, r in enumerate(_requests(CALLS))]
        inside.until(max_bulk_calls)
        time.sleep(0.2)  # room for a third to come in, were the gate open
        assert inside.now == max_bulk_calls
        inside.release.set()
        answers = [f.result() for f in futures]
    assert sorted(answers) == sorted(_requests(CALLS))
    assert len(inside.seen) == CALLS
    assert inside.most == max_bulk_calls
    assert caller.count(None) == CALLS


def test_other_methods_are_not_gated() -> None:
    inside, caller = Inside(), Caller()
    with serving(inside, caller) as channel:
        send = _sender(channel, OTHER)
        futures = [send.future(r) for r in _requests(CALLS)]
        inside.until(CALLS)  # all of them inside at once
        inside.release.set()
        assert [f.result() for f in futures] == _requests(CALLS)


def test_a_caller_with_its_batches_in_flight_is_refused_more_not_queued() -> None:
    inside, caller = Inside(), Caller()
    with serving(inside, caller, max_bulk_calls=1, max_bulk_calls_per_principal=2) as channel:
        send = _sender(channel, BULK)
        running, waiting = (send.future(r, who="greedy") for r in _requests(2))
        inside.until(1)
        with pytest.raises(grpc.RpcError) as third:
            send(b"third", who="greedy")
        assert third.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caller.count(ResourceExhaustedError) == 1
        other = send.future(b"other", who="someone-else")  # queued next, not refused
        time.sleep(0.2)
        assert not other.done()
        inside.release.set()
        assert other.result() == b"other"
        assert running.result() and waiting.result()
        assert send(b"again", who="greedy") == b"again"  # its slots came back
    assert b"third" not in inside.seen  # refused before its request was read


@pytest.mark.parametrize(
    ("method", "size", "limits"),
    [
        (BULK, 16, {"max_bulk_calls": 1}),
        (BULK, 4 * SMALL, {"max_bulk_calls": 1}),
        (OTHER, 4 * SMALL, {"max_large_requests": 1}),
    ],
    ids=["bulk gate", "bulk gate, large request", "large-request gate"],
)
@pytest.mark.parametrize("leaving", ["deadline", "cancel"])
def test_a_caller_who_leaves_while_queued_is_ended_through_the_after_hooks(
    method: str, size: int, limits: dict[str, int], leaving: str
) -> None:
    inside, caller = Inside(), Caller()
    first, second, third = _requests(3, size)
    with serving(inside, caller, **limits) as channel:
        send = _sender(channel, method)
        holder = send.future(first)  # takes the one permit
        inside.until(1)
        if leaving == "deadline":
            with pytest.raises(grpc.RpcError) as queued:
                send(second, timeout=0.5)  # waits at the gate until its deadline
            assert queued.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            queued_call = send.future(second)
            time.sleep(0.3)
            assert queued_call.cancel()
        caller.until(CallCancelledError, 1)  # ended while the first is still inside
        assert caller.ended == [(method, None, CallCancelledError)]
        inside.release.set()
        assert holder.result() == first[:16]
        assert send(third) == third[:16]  # the permit it waited for was not lost
    assert inside.seen == [first, third]  # the queued call's handler never ran


@pytest.mark.parametrize(
    ("method", "size", "limits"),
    [
        (BULK, 16, {"max_bulk_calls": 1}),
        (OTHER, 4 * SMALL, {"max_large_requests": 1}),
    ],
    ids=["bulk gate", "large-request gate"],
)
def test_a_call_queued_past_max_queue_seconds_is_refused_unavailable(
    method: str, size: int, limits: dict[str, int]
) -> None:
    """The caller set a deadline of 30 s; the server holds its request 0.5 s at most."""
    inside, caller = Inside(), Caller()
    first, second, third = _requests(3, size)
    with serving(inside, caller, max_queue_seconds=0.5, **limits) as channel:
        send = _sender(channel, method)
        holder = send.future(first)  # takes the one permit
        inside.until(1)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as queued:
            send(second, timeout=30)
        assert queued.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no turn within 0.5 s" in (queued.value.details() or "")
        assert time.monotonic() - started < 10
        assert caller.ended == [(method, None, UnavailableError)]  # through the hooks
        assert not holder.done()
        inside.release.set()
        assert holder.result() == first[:16]
        assert send(third) == third[:16]  # the permit it waited for was not lost
    assert inside.seen == [first, third]  # the refused call's handler never ran


def test_a_caller_who_may_not_make_the_call_takes_no_place_in_the_queue() -> None:
    inside, caller = Inside(), Caller()
    with serving(inside, caller, max_bulk_calls=1) as channel:
        send = _sender(channel, BULK)
        holder = send.future(b"first")  # takes the one permit
        inside.until(1)
        for n in range(6):  # more than its bulk slots: each refused at once, none queued
            with pytest.raises(grpc.RpcError) as refused:
                send(b"intrusion %d" % n, who="intruder", timeout=5)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert caller.count(PermissionDeniedError) == 6  # each ended through the hooks
        assert not holder.done()  # all while the first still held the gate
        inside.release.set()
        assert holder.result() == b"first"
    assert inside.seen == [b"first"]
