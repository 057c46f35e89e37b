"""Masked gets and batch creates against `customer-vault serve --workers 1` and `--workers 2`,
the same load on each.

For each worker count: a fresh data dir and SQLite database (or PostgreSQL with
`--database-url`), subjects batch-created, then CLIENTS client processes, each with
CONNECTIONS connections of its own and INFLIGHT masked gets (support view) outstanding
on each, for SECONDS seconds after a warm-up. SO_REUSEPORT spreads connections, not
calls, over the workers: with a handful of connections the kernel's hash can leave a
worker idle, so the server's CPU split over its processes is printed too. Prints calls/s
for each count and the ratio.

Where the client is the bottleneck, more workers cannot show: the client processes'
CPU is printed beside the figures (a client process near 100% of a core is saturated),
and so is the server's (all its processes: cores busy, and CPU per call). On a 2-core
machine the clients and the workers share the two cores, so the ratio is a floor of
what two workers give on dedicated cores; and where one worker process already keeps
more than one core busy (its event loop, plus the audit writer and grpc's threads),
two cannot double it: the ceiling is about (cores - clients' share) / (one worker's
cores).

With h2load on the PATH (Debian's nghttp2-client), the load comes from it instead of
the Python client processes (`--client h2load`, the default then): one C process sending
the same GetSubject over CONNECTIONS x CLIENTS connections, INFLIGHT streams each, which
takes a few percent of one core where the Python clients take a third of the machine
(its CPU is printed the same way). h2load sees HTTP/2 responses, not gRPC statuses, so
the calls counted are the successful masked gets the vault's audit log recorded. Its
command line carries the (development) bearer token, visible to `ps` while it runs.

Batch create (after the masked gets, on the same server; `--batch-clients 0` skips it):
BATCH_CLIENTS client processes (one caller, within its `VAULT_MAX_BATCHES_PER_CALLER`),
each over two connections of its own in turn, send BATCHES BatchCreateSubjects calls of
BATCH_SIZE distinct subjects in all, each client one after another, taking the next from
a shared queue (so a worker that SO_REUSEPORT gave fewer connections is not left idle
while another works through its clients' share). The requests are serialized before
the clock starts and sent as bytes, so a client's CPU is the wire and the response's
parsing, not building protobufs. The figure is the subjects created over the span from
the first client's start to the last one's end, with the server's CPU per subject (all
its processes) beside it. This is
the measurement DESIGN's batch-create target names: `--workers` at the machine's cores.

    .venv/bin/python benchmarks/bench_workers.py [--workers 1 2] [--seconds 8]
        [--client h2load|python] [--batch-clients 4] [--batch-size 2500] [--batches 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from procs import vault_server
from vault_grpc import Created, _batch_requests, _get_request, issue_tokens
from workload import records


def _client(
    address: str, metadata: tuple[tuple[str, str], ...], ids: list[str], seconds: float,
    inflight: int, connections: int, out: multiprocessing.Queue[tuple[int, float]],
) -> None:  # fmt: skip
    """One client process: masked gets over `connections` connections of its own, `inflight`
    in flight on each; puts (calls, CPU seconds)."""
    created = Created(ids, list(range(len(ids))))
    requests = [_get_request(created, i) for i in range(len(ids))]
    # Each channel its own TCP connection (grpc would otherwise share one per target):
    # SO_REUSEPORT spreads connections, not calls, over the workers, so a run with few
    # connections can leave a worker idle by the luck of the hash.
    options = [("grpc.use_local_subchannel_pool", 1)]

    async def run() -> int:
        channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(connections)]
        stubs = [vault_pb2_grpc.VaultServiceStub(channel) for channel in channels]
        done = 0
        stop_at = 0.0

        async def worker(offset: int) -> None:
            nonlocal done
            stub = stubs[offset % connections]
            i = offset
            while time.monotonic() < stop_at:
                await stub.GetSubject(requests[i % len(requests)], metadata=metadata, timeout=30)
                i += inflight * connections
                done += 1

        try:
            stop_at = time.monotonic() + 1.0  # warm-up
            await asyncio.gather(*(worker(n) for n in range(inflight * connections)))
            done = 0
            stop_at = time.monotonic() + seconds
            await asyncio.gather(*(worker(n) for n in range(inflight * connections)))
            return done
        finally:
            for channel in channels:
                await channel.close()

    cpu0 = time.process_time()
    calls = asyncio.run(run())
    out.put((calls, time.process_time() - cpu0))


def _worker_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each process serving calls: the workers (or the one process)."""
    import psutil

    root = psutil.Process(pid)
    procs = root.children() or [root]
    return {p.pid: p.cpu_times().user + p.cpu_times().system for p in procs}


def _h2load(
    address: str, metadata: tuple[tuple[str, str], ...], subject_id: str, folder: Path,
    seconds: float, connections: int, inflight: int, database_url: str,
) -> tuple[int, float]:  # fmt: skip
    """h2load sending one masked get for `seconds` after a second of warm-up: the calls
    the audit log recorded as allowed and answered meanwhile, and h2load's CPU seconds."""
    request = _get_request(Created([subject_id], [0]), 0).SerializeToString()
    body = folder / "get-subject.bin"
    body.write_bytes(b"\x00" + struct.pack(">I", len(request)) + request)  # a gRPC frame
    headers = ["content-type: application/grpc", "te: trailers"]
    headers += [f"{key}: {value}" for key, value in metadata]
    argv = ["h2load", "-c", str(connections), "-m", str(inflight), "-d", str(body)]
    for header in headers:
        argv += ["-H", header]
    argv.append(f"http://{address}/customervault.v1.VaultService/GetSubject")
    answered = sa.text(
        "SELECT count(*) FROM audit_entries WHERE action = 'GetSubject' AND result_code = 'OK'"
    )
    if database_url.startswith("postgresql://"):  # psycopg 3, the vault's driver
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    audited = sa.create_engine(database_url, poolclass=sa.NullPool)
    with audited.connect() as conn:
        before = conn.execute(answered).scalar_one()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    duration = ["-D", f"{round(seconds * 1000)}ms", "--warm-up-time", "1s"]
    done = subprocess.run(
        [*argv[:1], *duration, *argv[1:]], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:  # not the argv: it holds a bearer token
        raise RuntimeError(f"h2load exited {done.returncode}: {done.stderr[-400:]}")
    after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.5)  # the last answers' audit entries are committed before they leave
    with audited.connect() as conn:
        calls = conn.execute(answered).scalar_one() - before
    audited.dispose()
    sent = re.search(r"requests: \d+ total, \d+ started, (\d+) done", done.stdout)
    if sent is None or int(sent.group(1)) == 0:
        raise RuntimeError(f"h2load sent nothing: {done.stdout[-400:]}")
    spent = (after_cpu.ru_utime - cpu.ru_utime) + (after_cpu.ru_stime - cpu.ru_stime)
    # The warm-up's calls are audited too: count the measured seconds' share of them.
    return round(calls * seconds / (seconds + 1.0)), spent


BATCH_METHOD = "/customervault.v1.VaultService/BatchCreateSubjects"


def _batch_client(
    address: str, metadata: tuple[tuple[str, str], ...], warm_up: bytes, work: Any,
    start: Any, out: multiprocessing.Queue[tuple[int, float, float, float]],
) -> None:  # fmt: skip
    """One batch-create client: a warm-up call, then (after `start` is set) requests
    taken from `work` until its None, one after another, in turn over two connections of
    its own (SO_REUSEPORT spreads connections: with two each, four clients' eight seldom
    all land on one worker); puts (subjects created, first send and last answer on the
    system's monotonic clock, CPU seconds of the timed part)."""
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", 2**26)]
    channels = [grpc.insecure_channel(address, options=options) for _ in range(2)]
    calls = [
        channel.unary_unary(
            BATCH_METHOD, response_deserializer=pb.BatchCreateSubjectsResponse.FromString
        )  # bytes out as they are: serialized before the clock
        for channel in channels
    ]

    def send(n: int, payload: bytes) -> int:
        response = calls[n % 2](payload, metadata=metadata, timeout=600)
        if response.failed:
            raise RuntimeError(f"{response.failed} items failed validation")
        return len(response.results)

    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=30)
    send(0, warm_up)
    start.wait()
    cpu = time.process_time()
    began = time.monotonic()
    created = sum(send(n, payload) for n, payload in enumerate(iter(work.get, None)))
    ended = time.monotonic()
    out.put((created, began, ended, time.process_time() - cpu))
    for channel in channels:
        channel.close()


def _batch_load(
    address: str, metadata: tuple[tuple[str, str], ...], clients: int, batch: int,
    batches: int, first: int, vault: Any,
) -> dict[str, Any]:  # fmt: skip
    """`clients` batch-create clients (`_batch_client`) taking `batches` requests of
    `batch` distinct subjects each (numbered from `first`) from one queue: a client whose
    connection landed on a less busy worker takes more, as SO_REUSEPORT spreads
    connections, not calls. Subjects/s over the whole span, the server's CPU per
    subject, the clients' cores."""
    total = batch * batches
    warm_ups = [
        _batch_requests(records(100, start=first + c * 100), range(100), 100)[0][1]
        for c in range(clients)
    ]
    numbers = range(first + clients * 100, first + clients * 100 + total)
    timed = _batch_requests(records(total, start=numbers.start), range(total), batch)
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[int, float, float, float]] = context.Queue()
    work: Any = context.Queue()
    start = context.Event()
    procs = [
        context.Process(
            target=_batch_client,
            args=(address, metadata, warm.SerializeToString(), work, start, out),
        )
        for warm in warm_ups
    ]
    for proc in procs:
        proc.start()
    for _, request in timed:
        work.put(request.SerializeToString())
    for _ in procs:
        work.put(None)
    time.sleep(2.0)  # the clients' interpreters up and their warm-up calls answered
    server_cpu = vault.tree_cpu_seconds()
    start.set()
    figures = [out.get(timeout=900) for _ in procs]
    server_cpu = vault.tree_cpu_seconds() - server_cpu
    for proc in procs:
        proc.join()
    created = sum(f[0] for f in figures)
    if created != total:
        raise RuntimeError(f"{created} subjects created of {total}")
    span = max(f[2] for f in figures) - min(f[1] for f in figures)
    return {
        "batch_size": batch,
        "subjects_per_second": round(created / span, 1),
        "subjects": created,
        "server_cpu_us_per_subject": round(server_cpu / created * 1e6, 1),
        "client_cores": [round(f[3] / (f[2] - f[1]), 3) for f in figures],
    }


def measure(
    workers: int, database_url: str | None, clients: int, inflight: int, connections: int,
    seconds: float, subjects: int, client: str = "python",
    batch: tuple[int, int, int] | None = None,
) -> tuple[float, list[float], float, list[float], dict[str, Any] | None]:  # fmt: skip
    """calls/s over all clients, each client's CPU share of a core, the server's CPU
    seconds over the clients' run (warm-up included), each worker's share of it, and,
    given `batch` (clients, batch size, batches each), the batch-create figures
    (`_batch_load`) measured on the same server after the masked gets."""
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
            server_cpu = vault.tree_cpu_seconds()
            per_worker = _worker_cpu(vault.pid)
            if client == "h2load":
                url = database_url or f"sqlite:///{data / 'vault.db'}"
                figures = [
                    _h2load(
                        vault.address, tokens.agent, ids[0], Path(tmp), seconds,
                        clients * connections, inflight, url,
                    )
                ]  # fmt: skip
            else:
                figures = _python_clients(
                    vault.address, tokens.agent, ids, seconds, inflight, connections, clients
                )
            server_cpu = vault.tree_cpu_seconds() - server_cpu
            after = _worker_cpu(vault.pid)
            spent = [after[pid] - per_worker.get(pid, 0.0) for pid in after]
            shares = [cpu / sum(spent) for cpu in spent] if sum(spent) > 0 else []
            batches = (
                _batch_load(vault.address, tokens.service, *batch, subjects, vault)
                if batch
                else None
            )
    calls = sum(c for c, _ in figures)
    client_cpu = [cpu / (seconds + 1.0) for _, cpu in figures]
    return calls / seconds, client_cpu, server_cpu, shares, batches


def _python_clients(
    address: str, metadata: tuple[tuple[str, str], ...], ids: list[str], seconds: float,
    inflight: int, connections: int, clients: int,
) -> list[tuple[int, float]]:  # fmt: skip
    """(calls, CPU seconds) of each of `clients` client processes (`_client`)."""
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[int, float]] = context.Queue()
    procs = [
        context.Process(
            target=_client, args=(address, metadata, ids, seconds, inflight, connections, out)
        )
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    figures = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--connections", type=int, default=4, help="connections per client process")
    parser.add_argument("--inflight", type=int, default=1, help="calls in flight per connection")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument("--batch-clients", type=int, default=4,
                        help="batch-create client processes (0: no batch create)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=2500, help="subjects per call")
    parser.add_argument("--batches", type=int, default=16, help="calls, over all the clients")
    parser.add_argument(
        "--client",
        choices=("h2load", "python"),
        default="h2load" if shutil.which("h2load") else "python",
        help="the load: h2load (one C process) or Python client processes",
    )
    args = parser.parse_args()
    if args.client == "h2load":
        print(
            f"{os.cpu_count()} CPUs; h2load: {args.clients * args.connections} connections x "
            f"{args.inflight} in flight"
        )
    else:
        print(
            f"{os.cpu_count()} CPUs; {args.clients} client processes x {args.connections} "
            f"connections x {args.inflight} in flight"
        )
    rates: dict[int, float] = {}
    runs: dict[str, dict[str, Any]] = {}
    for workers in args.workers:
        batch = (args.batch_clients, args.batch_size, args.batches) if args.batch_clients else None
        rate, client_cpu, server_cpu, worker_shares, batches = measure(
            workers, args.database_url, args.clients, args.inflight, args.connections,
            args.seconds, args.subjects, args.client, batch,
        )  # fmt: skip
        rates[workers] = rate
        runs[str(workers)] = {
            "calls_per_second": round(rate, 1),
            "client_cores": [round(c, 3) for c in client_cpu],
            "server_cores": round(server_cpu / (args.seconds + 1.0), 3),
            "worker_shares": [round(w, 3) for w in worker_shares],
        }
        if batches:
            runs[str(workers)]["batch_create"] = batches
        shares = ", ".join(f"{c:.0%}" for c in client_cpu)
        # The server's CPU covers the clients' warm-up second too (their calls are not
        # counted there), so per call it reads a little high.
        busy = server_cpu / (args.seconds + 1.0)
        print(
            f"--workers {workers}: {rate:,.0f} masked gets/s (client CPU per process: "
            f"{shares}; server: {busy:.2f} cores busy, split "
            f"{' / '.join(f'{w:.0%}' for w in worker_shares)} over its processes)"
        )
        if batches:
            print(
                f"--workers {workers}: {batches['subjects_per_second']:,.0f} subjects/s batch-"
                f"created by {args.batch_clients} clients in calls of {args.batch_size:,} "
                f"(server CPU {batches['server_cpu_us_per_subject']:.0f} us/subject; client "
                f"CPU per process: {', '.join(f'{c:.0%}' for c in batches['client_cores'])})"
            )
    ratios = {}
    if 1 in rates:
        for workers, rate in rates.items():
            if workers != 1:
                ratios[str(workers)] = round(rate / rates[1], 3)
                print(f"--workers {workers} / --workers 1: {rate / rates[1]:.2f}x")
    document = {
        "benchmark": "serve_workers",
        "database": "postgresql" if args.database_url else "sqlite",
        "client": args.client,
        "cpus": os.cpu_count(),
        "runs": runs,
        "ratio_to_one_worker": ratios,
    }
    print(json.dumps(document))


if __name__ == "__main__":
    main()
