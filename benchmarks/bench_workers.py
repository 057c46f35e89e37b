"""Masked gets against `customer-vault serve --workers 1` and `--workers 2`, same load.

For each worker count: a fresh data dir and SQLite database (or PostgreSQL with
`--database-url`), subjects batch-created, then CLIENTS client processes, each with a
connection of its own (SO_REUSEPORT spreads connections, not calls, over the workers)
and INFLIGHT masked gets (support view) outstanding, for SECONDS seconds after a warm-up.
Prints calls/s for each count and the ratio.

Where the client is the bottleneck, more workers cannot show: the client processes'
CPU is printed beside the figures (a client process near 100% of a core is saturated),
and so is the server's (all its processes: cores busy, and CPU per call). On a 2-core
machine the clients and the workers share the two cores, so the ratio is a floor of
what two workers give on dedicated cores; and where one worker process already keeps
more than one core busy (its event loop, plus the audit writer and grpc's threads),
two cannot double it: the ceiling is about (cores - clients' share) / (one worker's
cores).

    .venv/bin/python benchmarks/bench_workers.py [--workers 1 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import grpc
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from procs import vault_server
from vault_grpc import Created, _batch_requests, _get_request, issue_tokens
from workload import records


def _client(
    address: str, metadata: tuple[tuple[str, str], ...], ids: list[str], seconds: float,
    inflight: int, out: multiprocessing.Queue[tuple[int, float]],
) -> None:  # fmt: skip
    """One client process: masked gets on one connection; puts (calls, CPU seconds)."""
    created = Created(ids, list(range(len(ids))))
    requests = [_get_request(created, i) for i in range(len(ids))]

    async def run() -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            done = 0
            stop_at = 0.0

            async def worker(offset: int) -> None:
                nonlocal done
                i = offset
                while time.monotonic() < stop_at:
                    await stub.GetSubject(
                        requests[i % len(requests)], metadata=metadata, timeout=30
                    )
                    i += inflight
                    done += 1

            stop_at = time.monotonic() + 1.0  # warm-up
            await asyncio.gather(*(worker(n) for n in range(inflight)))
            done = 0
            stop_at = time.monotonic() + seconds
            await asyncio.gather(*(worker(n) for n in range(inflight)))
            return done

    cpu0 = time.process_time()
    calls = asyncio.run(run())
    out.put((calls, time.process_time() - cpu0))


def measure(
    workers: int, database_url: str | None, clients: int, inflight: int, seconds: float,
    subjects: int,
) -> tuple[float, list[float], float]:  # fmt: skip
    """calls/s over all clients, each client's CPU share of a core, and the server's
    CPU seconds over the clients' run (warm-up included)."""
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        data = Path(tmp) / "data"
        with vault_server(data, database_url, Path(tmp) / "vault.log", workers) as vault:
            tokens = issue_tokens(data)
            channel = grpc.insecure_channel(vault.address)
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            ids: list[str] = []
            for _, request in _batch_requests(records(subjects), range(subjects), 500):
                response = stub.BatchCreateSubjects(request, metadata=tokens.service, timeout=600)
                ids.extend(r.subject_id for r in response.results)
            channel.close()
            context = multiprocessing.get_context("spawn")
            out: multiprocessing.Queue[tuple[int, float]] = context.Queue()
            procs = [
                context.Process(
                    target=_client,
                    args=(vault.address, tokens.agent, ids, seconds, inflight, out),
                )
                for _ in range(clients)
            ]
            server_cpu = vault.tree_cpu_seconds()
            for proc in procs:
                proc.start()
            figures = [out.get(timeout=seconds + 120) for _ in procs]
            server_cpu = vault.tree_cpu_seconds() - server_cpu
            for proc in procs:
                proc.join()
    calls = sum(c for c, _ in figures)
    return calls / seconds, [cpu / (seconds + 1.0) for _, cpu in figures], server_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--inflight", type=int, default=4, help="calls in flight per client")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.clients} clients x {args.inflight} in flight")
    rates: dict[int, float] = {}
    for workers in args.workers:
        rate, client_cpu, server_cpu = measure(
            workers, args.database_url, args.clients, args.inflight, args.seconds, args.subjects
        )
        rates[workers] = rate
        shares = ", ".join(f"{c:.0%}" for c in client_cpu)
        # The server's CPU covers the clients' warm-up second too (their calls are not
        # counted there), so per call it reads a little high.
        busy = server_cpu / (args.seconds + 1.0)
        print(
            f"--workers {workers}: {rate:,.0f} masked gets/s (client CPU per process: "
            f"{shares}; server: {busy:.2f} cores busy)"
        )
    if 1 in rates:
        for workers, rate in rates.items():
            if workers != 1:
                print(f"--workers {workers} / --workers 1: {rate / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
