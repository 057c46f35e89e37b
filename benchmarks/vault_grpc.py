"""The vault over gRPC, as a separate server process, beside the bare echo baseline.

Per database: batch create (every field sealed, four blind indexes, one audit entry per
call, all in one transaction), masked get (authentication, policy, decrypt, mask, audit
entry) one at a time and 16 in flight, find by blind index, reveal, and a view export
stream. The echo baseline is measured right before the masked gets, with the same
client drivers and a request of the same bytes, so load on the machine that drifts
during the run affects both sides of the ratio alike.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc_load
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from echo_server import METHOD
from floor_server import METHOD as FLOOR_METHOD
from procs import ServerProcess, vault_cli
from report import Results

GROUP = "vault over gRPC"
GROUP_ECHO = "baseline: bare grpcio echo"
GROUP_FLOOR = "baseline: fail-closed read floor"
Profiler = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class GrpcSizes:
    batch_sizes: tuple[int, ...]
    subjects_per_repetition: int
    repetitions: int
    sequential_calls: int
    concurrent_calls: int
    export_subjects: int
    export_repetitions: int


Metadata = tuple[tuple[str, str], ...]
EXPORT_TENANT = "globex"


@dataclass(frozen=True)
class Tokens:
    """Bearer-token metadata per caller (tenant acme, except the export tenant's two)."""

    service: Metadata
    agent: Metadata
    dpo: Metadata
    export_service: Metadata
    export_lead: Metadata


def issue_tokens(data_dir: Path) -> Tokens:
    def token(principal: str, role: str, *attrs: str, tenant: str = "acme") -> Metadata:
        args = ["token", "issue", "--principal", principal, "--tenant", tenant, "--role", role]
        for attr in attrs:
            args += ["--attr", attr]
        text = vault_cli(*args, "--ttl", "6h", "--data-dir", str(data_dir)).strip()
        return (("authorization", f"Bearer {text}"),)

    return Tokens(
        service=token("order-service", "service"),
        agent=token("agent-7", "support_agent", "clearance=2"),
        dpo=token("dpo-1", "dpo", "clearance=3"),
        export_service=token("order-service", "service", tenant=EXPORT_TENANT),
        export_lead=token("lead-2", "support_lead", "clearance=2", tenant=EXPORT_TENANT),
    )


@dataclass
class Created:
    """Subjects the run created: ids and the record number each was created from."""

    ids: list[str]
    numbers: list[int]


def run(
    results: Results,
    db: str,
    vault: ServerProcess,
    echo: ServerProcess,
    data_dir: Path,
    records: Sequence[dict[str, str]],
    sizes: GrpcSizes,
    profile: Profiler | None = None,
    floor: ServerProcess | None = None,
) -> None:
    profile = profile or (lambda name: nullcontext())
    tokens = issue_tokens(data_dir)
    channel = grpc.insecure_channel(
        vault.address, options=[("grpc.max_send_message_length", 64 * 2**20)]
    )
    stub = vault_pb2_grpc.VaultServiceStub(channel)
    try:
        created = _batch_create(results, db, vault, stub, tokens, records, sizes, profile)
        _masked_get(results, db, vault, echo, floor, stub, tokens, created, sizes, profile)
        _find(results, db, stub, tokens, created, records, sizes)
        _reveal(results, db, stub, tokens, created, sizes)
        _export(results, db, stub, tokens, records, sizes)
        results.add(GROUP, "server RSS at the end", db, vault.rss_mib(), "MiB")
    finally:
        channel.close()


def _batch_requests(
    records: Sequence[dict[str, str]], numbers: range, batch: int
) -> list[tuple[list[int], pb.BatchCreateSubjectsRequest]]:
    """Requests built before the clock starts (the client's protobuf work is not timed)."""
    return [
        (
            list(numbers[i : i + batch]),
            pb.BatchCreateSubjectsRequest(
                items=[pb.SubjectInput(fields=records[n]) for n in numbers[i : i + batch]]
            ),
        )
        for i in range(0, len(numbers), batch)
    ]


def _batch_create(
    results: Results,
    db: str,
    vault: ServerProcess,
    stub: vault_pb2_grpc.VaultServiceStub,
    tokens: Tokens,
    records: Sequence[dict[str, str]],
    sizes: GrpcSizes,
    profile: Profiler,
) -> Created:
    """Batch sizes take turns within each repetition, so drifting load hits all alike."""
    created = Created([], [])
    samples: dict[int, list[float]] = {b: [] for b in sizes.batch_sizes}
    cpu_us: dict[int, list[float]] = {b: [] for b in sizes.batch_sizes}

    def create(batch: int, count: int) -> tuple[float, float]:
        start = len(created.numbers)
        requests = _batch_requests(records, range(start, start + count), batch)
        cpu0 = vault.cpu_seconds()
        started = time.perf_counter()
        for numbers, request in requests:
            response = stub.BatchCreateSubjects(request, metadata=tokens.service, timeout=600)
            if response.failed:
                raise RuntimeError(f"{response.failed} items failed validation")
            created.ids.extend(r.subject_id for r in response.results)
            created.numbers.extend(numbers)
        elapsed = time.perf_counter() - started
        return count / elapsed, (vault.cpu_seconds() - cpu0) / count * 1e6

    for batch in sizes.batch_sizes:  # warm-up: one batch of each size
        create(batch, batch)
    with profile(f"batch_create_{db}"):
        for _ in range(sizes.repetitions):
            for batch in sizes.batch_sizes:
                rate, cpu = create(batch, sizes.subjects_per_repetition)
                samples[batch].append(rate)
                cpu_us[batch].append(cpu)
    for batch in sizes.batch_sizes:
        results.add(
            GROUP,
            f"batch create, batches of {batch:,}",
            db,
            statistics.median(samples[batch]),
            "subjects/s",
            f"server CPU {statistics.median(cpu_us[batch]):.0f} us/subject",
            samples=[round(s) for s in samples[batch]],
            server_cpu_us_per_subject=[round(c, 1) for c in cpu_us[batch]],
        )
    # DESIGN's batch-create targets are read with `--workers` at the machine's cores and
    # concurrent clients: the workers section (bench_workers.py), not this one process.
    return created


def _get_request(created: Created, i: int) -> pb.GetSubjectRequest:
    subject_id = created.ids[(i * 7919) % len(created.ids)]
    return pb.GetSubjectRequest(subject_id=subject_id, view="support", purpose="support")


def _calls(figure: grpc_load.LoadResult) -> int:
    """Calls a driver made, warm-up included (server CPU is measured around all of them)."""
    return figure.calls * figure.rate.repetitions + figure.warmup_calls


def _masked_get(
    results: Results,
    db: str,
    vault: ServerProcess,
    echo: ServerProcess,
    floor: ServerProcess | None,
    stub: vault_pb2_grpc.VaultServiceStub,
    tokens: Tokens,
    created: Created,
    sizes: GrpcSizes,
    profile: Profiler,
) -> None:
    payload = _get_request(created, 0).SerializeToString()
    cpu0 = echo.cpu_seconds()
    echo_seq, echo_conc = _echo(echo, METHOD, payload, sizes, ())
    echo_cpu = (echo.cpu_seconds() - cpu0) / (_calls(echo_seq) + _calls(echo_conc)) * 1e6
    for label, figure in (("sequential", echo_seq), ("16 in flight", echo_conc)):
        results.add(
            GROUP_ECHO,
            f"echo, {label}",
            db,
            figure.rate.median,
            "calls/s",
            f"p50 {figure.p50_ms:.2f} ms, p99 {figure.p99_ms:.2f} ms; "
            f"server CPU {echo_cpu:.0f} us/call",
            **figure.as_dict(),
        )
    floor_seq = floor_conc = None
    if floor is not None:
        # The same bearer token as the masked gets, the same request bytes.
        cpu0 = floor.cpu_seconds()
        floor_seq, floor_conc = _echo(floor, FLOOR_METHOD, payload, sizes, tokens.agent)
        floor_cpu = (floor.cpu_seconds() - cpu0) / (_calls(floor_seq) + _calls(floor_conc)) * 1e6
        for label, figure, base in (
            ("sequential", floor_seq, echo_seq),
            ("16 in flight", floor_conc, echo_conc),
        ):
            results.add(
                GROUP_FLOOR,
                f"token check + durable insert, {label}",
                db,
                figure.rate.median,
                "calls/s",
                f"{figure.rate.median / base.rate.median:.0%} of echo; "
                f"p50 {figure.p50_ms:.2f} ms, p99 {figure.p99_ms:.2f} ms; "
                f"server CPU {floor_cpu:.0f} us/call",
                **figure.as_dict(),
            )

    requests = [_get_request(created, i) for i in range(len(created.ids))]

    def get(i: int) -> object:
        return stub.GetSubject(requests[i % len(requests)], metadata=tokens.agent, timeout=30)

    def factory(channel: grpc.aio.Channel) -> Callable[[int], object]:
        aio_stub = vault_pb2_grpc.VaultServiceStub(channel)

        def call(i: int) -> object:
            return aio_stub.GetSubject(
                requests[i % len(requests)], metadata=tokens.agent, timeout=30
            )

        return call

    cpu0 = vault.cpu_seconds()
    with profile(f"masked_get_{db}"):
        seq = grpc_load.sequential(get, calls=sizes.sequential_calls, repetitions=sizes.repetitions)
        conc = grpc_load.concurrent(
            vault.address, factory, calls=sizes.concurrent_calls, repetitions=sizes.repetitions
        )
    vault_cpu = (vault.cpu_seconds() - cpu0) / (_calls(seq) + _calls(conc)) * 1e6
    floors = {"sequential": floor_seq, "16 in flight": floor_conc}
    for label, figure, base in (("sequential", seq, echo_seq), ("16 in flight", conc, echo_conc)):
        share = figure.rate.median / base.rate.median
        floor_figure = floors[label]
        of_floor = (
            ""
            if floor_figure is None
            else f", {figure.rate.median / floor_figure.rate.median:.0%} of the floor"
        )
        results.add(
            GROUP,
            f"masked get (support view), {label}",
            db,
            figure.rate.median,
            "calls/s",
            f"{share:.0%} of echo{of_floor}; p50 {figure.p50_ms:.2f} ms, "
            f"p99 {figure.p99_ms:.2f} ms; server CPU {vault_cpu:.0f} us/call",
            **figure.as_dict(),
        )
        required = 0.60 if db == "sqlite" else 0.40
        results.target(f"masked get / echo, {label}", db, share, required, "x")
        results.target(
            f"masked get / fail-closed floor, {label}",
            db,
            None if floor_figure is None else figure.rate.median / floor_figure.rate.median,
            0.90,
            "x",
        )
    results.target(
        "masked get server CPU / echo's", db, vault_cpu / echo_cpu, 2.5, "x", at_most=True
    )
    results.target("masked get p99, sequential", db, seq.p99_ms, 3.0, "ms", at_most=True)


def _echo(
    server: ServerProcess, method: str, payload: bytes, sizes: GrpcSizes, metadata: Metadata
) -> tuple[grpc_load.LoadResult, grpc_load.LoadResult]:
    """A baseline server (echo or floor) with the same client drivers as the vault."""
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary(method)
        seq = grpc_load.sequential(
            lambda i: call(payload, metadata=metadata, timeout=30),
            calls=sizes.sequential_calls,
            repetitions=sizes.repetitions,
        )

    def factory(aio_channel: grpc.aio.Channel) -> Callable[[int], object]:
        aio_call = aio_channel.unary_unary(method)
        return lambda i: aio_call(payload, metadata=metadata, timeout=30)

    conc = grpc_load.concurrent(
        server.address, factory, calls=sizes.concurrent_calls, repetitions=sizes.repetitions
    )
    return seq, conc


def _find(
    results: Results,
    db: str,
    stub: vault_pb2_grpc.VaultServiceStub,
    tokens: Tokens,
    created: Created,
    records: Sequence[dict[str, str]],
    sizes: GrpcSizes,
) -> None:
    rng = random.Random(3)
    picks = [rng.randrange(len(created.numbers)) for _ in range(2000)]
    requests = [
        pb.FindSubjectsRequest(
            field="email",
            value=records[created.numbers[p]]["email"],
            view="support",
            purpose="support",
        )
        for p in picks
    ]

    def find(i: int) -> None:
        response = stub.FindSubjects(requests[i % len(requests)], metadata=tokens.agent, timeout=30)
        if len(response.subjects) != 1:
            raise RuntimeError("find by email should return exactly one subject")

    figure = grpc_load.sequential(find, calls=sizes.sequential_calls, repetitions=sizes.repetitions)
    results.add(GROUP, "find by email (blind index), sequential", db, figure.rate.median,
                "calls/s", f"p50 {figure.p50_ms:.2f} ms, p99 {figure.p99_ms:.2f} ms",
                **figure.as_dict())  # fmt: skip


def _reveal(
    results: Results,
    db: str,
    stub: vault_pb2_grpc.VaultServiceStub,
    tokens: Tokens,
    created: Created,
    sizes: GrpcSizes,
) -> None:
    def reveal(i: int) -> object:
        request = pb.RevealFieldRequest(
            subject_id=created.ids[(i * 104729) % len(created.ids)],
            field="email",
            purpose="data_subject_request",
            justification="DSR-8: benchmark data subject request",
        )
        return stub.RevealField(request, metadata=tokens.dpo, timeout=30)

    figure = grpc_load.sequential(
        reveal, calls=sizes.sequential_calls, repetitions=sizes.repetitions
    )
    results.add(GROUP, "reveal one field (dpo), sequential", db, figure.rate.median, "calls/s",
                f"p50 {figure.p50_ms:.2f} ms, p99 {figure.p99_ms:.2f} ms",
                **figure.as_dict())  # fmt: skip


def _export(
    results: Results,
    db: str,
    stub: vault_pb2_grpc.VaultServiceStub,
    tokens: Tokens,
    records: Sequence[dict[str, str]],
    sizes: GrpcSizes,
) -> None:
    """Stream a tenant of `export_subjects` subjects (created first, untimed)."""
    count = sizes.export_subjects
    for start in range(0, count, 5_000):
        request = pb.BatchCreateSubjectsRequest(
            items=[pb.SubjectInput(fields=r) for r in records[start : min(count, start + 5_000)]]
        )
        stub.BatchCreateSubjects(request, metadata=tokens.export_service, timeout=600)
    samples = []
    for _ in range(sizes.export_repetitions):
        started = time.perf_counter()
        streamed = sum(1 for _ in _stream(stub, tokens))
        samples.append(streamed / (time.perf_counter() - started))
        if streamed != count:
            raise RuntimeError(f"export streamed {streamed} subjects, expected {count}")
    median = sorted(samples)[len(samples) // 2]
    results.add(GROUP, "export support view (stream)", db, median, "subjects/s",
                f"a tenant of {count:,} subjects, {len(samples)} streams",
                samples=[round(s) for s in samples])  # fmt: skip


def _stream(stub: vault_pb2_grpc.VaultServiceStub, tokens: Tokens) -> Iterator[object]:
    request = pb.ExportViewRequest(view="support", purpose="support")
    yield from stub.ExportView(request, metadata=tokens.export_lead, timeout=3600)
