"""Bulk methods (`CallLimits.bulk_methods`) run `max_bulk_calls` at a time per process,
the rest queued holding no thread; a caller who leaves while queued still ends its call
through the `after` hooks (the audit stage), as cancelled.

A real grpc.aio server on a loopback port with the vault's interceptor in front of a
test service: the gate belongs to the interceptor, whatever the method does.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from vault.api.interceptors import RpcCall
from vault.api.limits import CallCancelledError, CallLimits
from vault.api.runner import VaultInterceptor

BULK = "/test.Bulk/Run"
OTHER = "/test.Bulk/Other"
CALLS = 4


class Inside:
    """How many handler runs are inside at once, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.runs = 0
        self.release = threading.Event()
        self.entered = threading.Event()

    def handler(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.now += 1
            self.runs += 1
            self.most = max(self.most, self.now)
        self.entered.set()
        try:
            self.release.wait(10)
        finally:
            with self._lock:
                self.now -= 1
        return request


class Ends:
    """A stage that records how each call ended (what the audit stage is given)."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, BaseException | None]] = []
        self.done = threading.Event()

    def before(self, rpc: RpcCall) -> None:
        return None

    def after(self, rpc: RpcCall, exc: BaseException | None) -> BaseException | None:
        self.ended.append((rpc.method, exc))
        self.done.set()
        return exc


@contextmanager
def serving(inside: Inside, ends: Ends, max_bulk_calls: int) -> Iterator[str]:
    """The interceptor (bulk method BULK) on a grpc.aio server in a thread of its own."""
    loop = asyncio.new_event_loop()
    pool = ThreadPoolExecutor(16)
    limits = CallLimits(bulk_methods=frozenset({BULK}), max_bulk_calls=max_bulk_calls)
    handlers = {
        "Run": grpc.unary_unary_rpc_method_handler(inside.handler),
        "Other": grpc.unary_unary_rpc_method_handler(inside.handler),
    }
    started = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        interceptor = VaultInterceptor([ends], pool, limits, ("/grpc.health",))
        server = grpc.aio.server(interceptors=[interceptor])
        service = grpc.method_handlers_generic_handler("test.Bulk", handlers)
        server.add_generic_rpc_handlers([service])
        state["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        state["server"] = server
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    assert started.wait(10)
    try:
        yield f"127.0.0.1:{state['port']}"
    finally:
        inside.release.set()
        asyncio.run_coroutine_threadsafe(state["server"].stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        pool.shutdown()


def _concurrently(address: str, method: str, count: int) -> list[bytes]:
    with grpc.insecure_channel(address) as channel, ThreadPoolExecutor(count) as clients:
        send = channel.unary_unary(method)
        futures = [clients.submit(send, b"x%d" % i, timeout=30) for i in range(count)]
        time.sleep(0.3)  # every call sent and waiting: inside, or queued at the gate
        return [f.result() for f in futures]


@pytest.mark.parametrize("max_bulk_calls", [1, 2])
def test_bulk_calls_run_at_most_max_bulk_calls_at_once(max_bulk_calls: int) -> None:
    inside, ends = Inside(), Ends()
    with serving(inside, ends, max_bulk_calls) as address:
        threading.Timer(1.0, inside.release.set).start()  # all of them held for a second
        answers = _concurrently(address, BULK, CALLS)
    assert sorted(answers) == sorted(b"x%d" % i for i in range(CALLS))
    assert inside.runs == CALLS
    assert inside.most == max_bulk_calls
    assert [exc for _, exc in ends.ended] == [None] * CALLS


def test_other_methods_are_not_gated() -> None:
    inside, ends = Inside(), Ends()
    with serving(inside, ends, 1) as address:
        threading.Timer(1.0, inside.release.set).start()
        _concurrently(address, OTHER, CALLS)
    assert inside.most == CALLS


def test_a_caller_who_leaves_while_queued_ends_its_call_through_the_after_hooks() -> None:
    inside, ends = Inside(), Ends()
    with serving(inside, ends, 1) as address, grpc.insecure_channel(address) as channel:
        send = channel.unary_unary(BULK)
        with ThreadPoolExecutor(1) as clients:
            holder = clients.submit(send, b"first", timeout=30)  # takes the one permit
            assert inside.entered.wait(10)
            with pytest.raises(grpc.RpcError) as queued:
                send(b"second", timeout=0.5)  # waits at the gate until its deadline
            assert queued.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert ends.done.wait(10)  # the queued call ended, the first is still inside
            assert [(m, type(e)) for m, e in ends.ended] == [(BULK, CallCancelledError)]
            inside.release.set()
            assert holder.result() == b"first"
    assert inside.runs == 1  # the queued call's handler never ran
