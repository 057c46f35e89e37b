"""Customer Vault benchmarks: the vault against its baselines and peers, in one run.

    .venv/bin/python benchmarks/run.py [--quick] [--json PATH] [--skip-postgres] [--profile]
                                       [--only stages,grpc,audit]

(`make bench` installs the `bench` extra and runs this.) One process tree on one
machine, one section after another: in-process peers (presidio-anonymizer masking,
sqlalchemy-utils encryption), storage baselines (plain SQLAlchemy Core, sqlalchemy-utils,
the vault's sealing), then per database the two baselines (the bare grpcio echo, and the
fail-closed read floor: echo + token check + one durable insert) and the vault over
gRPC as a separate server process, then the benchmarks other packages own
(bench_policy.py, bench_audit.py, bench_retention.py). Prints a table of absolute
figures and ratios and one of the design targets with PASS/MISS, and writes both as JSON
(default benchmarks/results/latest.json) and Markdown (same name, .md).

Figures are medians over repetitions. They depend on the machine and on what else it
runs: compare ratios measured in the same run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import breakdown
import databases
import external
import machine
import peers
import profiling
import sql_baselines
import vault_grpc
from procs import REPO, echo_server, floor_server, vault_server
from report import Results
from rich.console import Console
from workload import records

from vault import key_custody
from vault.config import Settings
from vault.crypto import KeyRing
from vault.fields.dictionary import DataDictionary

console = Console(width=180)


@dataclass(frozen=True)
class Plan:
    """How much each section does (`--quick` shrinks everything)."""

    peer_records: int
    peer_repetitions: int
    storage: sql_baselines.StorageSizes
    grpc: vault_grpc.GrpcSizes
    audit_entries: int
    retention_subjects: int
    breakdown_calls: int


QUICK = Plan(
    peer_records=2_000,
    peer_repetitions=3,
    storage=sql_baselines.StorageSizes(
        rows_per_repetition=4_000, batch=1_000, reads=500, repetitions=3
    ),
    grpc=vault_grpc.GrpcSizes(
        batch_sizes=(1_000, 5_000),
        subjects_per_repetition=5_000,
        repetitions=3,
        sequential_calls=300,
        concurrent_calls=600,
        export_subjects=3_000,
        export_repetitions=3,
    ),
    audit_entries=100_000,
    retention_subjects=10_000,
    breakdown_calls=200,
)
FULL = Plan(
    peer_records=5_000,
    peer_repetitions=5,
    storage=sql_baselines.StorageSizes(
        rows_per_repetition=10_000, batch=5_000, reads=2_000, repetitions=5
    ),
    grpc=vault_grpc.GrpcSizes(
        batch_sizes=(1_000, 10_000),
        subjects_per_repetition=10_000,
        repetitions=5,
        sequential_calls=600,
        concurrent_calls=1_200,
        export_subjects=10_000,
        export_repetitions=3,
    ),
    audit_entries=1_000_000,
    retention_subjects=50_000,
    breakdown_calls=500,
)


class Run:
    """State shared by the sections of one run."""

    def __init__(self, args: argparse.Namespace, plan: Plan, workdir: Path) -> None:
        self.args = args
        self.plan = plan
        self.workdir = workdir
        self.results = Results()
        self.raw: dict[str, Any] = {}
        self.profiles: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.pg_version = None if args.skip_postgres else databases.postgres_version(args.pg_url)
        self.dbs = ["sqlite"] + (["postgresql"] if self.pg_version else [])
        self.dictionary = DataDictionary.from_file(REPO / "policies" / "data_dictionary.yaml")
        settings = Settings(data_dir=workdir / "in-process")
        key_custody.init_keys(settings)
        self.keyring = KeyRing(key_custody.provider_for(settings))
        largest = max(
            plan.storage.rows_per_repetition * plan.storage.repetitions,
            plan.grpc.subjects_per_repetition * (plan.grpc.repetitions + 1)
            * len(plan.grpc.batch_sizes),
            plan.peer_records,
        )  # fmt: skip
        self.records = records(largest)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        console.rule(f"[bold]{name}")
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the rest
            console.print(f"[red]{name} failed:[/red] {exc!r}")
            console.print(traceback.format_exc(), markup=False, highlight=False)
            self.results.not_available(f"{name}: failed ({type(exc).__name__}: {exc})")
        finally:
            self.timings[name] = round(time.perf_counter() - started, 1)
            console.print(f"[dim]{name}: {self.timings[name]} s[/dim]")

    def profiler(self, pid: int) -> Callable[[str], AbstractContextManager[object]]:
        if not self.args.profile:
            return lambda name: nullcontext()
        folder = self.args.json.parent / "profiles"
        folder.mkdir(parents=True, exist_ok=True)

        @contextmanager
        def sample(name: str) -> Iterator[None]:
            path = folder / f"{name}.txt"
            with profiling.sampling(pid, path):
                yield
            self.profiles[name] = {"raw": str(path), **profiling.summarize(path)}

        return sample


def _database_url(run: Run, db: str, label: str) -> AbstractContextManager[str | None]:
    if db == "postgresql":
        return databases.postgres_database(run.args.pg_url, label)
    return nullcontext(None)


SECTIONS = (
    "masking", "crypto", "storage", "stages", "grpc", "policy", "audit", "workers", "retention",
)  # fmt: skip


def run_all(run: Run) -> None:
    plan = run.plan
    peer_records = run.records[: plan.peer_records]
    wanted = set(run.args.only.split(",")) if run.args.only else set(SECTIONS)
    if "masking" in wanted:
        with run.section("masking: vault vs presidio-anonymizer"):
            peers.run_masking(
                run.results, REPO / "policies", run.dictionary, peer_records, plan.peer_repetitions
            )
    if "crypto" in wanted:
        with run.section("field encryption: vault vs sqlalchemy-utils"):
            peers.run_crypto(
                run.results, run.keyring, run.dictionary, peer_records, plan.peer_repetitions
            )
    searchable = run.dictionary.index_forms
    with echo_server(run.workdir / "echo.log") as echo:
        for db in run.dbs:
            if "storage" in wanted:
                with run.section(f"storage baselines on {db}"), _database_url(run, db, "st") as url:
                    sql_url = url or databases.sqlite_url(run.workdir, "storage.db")
                    sql_baselines.run(
                        run.results, db, sql_url, run.keyring, searchable, run.records,
                        plan.storage,
                    )  # fmt: skip
            if "stages" in wanted:
                with run.section(f"stage costs on {db}"), _database_url(run, db, "bd") as url:
                    breakdown.run(
                        run.results, db, run.workdir / f"breakdown-{db}", url, run.records,
                        plan.breakdown_calls,
                    )  # fmt: skip
            if "grpc" not in wanted:
                continue
            with (
                run.section(f"vault over gRPC on {db}"),
                _database_url(run, db, "vault") as url,
                _database_url(run, db, "floor") as floor_url,
            ):
                data_dir = run.workdir / f"vault-{db}"
                with (
                    vault_server(data_dir, url, run.workdir / f"vault-{db}.log") as vault,
                    floor_server(data_dir, floor_url, run.workdir / f"floor-{db}.log") as floor,
                ):
                    vault_grpc.run(
                        run.results, db, vault, echo, data_dir, run.records, plan.grpc,
                        run.profiler(vault.pid), floor,
                    )  # fmt: skip
    if "policy" in wanted:
        with run.section("policy decisions (bench_policy.py)"):
            external.policy(run.results, run.raw)
    if "audit" in wanted:
        with (
            run.section("audit verification (bench_audit.py)"),
            _database_url(run, run.dbs[-1], "audit") as url,
        ):
            urls = {"postgresql": url} if url else {}
            external.audit(run.results, run.raw, plan.audit_entries, urls)
    if "workers" in wanted:
        with (
            run.section("serve --workers 1 and 2 (bench_workers.py)"),
            _database_url(run, run.dbs[-1], "wrk") as url,
        ):
            urls = {"postgresql": url} if url else {}
            external.workers(run.results, run.raw, urls)
    if "retention" not in wanted:
        return
    with (
        run.section("anonymization (bench_retention.py)"),
        _database_url(run, run.dbs[-1], "ret") as url,
    ):
        urls = {"postgresql": url} if url else {}
        external.retention(run.results, run.raw, plan.retention_subjects, urls)


def _write(run: Run, machine_info: dict[str, Any], seconds: float) -> None:
    path: Path = run.args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if run.args.quick else "full",
        "plan": asdict(run.plan),
        "machine": machine_info,
        **run.results.as_dict(),
        "section_seconds": run.timings,
        "total_seconds": round(seconds, 1),
        "profiles": run.profiles,
        "owned_benchmark_output": run.raw,
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    markdown = path.with_suffix(".md")
    markdown.write_text(
        f"Run {doc['generated_at']} ({doc['mode']}, {seconds:.0f} s) on "
        f"{machine_info['cpu_count']} x {machine_info['cpu_model']}, "
        f"Python {machine_info['python']}, SQLite {machine_info['sqlite']}, "
        f"PostgreSQL {machine_info['postgresql']}; load average "
        f"{machine_info['load_average_at_start']} at start, "
        f"{machine_info['load_average_at_end']} at end; pure-Python loop "
        f"{machine_info['python_loop_ns_at_start']} ns/iteration at start, "
        f"{machine_info['python_loop_ns_at_end']} at end.\n\n" + run.results.markdown()
    )
    console.print(f"wrote {path} and {markdown}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (about 2 minutes)")
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "benchmarks" / "results" / "latest.json",
        help="where to write the results (a .md table is written beside it)",
    )
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--pg-url",
        default=databases.DEFAULT_PG_ADMIN_URL,
        help="PostgreSQL URL allowed to CREATE DATABASE (scratch databases are dropped after)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the vault server with py-spy during batch create and masked get",
    )
    parser.add_argument(
        "--only",
        help="comma-separated sections to run (default all): " + ",".join(SECTIONS),
    )
    parser.add_argument("--audit-entries", type=int, help="override the audit log size")
    parser.add_argument("--retention-subjects", type=int, help="override the dormant count")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "audit_entries": args.audit_entries,
        "retention_subjects": args.retention_subjects,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cv-bench-") as tmp:
        run = Run(args, plan, Path(tmp))
        info = machine.describe(run.pg_version)
        console.print(
            f"{info['cpu_count']} x {info['cpu_model']}, {info['memory_gib']} GiB, "
            f"Python {info['python']}, SQLite {info['sqlite']}, "
            f"PostgreSQL {info['postgresql']}, load {info['load_average_at_start']}, "
            f"Python loop {info['python_loop_ns_at_start']} ns/iteration"
        )
        if args.skip_postgres:
            run.results.not_available("PostgreSQL (--skip-postgres)")
        elif run.pg_version is None:
            run.results.not_available(f"PostgreSQL (cannot reach {args.pg_url})")
        run_all(run)
        info["load_average_at_end"] = machine.load_average()
        info["python_loop_ns_at_end"] = machine.python_speed()
        seconds = time.perf_counter() - started
        run.results.print(console)
        _write(run, info, seconds)
    console.print(f"total {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
