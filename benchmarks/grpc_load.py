"""Drive unary calls sequentially (one at a time) or with N in flight, and time them.

The same drivers run the echo baseline and the vault, so the ratio compares servers,
not clients. Sequential calls use the sync stub; concurrent calls use grpc.aio with
N tasks on one event loop, which keeps the client to one thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from workload import Rate, percentile, rate_of

SyncCall = Callable[[int], object]
AsyncCallFactory = Callable[[grpc.aio.Channel], Callable[[int], Awaitable[object]]]


@dataclass(frozen=True)
class LoadResult:
    """Calls per second over repetitions, and latency percentiles in milliseconds."""

    rate: Rate
    p50_ms: float
    p99_ms: float
    calls: int
    inflight: int
    warmup_calls: int

    def as_dict(self) -> dict[str, object]:
        return {
            "calls_per_second": self.rate.as_dict(),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "calls_per_repetition": self.calls,
            "inflight": self.inflight,
        }


def _summarize(
    rates: list[float], latencies: list[list[float]], calls: int, inflight: int, warmup: int
) -> LoadResult:
    # Percentiles: the median of the repetitions' percentiles, robust to one noisy run.
    p50 = sorted(percentile(lat, 50) for lat in latencies)[len(latencies) // 2]
    p99 = sorted(percentile(lat, 99) for lat in latencies)[len(latencies) // 2]
    return LoadResult(rate_of(rates), p50 * 1000, p99 * 1000, calls, inflight, warmup)


def sequential(call: SyncCall, *, calls: int, repetitions: int, warmup: int = 200) -> LoadResult:
    """`repetitions` runs of `calls` calls, one after another."""
    for i in range(warmup):
        call(-1 - i)
    rates, latencies = [], []
    for rep in range(repetitions):
        lat = []
        started = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter()
            call(rep * calls + i)
            lat.append(time.perf_counter() - t0)
        rates.append(calls / (time.perf_counter() - started))
        latencies.append(lat)
    return _summarize(rates, latencies, calls, 1, warmup)


async def _concurrent_rep(
    invoke: Callable[[int], Awaitable[object]], offset: int, calls: int, inflight: int
) -> tuple[float, list[float]]:
    counter = iter(range(calls))
    lat: list[float] = []

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await invoke(offset + i)
            lat.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return calls / (time.perf_counter() - started), lat


async def _concurrent(
    address: str, factory: AsyncCallFactory, calls: int, repetitions: int, inflight: int
) -> LoadResult:
    async with grpc.aio.insecure_channel(address) as channel:
        invoke = factory(channel)
        warmup = min(calls, 400)
        await _concurrent_rep(invoke, -10 * calls, warmup, inflight)
        rates, latencies = [], []
        for rep in range(repetitions):
            rate, lat = await _concurrent_rep(invoke, rep * calls, calls, inflight)
            rates.append(rate)
            latencies.append(lat)
    return _summarize(rates, latencies, calls, inflight, warmup)


def concurrent(
    address: str,
    factory: AsyncCallFactory,
    *,
    calls: int,
    repetitions: int,
    inflight: int = 16,
) -> LoadResult:
    """`repetitions` runs of `calls` calls with `inflight` outstanding at any time."""
    return asyncio.run(_concurrent(address, factory, calls, repetitions, inflight))
