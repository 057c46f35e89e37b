"""Audit verification speed: build a large log, then time verifying it.

    .venv/bin/python benchmarks/bench_audit.py [--entries 1000000] [--repeat 3]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_audit]
        [--keep PATH] [--workers N]

Builds the log through the package's own write path (`append_in` in large
transactions, then the `Integrator` signing a checkpoint every 1,024 leaves) in a temp
SQLite file, or in the empty PostgreSQL database given (then `VACUUM (ANALYZE)`, as
autovacuum would in time), then times `verify_log` end to end: every checkpoint
signature, every leaf hash, every root, the query columns and subject links, with
`--workers` processes checking the chunks as `audit verify` does
(default: the CPUs this process may use; `audit.verify_pool`), and in this process
alone; then once more with the Merkle checks alone (`check_index=False`, one process).
`--repeat` verifies that many times each way and reports the medians. `--keep` keeps
the SQLite log (or, with `--database-url`, the signing key) at PATH and reuses it when
it is there, so runs can alternate code versions on the same log.

Targets: under 10 s for 1,000,000 entries end to end, and (DESIGN.md) at least
200,000 entries/s. Prints one JSON line (and a summary on stderr): entries per second
of wall-clock time and per second of CPU time (this process's and its workers'), as
wall-clock time on a shared machine says little; on PostgreSQL also the CPU time of the
database server processes that served the verification (its own and its workers').
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit import (
    AuditEntry,
    CheckpointSigner,
    Integrator,
    append_in,
    create_sqlite_engine,
    generate_signing_key,
    migrate,
    verify_log,
)
from audit.cpus import usable_cpus

ORIGIN = "bench.example/audit"
BATCH = 20_000
TARGET = 200_000  # entries/s (DESIGN.md)
ACTIONS = ("GetSubject", "FindSubjects", "UpdateSubject", "RevealField", "ExportView")
PURPOSES = ("support", "marketing", "analytics", "fraud", "legal")
FIELDS = (("email",), ("email", "phone"), ("given_name", "family_name", "city"), ())
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_entry(n: int) -> AuditEntry:
    """A realistic entry: a support agent reading or changing one or two subjects."""
    digest = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
    subjects = (f"sub_{digest[:26]}",) if n % 7 else (f"sub_{digest[:26]}", f"sub_{digest[26:52]}")
    allowed = n % 11 != 0
    return AuditEntry(
        time=T0 + timedelta(microseconds=n * 37_000),
        actor=f"agent-{n % 97}",
        actor_roles=("support_agent",),
        tenant=f"tenant-{n % 3}",
        action=ACTIONS[n % len(ACTIONS)],
        subject_ids=subjects,
        field_names=FIELDS[n % len(FIELDS)],
        purpose=PURPOSES[n % len(PURPOSES)],
        justification=f"ticket {n // 3}" if n % 5 == 0 else "",
        decision="allow" if allowed else "deny",
        reason="p, support_agent, *, subjects:read, view:support" if allowed else "no consent",
        policy_version="sha256:5d41402abc4b",
        consent_version="v3" if n % 2 else "",
        result_code="OK" if allowed else "PERMISSION_DENIED",
        request_id=digest[:32],
        trace_id=digest[32:64],
        caller_address=f"ipv4:10.0.{n % 250}.{n % 199}:5{n % 9999:04d}",
        extra={"view": "support"},
    )


def _batches(count: int) -> Iterator[list[AuditEntry]]:
    for start in range(0, count, BATCH):
        yield [make_entry(n) for n in range(start, min(count, start + BATCH))]


def build(engine: Engine, signer: CheckpointSigner, count: int) -> float:
    """Append and integrate `count` entries; returns the seconds taken."""
    started = time.perf_counter()
    for batch in _batches(count):
        with engine.begin() as conn:
            append_in(conn, batch)
    integrator = Integrator(engine, signer, ORIGIN, checkpoint_interval=1024)
    while integrator.integrate(max_batch=250_000) is not None:
        pass
    if engine.dialect.name == "postgresql":
        # Integration rewrote every row (its leaf index): autovacuum's first pass over a
        # million dead versions would otherwise run during the verifications, on the
        # same cores. The log is measured as a maintained database keeps it.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
    return time.perf_counter() - started


class _ServerClock:
    """CPU seconds of the PostgreSQL backends serving a verification: the one serving
    the engine's pooled connection (the verifier's), and those that served the workers'
    connections, which have ended by the time the verification returns and are counted
    in the postmaster's children (as is any other backend ending meanwhile, say an
    autovacuum worker: on a quiet server, few)."""

    def __init__(self, engine: Engine) -> None:
        import psutil  # the bench extra

        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        self._backend = psutil.Process(pid)
        self._postmaster = self._backend.parent()

    def __call__(self) -> float:
        times = self._backend.cpu_times()
        ended = self._postmaster.cpu_times() if self._postmaster else None
        children = ended.children_user + ended.children_system if ended else 0.0
        return float(times.user + times.system + children)


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _timed(
    engine: Engine,
    signer: CheckpointSigner,
    server: _ServerClock | None,
    *,
    check_index: bool,
    workers: int = 1,
) -> dict[str, Any]:
    """One verify_log: its report's size and outcome, wall-clock and CPU seconds."""
    server_before = server() if server else 0.0
    wall, cpu = time.perf_counter(), _cpu()
    report = verify_log(engine, signer.verifier(), check_index=check_index, workers=workers)
    run = {
        "wall": time.perf_counter() - wall,
        "cpu": _cpu() - cpu,
        "size": report.size,
        "checkpoints": report.checkpoints_checked,
        "ok": report.ok,
    }
    if server:
        run["server_cpu"] = server() - server_before
    return run


def _summary(runs: list[dict[str, Any]], size: int, times: str, rates: str) -> dict[str, Any]:
    """Medians of `runs`: seconds under keys starting `times`, rates under `rates`."""
    wall = statistics.median(run["wall"] for run in runs)
    cpu = statistics.median(run["cpu"] for run in runs)
    result = {
        f"{times}seconds": round(wall, 3),
        f"{times}cpu_seconds": round(cpu, 3),
        f"{rates}entries_per_second": round(size / wall),
        f"{rates}entries_per_cpu_second": round(size / cpu),
    }
    if "server_cpu" in runs[0]:
        server = statistics.median(run["server_cpu"] for run in runs)
        result[f"{times}server_cpu_seconds"] = round(server, 3)
        result[f"{rates}entries_per_cpu_second_with_server"] = round(size / (cpu + server))
    result[f"{times}runs"] = [
        {key: round(value, 3) for key, value in run.items() if key in _TIMES} for run in runs
    ]
    return result


_TIMES = ("wall", "cpu", "server_cpu")


def _open(args: argparse.Namespace, tmp: Path) -> tuple[Engine, Path, bool]:
    """The engine, the signing key's path, and whether a log built earlier is reused."""
    if args.database_url:
        keys = args.keep or tmp / "audit.key.pem"
        engine = sa.create_engine(args.database_url, pool_size=1, max_overflow=0)
        migrate(engine)
        with engine.connect() as conn:
            built = conn.exec_driver_sql("SELECT count(*) FROM audit_checkpoints").scalar_one()
        return engine, keys, bool(built) and keys.exists()
    path = args.keep or tmp / "audit.db"
    keys = path.parent / f"{path.name}.key.pem"
    reuse = path.exists() and keys.exists()
    engine = create_sqlite_engine(path, pool_size=1)
    migrate(engine)
    return engine, keys, reuse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="verifications each way")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log (or key) here")
    parser.add_argument(
        "--workers", type=int, default=usable_cpus(), help="processes checking the chunks"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        engine, keys, reuse = _open(args, Path(tmp))
        if not reuse:
            generate_signing_key(keys)
        signer = CheckpointSigner(keys.read_bytes(), ORIGIN)
        build_seconds = 0.0 if reuse else build(engine, signer, args.entries)
        server = _ServerClock(engine) if args.database_url else None
        full, alone, merkle = [], [], []
        for _ in range(args.repeat):  # alternate, so all see the same machine load
            full.append(_timed(engine, signer, server, check_index=True, workers=args.workers))
            alone.append(_timed(engine, signer, server, check_index=True))
            merkle.append(_timed(engine, signer, server, check_index=False))
        engine.dispose()
    size = full[0]["size"]
    result = {
        "benchmark": "audit_verify_log",
        "database": "postgresql" if args.database_url else "sqlite",
        "entries": size,
        "checkpoints": full[0]["checkpoints"],
        "build_seconds": round(build_seconds, 2),
        "repeat": args.repeat,
        "target_entries_per_second": TARGET,
        "workers": args.workers,
        # verify_log as the CLI runs it: Merkle tree, signatures, columns and links
        **_summary(full, size, "verify_", ""),
        # the same in one process (workers=1)
        **_summary(alone, size, "one_process_", "one_process_"),
        # the Merkle tree and signatures alone (check_index=False)
        **_summary(merkle, size, "merkle_only_", "merkle_only_"),
        "ok": all(run["ok"] for run in full + alone + merkle),
    }
    print(json.dumps(result))
    print(
        f"audit verify, {size:,} entries on {result['database']}, {args.workers} workers: "
        f"{result['entries_per_second']:,} entries/s wall, "
        f"{result['entries_per_cpu_second']:,} per CPU-second (target {TARGET:,}/s); "
        f"one process {result['one_process_entries_per_second']:,} / "
        f"{result['one_process_entries_per_cpu_second']:,}; "
        f"Merkle checks alone {result['merkle_only_entries_per_second']:,} / "
        f"{result['merkle_only_entries_per_cpu_second']:,}",
        file=sys.stderr,
    )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
