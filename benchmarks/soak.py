"""Soak: sustained mixed traffic against a real vault server, bounded in time.

    .venv/bin/python benchmarks/soak.py [--duration 180] [--workers 4] [--warmup 20]
        [--database-url URL | --postgres [--pg-admin-url URL]] [--json PATH]

Starts `customer-vault serve` on a loopback port with a temporary data dir (SQLite by
default; `--database-url` uses that PostgreSQL database as it is, `--postgres` a scratch
database created and dropped by the run), mints tokens for several roles with the
development key, and runs N worker processes of mixed traffic (soak_traffic.py) through
the public gRPC API: a warm-up, then `--duration` seconds that are measured. The server's
RSS is read from /proc every second. Afterwards it checks that every acknowledged create
is stored and decrypts (a DPO export of the tenant), stops the server with SIGTERM
(exit code 0 expected) and runs `customer-vault audit verify` on the data.

Prints a table and one JSON line: calls per kind, ops/s, p50/p95/p99 latency per kind
and overall, unexpected errors (kind and status code only, never a request value), RSS
at the start of the measured part, at its end, its maximum and the slope. Exits 1 when
there was an unexpected error, a wrong answer, a missing subject, a non-zero server exit,
an audit log that does not verify, or RSS growth beyond the bound (see RSS_GROWTH_*).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from procs import vault_server
from rich.console import Console
from rich.table import Table
from soak_checks import (
    RssSampler,
    Verification,
    audit_verify,
    check_stored,
    rss_summary,
    server_log_problems,
    stop_server,
)
from soak_traffic import WorkerPlan, WorkerResult, run_worker
from workload import percentile, records

from vault.api.client import VaultClient
from vault.clock import SystemClock
from vault.config import Settings
from vault.identity import TokenIssuer
from vault.principal import Principal

RSS_GROWTH_LIMIT_MIB = 64.0
RSS_GROWTH_LIMIT_FRACTION = 0.25
"""The server fails the soak when its RSS at the end of the measured part exceeds the
RSS at its start by more than 64 MiB *and* by more than 25%: after warm-up every cache
the server keeps is bounded (policy decisions, compiled statements, connection pools,
grpc's thread pool), so what remains is allocator noise of a few MiB. A leak of one KiB
per call at 400 calls/s crosses both bounds within three minutes; the slope (MiB/min)
is reported for anything smaller."""
HOT_SUBJECTS = 16

ROLES: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "service": ("order-service", ("service",), {}),
    "agent": ("agent-7", ("support_agent",), {"clearance": "2"}),
    "lead": ("lead-2", ("support_lead",), {"clearance": "3"}),
    "marketer": ("mkt-1", ("marketing",), {"department": "marketing", "clearance": "2"}),
    "analyst": ("analyst-1", ("analyst",), {}),
    "fraud": ("fraud-1", ("fraud_analyst",), {"clearance": "3"}),
    "dpo": ("dpo-1", ("dpo",), {"clearance": "3"}),
    "compliance": ("auditor-1", ("compliance_officer",), {}),
    "intern": ("intern-1", ("intern",), {}),
}
"""Who calls: principal, roles, attributes. The intern holds no permission at all."""


@dataclass(frozen=True)
class SoakConfig:
    duration: float = 180.0
    warmup: float = 20.0
    workers: int = 4
    database_url: str | None = None
    rss_growth_limit_mib: float = RSS_GROWTH_LIMIT_MIB
    rss_growth_limit_fraction: float = RSS_GROWTH_LIMIT_FRACTION
    work_dir: Path | None = None


def mint_tokens(data_dir: Path, tenant: str) -> dict[str, str]:
    """Bearer tokens for every role, signed with the development key `serve` uses."""
    settings = Settings(data_dir=data_dir)
    issuer = TokenIssuer(
        settings.token_private_key.read_bytes(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        clock=SystemClock(),
    )
    tokens = {}
    for role, (principal, roles, attrs) in ROLES.items():
        who = Principal(principal, tenant, frozenset(roles), MappingProxyType(attrs))
        tokens[role] = issuer.issue(who, timedelta(hours=6))
    return tokens


def _seed_hot(address: str, service_token: str) -> tuple[str, ...]:
    with VaultClient(address, service_token) as service:
        response = service.batch_create(records(HOT_SUBJECTS, start=0))
    if response.failed:
        raise RuntimeError("seeding the shared subjects failed")
    return tuple(r.subject_id for r in response.results)


def _run_workers(
    config: SoakConfig, address: str, tokens: dict[str, str], hot: tuple[str, ...]
) -> tuple[list[WorkerResult], list[str], float, float]:
    steady_from = time.monotonic() + config.warmup
    stop_at = steady_from + config.duration
    plans = [
        WorkerPlan(n, address, tokens, hot, steady_from, stop_at) for n in range(config.workers)
    ]
    # spawn, not fork: a forked child would inherit this process's grpc state.
    context = multiprocessing.get_context("spawn")
    results, crashed = [], []
    with ProcessPoolExecutor(config.workers, mp_context=context) as pool:
        futures = [pool.submit(run_worker, plan) for plan in plans]
        for future in futures:
            try:
                results.append(future.result(timeout=config.warmup + config.duration + 300))
            except Exception as exc:  # noqa: BLE001 - reported (type only) and fails the soak
                crashed.append(type(exc).__name__)
    return results, crashed, steady_from, stop_at


@dataclass
class SoakReport:
    config: dict[str, Any]
    measured_seconds: float
    kinds: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    unexpected: dict[str, int]
    warmup_unexpected: dict[str, int]
    crashed_workers: list[str]
    rss: dict[str, float]
    verification: Verification
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "measured_seconds": round(self.measured_seconds, 1),
            "kinds": self.kinds,
            "overall": self.overall,
            "unexpected": self.unexpected,
            "warmup_unexpected": self.warmup_unexpected,
            "crashed_workers": self.crashed_workers,
            "rss_mib": self.rss,
            "verification": vars(self.verification),
            "failures": self.failures,
            "ok": self.ok,
        }


def _latency_row(latencies: list[float], seconds: float) -> dict[str, Any]:
    def ms(q: float) -> float:
        return round(percentile(latencies, q) * 1000, 2)

    return {
        "calls": len(latencies),
        "ops_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": ms(50),
        "p95_ms": ms(95),
        "p99_ms": ms(99),
    }


def _summarize_calls(
    results: list[WorkerResult], seconds: float
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    outcomes: Counter[tuple[str, str]] = Counter()
    latencies: dict[str, list[float]] = {}
    for result in results:
        outcomes.update(result.outcomes)
        for kind, values in result.latencies.items():
            latencies.setdefault(kind, []).extend(values)
    kinds = {}
    for kind in sorted(latencies):
        row = _latency_row(latencies[kind], seconds)
        row["codes"] = {code: n for (k, code), n in sorted(outcomes.items()) if k == kind}
        kinds[kind] = row
    overall = _latency_row([x for v in latencies.values() for x in v], seconds)
    return kinds, overall


def _failures(report: SoakReport, config: SoakConfig) -> list[str]:
    failures = []
    if report.unexpected or report.warmup_unexpected:
        total = sum(report.unexpected.values()) + sum(report.warmup_unexpected.values())
        failures.append(f"{total} unexpected outcomes")
    if report.crashed_workers:
        failures.append(f"{len(report.crashed_workers)} worker processes crashed")
    v = report.verification
    if v.missing or v.unacknowledged or v.incomplete or v.erased_readable:
        failures.append(
            f"stored data: {v.missing} missing, {v.unacknowledged} unacknowledged, "
            f"{v.incomplete} incomplete, {v.erased_readable} erased but readable"
        )
    if v.server_log_problems:
        failures.append(f"server log: {v.server_log_problems}")
    if v.server_exit_code != 0:
        failures.append(f"server exit code {v.server_exit_code} after SIGTERM")
    if not v.audit_verified:
        failures.append("audit log does not verify")
    rss = report.rss
    if not rss:
        failures.append("no RSS samples")
    else:
        limit = max(config.rss_growth_limit_mib, rss["start"] * config.rss_growth_limit_fraction)
        if rss["growth"] > limit:
            failures.append(f"RSS grew {rss['growth']} MiB (bound {limit:.0f} MiB)")
    return failures


def _keyed(counter: Counter[tuple[str, str]]) -> dict[str, int]:
    return {f"{kind}:{code}": n for (kind, code), n in sorted(counter.items())}


@contextmanager
def _data_dir(config: SoakConfig) -> Iterator[Path]:
    if config.work_dir is not None:
        config.work_dir.mkdir(parents=True, exist_ok=True)
        yield config.work_dir
        return
    with tempfile.TemporaryDirectory(prefix="cv-soak-") as tmp:
        yield Path(tmp)


def run_soak(config: SoakConfig) -> SoakReport:
    """Run the whole soak and return its report (nothing printed)."""
    tenant = f"soak-{secrets.token_hex(4)}"  # a shared database may hold other tenants
    load_before = _load()
    with _data_dir(config) as work:
        data_dir = work / "data"
        server = vault_server(data_dir, config.database_url, work / "server.log")
        verification = Verification()
        sampler = RssSampler(server.pid)
        try:
            tokens = mint_tokens(data_dir, tenant)
            hot = _seed_hot(server.address, tokens["service"])
            sampler.start()
            results, crashed, steady_from, stop_at = _run_workers(
                config, server.address, tokens, hot
            )
            sampler.stop()
            created = {s for r in results for s in r.created} | set(hot)
            erased = {s for r in results for s in r.erased}
            check_stored(server.address, tokens["dpo"], created, erased, verification)
        finally:
            sampler.stop()
            verification.server_exit_code = stop_server(server)
        verification.server_log_problems = server_log_problems(work / "server.log")
        verified, output = audit_verify(data_dir, config.database_url)
        verification.audit_verified, verification.audit_output = verified, output
    measured = stop_at - steady_from
    kinds, overall = _summarize_calls(results, measured)
    unexpected: Counter[tuple[str, str]] = Counter()
    warmup_unexpected: Counter[tuple[str, str]] = Counter()
    for result in results:
        unexpected.update(result.unexpected)
        warmup_unexpected.update(result.warmup_unexpected)
    report = SoakReport(
        config={
            "duration": config.duration,
            "warmup": config.warmup,
            "workers": config.workers,
            "database": "postgresql" if config.database_url else "sqlite",
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": _load(),
        },
        measured_seconds=measured,
        kinds=kinds,
        overall=overall,
        unexpected=_keyed(unexpected),
        warmup_unexpected=_keyed(warmup_unexpected),
        crashed_workers=crashed,
        rss=rss_summary(sampler, steady_from, stop_at),
        verification=verification,
        failures=[],
    )
    report.failures = _failures(report, config)
    return report


def print_report(report: SoakReport) -> None:
    console = Console(width=160)
    c = report.config
    table = Table(
        title=f"soak on {c['database']}: {c['workers']} client processes, "
        f"{report.measured_seconds:.0f} s measured after {c['warmup']:.0f} s warm-up"
    )
    for column in ("kind", "calls", "ops/s", "p50 ms", "p95 ms", "p99 ms", "outcomes"):
        table.add_column(column, justify="left" if column in ("kind", "outcomes") else "right")
    rows = [*report.kinds.items(), ("overall", report.overall)]
    for kind, row in rows:
        codes = ", ".join(f"{c} {n}" for c, n in row.get("codes", {}).items())
        table.add_row(
            kind,
            f"{row['calls']:,}",
            f"{row['ops_per_s']:,.1f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            codes,
        )
    console.print(table)
    rss, v = report.rss, report.verification
    console.print(
        f"server RSS (MiB): start {rss.get('start')}, end {rss.get('end')}, max {rss.get('max')},"
        f" growth {rss.get('growth')}, slope {rss.get('slope_mib_per_min')} MiB/min"
        f" (anonymous: {rss.get('anon_start')} -> {rss.get('anon_end')})"
    )
    console.print(
        f"unexpected: {report.unexpected or 'none'}; during warm-up:"
        f" {report.warmup_unexpected or 'none'}; crashed workers: {report.crashed_workers or 0}"
    )
    console.print(
        f"stored: {v.acknowledged:,} acknowledged creates, {v.erased:,} erased, {v.missing}"
        f" missing, {v.unacknowledged} unacknowledged, {v.incomplete} incomplete; server exit"
        f" code {v.server_exit_code}; audit verify: {'OK' if v.audit_verified else 'FAILED'}"
        f" ({v.audit_output}); server log warnings/errors: {v.server_log_problems or 'none'}"
    )
    console.print(
        f"load average (1/5/15 min) on {c['cpus']} CPUs: before {c['load_average_before']},"
        f" after {c['load_average_after']}"
    )
    console.print("[green]PASS[/green]" if report.ok else f"[red]FAIL[/red]: {report.failures}")
    print(json.dumps(report.as_dict(), sort_keys=True))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=4, help="client worker processes")
    parser.add_argument("--database-url", help="an existing PostgreSQL database to use as is")
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database")
    parser.add_argument("--pg-admin-url", default=None, help="where --postgres creates it")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--keep", type=Path, help="keep the data dir and server log here")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        url = args.database_url
        if args.postgres:
            import databases

            admin = args.pg_admin_url or databases.DEFAULT_PG_ADMIN_URL
            url = stack.enter_context(databases.postgres_database(admin, "soak"))
        config = SoakConfig(args.duration, args.warmup, args.workers, url, work_dir=args.keep)
        report = run_soak(config)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
