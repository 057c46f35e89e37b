"""Audit log verification speed: build a large log in a temp SQLite file, verify it.

    .venv/bin/python benchmarks/bench_audit.py [--entries 1000000] [--keep PATH]

Builds the log through the package's own write path (`append_in` in large
transactions, then the `Integrator` signing a checkpoint every 1,024 leaves), then
times `verify_log` end to end: every checkpoint signature, every leaf hash, every
root, the query columns and subject links; then once more with the Merkle checks
alone (`check_index=False`). Targets: under 10 s for 1,000,000 entries end to end, and
(DESIGN.md) at least 200,000 entries/s. Prints one JSON line; CPU seconds are given
too, as wall-clock time on a shared machine says little.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from audit import (
    AuditEntry,
    CheckpointSigner,
    Integrator,
    VerifyReport,
    append_in,
    create_sqlite_engine,
    generate_signing_key,
    migrate,
    verify_log,
)

ORIGIN = "bench.example/audit"
BATCH = 20_000
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
    return time.perf_counter() - started


def _timed(
    engine: Engine, signer: CheckpointSigner, *, check_index: bool
) -> tuple[VerifyReport, float, float]:
    """verify_log's report, wall-clock seconds and CPU seconds (threads included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    report = verify_log(engine, signer.verifier(), check_index=check_index)
    return report, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log at this path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        path = args.keep or Path(tmp) / "audit.db"
        keys = path.parent / f"{path.name}.key.pem"
        reuse = path.exists() and keys.exists()
        if not reuse:
            generate_signing_key(keys)
        signer = CheckpointSigner(keys.read_bytes(), ORIGIN)
        engine = create_sqlite_engine(path)
        migrate(engine)
        build_seconds = 0.0 if reuse else build(engine, signer, args.entries)
        report, wall, cpu = _timed(engine, signer, check_index=True)
        merkle_only, merkle_wall, merkle_cpu = _timed(engine, signer, check_index=False)
        engine.dispose()
    result = {
        "benchmark": "audit_verify_log",
        "database": "sqlite",
        "entries": report.size,
        "checkpoints": report.checkpoints_checked,
        "build_seconds": round(build_seconds, 2),
        # verify_log as the CLI runs it: Merkle tree, signatures, columns and links
        "verify_seconds": round(wall, 2),
        "verify_cpu_seconds": round(cpu, 2),
        "entries_per_second": round(report.size / wall),
        # the Merkle tree and signatures alone (check_index=False)
        "merkle_only_seconds": round(merkle_wall, 2),
        "merkle_only_cpu_seconds": round(merkle_cpu, 2),
        "merkle_only_entries_per_second": round(report.size / merkle_wall),
        "ok": report.ok and merkle_only.ok,
    }
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
