"""Retention speed and memory: N dormant subjects noticed, then anonymized.

    .venv/bin/python benchmarks/bench_retention.py [--count 1000000] [--batch-size 2500]
    .venv/bin/python benchmarks/bench_retention.py --count 100000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_retention   # an empty db

A child process fills a fresh database (a temp SQLite file, or the empty PostgreSQL
database given) with N subjects as the vault writes them: a data key each, eight sealed
fields, three blind indexes, all dormant for three years. Generation uses every core and
multi-row inserts; it is not timed. Then this process, which did nothing else, opens the
vault and times two runs of `RetentionJob.run` on an injected clock: the notice run and,
a notice period later, the anonymization run (decrypt the kept fields, generalize,
crypto-shred, drop blind indexes, one audit entry per subject, k-anonymity at the end).

Prints one JSON line: subjects/s of each run, the peak RSS of this process (getrusage)
and the RSS sampled through the anonymization run, to show memory stays flat. Target
(docs/DESIGN.md): 1,000,000 anonymized in under 2 minutes on SQLite, memory flat.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vault import key_custody  # noqa: E402 - after the path set-up above
from vault.config import Settings  # noqa: E402
from vault.retention.report import Outcome  # noqa: E402

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CHUNK = 5_000
TIERS = ("bronze", "silver", "gold", "platinum")
COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR", "IN", "CA")


class BenchClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def _settings(data_dir: Path, database_url: str | None, batch_size: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        retention_schedule="",
        retention_batch_size=batch_size,
    )


def _customer(n: int) -> dict[str, str]:
    return {
        "given_name": "Given" + _letters(n),
        "family_name": "Family" + _letters(n),
        "email": f"customer{n}@example.com",
        "phone": f"+1415555{n % 10000:04d}",
        "date_of_birth": f"19{50 + n % 50}-0{1 + n % 9}-1{n % 10}",
        # 50 areas (the kept prefix) with 100 codes each.
        "postal_code": f"{100 + (n * 7) % 50}{n % 100:02d}",
        "country": COUNTRIES[n % len(COUNTRIES)],
        "loyalty_tier": TIERS[n % len(TIERS)],
    }


def _letters(n: int) -> str:
    return "".join("abcdefghij"[int(c)] for c in str(n))


_worker: dict[str, Any] = {}


def _init_worker(data_dir: str) -> None:
    from vault.crypto import KeyRing
    from vault.fields.dictionary import DataDictionary
    from vault.records.cipher import RecordCipher

    settings = Settings(data_dir=Path(data_dir))
    dictionary = DataDictionary.from_file(settings.policies_dir / "data_dictionary.yaml")
    keyring = KeyRing(key_custody.provider_for(settings))
    _worker["sealing"] = RecordCipher(keyring, dictionary.index_forms)
    _worker["dictionary"] = dictionary


def _generate(bounds: tuple[int, int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from vault.clock import to_micros

    sealing, dictionary = _worker["sealing"], _worker["dictionary"]
    subjects, indexes = [], []
    now_us = to_micros(T0)
    for n in range(*bounds):
        values = dictionary.normalize(_customer(n), require_all=True, today=T0.date())
        prepared = sealing.prepare_new("acme", "bench", values, now_us)
        subjects.append(prepared.row)
        indexes.extend(prepared.index_rows)
    return subjects, indexes


def populate(data_dir: Path, database_url: str | None, count: int) -> None:
    """Fill the database (runs in a child process; not timed)."""
    from vault.storage.db import create_engine
    from vault.storage.tables import blind_indexes, subjects

    engine = create_engine(_settings(data_dir, database_url, 1).resolved_database_url)
    chunks = [(start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]
    with multiprocessing.Pool(os.cpu_count(), _init_worker, (str(data_dir),)) as pool:
        for subject_rows, index_rows in pool.imap(_generate, chunks):
            with engine.begin() as conn:
                conn.execute(subjects.insert(), subject_rows)
                conn.execute(blind_indexes.insert(), index_rows)
    # Statistics, as a long-lived database has them (PostgreSQL's autovacuum would gather
    # them within a minute; without them the planner sorts every due notice per batch).
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _rss_mb(pid: str = "self") -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _children_rss_mb() -> float:
    """The RSS of this process's live children (the job's batch preparer on SQLite)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                total += _rss_mb(stat.parent.name)
        except (OSError, ValueError, IndexError):
            continue
    return total


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    data_dir: Path, database_url: str | None, count: int, batch_size: int
) -> dict[str, Any]:
    from vault.app import VaultApp

    clock = BenchClock(T0 + timedelta(days=1095 - 30))
    app = VaultApp.open(_settings(data_dir, database_url, batch_size), clock=clock)
    try:
        started = time.perf_counter()
        noticed = app.retention_job.run()
        notice_seconds = time.perf_counter() - started
        clock.current += timedelta(days=31)
        with app.db.engine.begin() as conn:  # the notice period is a month: autovacuum ran
            conn.exec_driver_sql("ANALYZE")
        samples: list[float] = []
        child_samples: list[float] = []
        done = [0]

        def sample(outcome: Outcome, n: int) -> None:
            done[0] += n
            if done[0] % max(count // 10, batch_size) < n:
                samples.append(round(_rss_mb(), 1))
                child_samples.append(round(_children_rss_mb(), 1))

        rss_before = _rss_mb()
        load_before = os.getloadavg()
        cpu_before = _cpu_seconds()
        child_cpu_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        anonymized = app.retention_job.run(progress=sample)
        anonymize_seconds = time.perf_counter() - started
        anonymize_cpu = _cpu_seconds() - cpu_before
        # The batch preparer's (SQLite), counted once the run has waited for it to exit.
        preparer_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - child_cpu_before
        load_after = os.getloadavg()
        rss_after = _rss_mb()
        with app.db.engine.connect() as conn:
            entries = conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
    finally:
        app.close()
    assert noticed.count(Outcome.NOTIFIED) == count, noticed.counts
    assert anonymized.count(Outcome.ANONYMIZED) == count, anonymized.counts
    return {
        "notice_seconds": round(notice_seconds, 2),
        "notices_per_second": round(count / notice_seconds),
        "anonymize_seconds": round(anonymize_seconds, 2),
        "anonymized_per_second": round(count / anonymize_seconds),
        # This process's CPU time (all its threads); with SQLite all database work is in
        # this process and its preparer, PostgreSQL's server is not counted.
        "anonymize_cpu_seconds": round(anonymize_cpu, 2),
        "anonymized_per_cpu_second": round(count / anonymize_cpu),
        # SQLite: the child process that prepares batches (0 on PostgreSQL).
        "preparer_cpu_seconds": round(preparer_cpu, 2),
        "anonymized_per_cpu_second_both": round(count / (anonymize_cpu + preparer_cpu)),
        "preparer_rss_mb_during_anonymization": child_samples,
        "audit_entries": entries,
        "k_anonymity": anonymized.k_anonymity.__dict__,
        "rss_mb_before_anonymization": round(rss_before, 1),
        "rss_mb_during_anonymization": samples,
        "rss_mb_after_anonymization": round(rss_after, 1),
        # The machine's 1/5/15-minute load averages as the anonymization run started and
        # ended: on a shared machine, how many others wanted the same CPUs.
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-size", type=int, default=Settings.model_fields["retention_batch_size"].default
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--populate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.populate:
        populate(args.data_dir, args.database_url, args.count)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        data_dir = Path(tmp)
        settings = _settings(data_dir, args.database_url, args.batch_size)
        key_custody.init_keys(settings)
        _migrate(settings)
        started = time.perf_counter()
        child = [sys.executable, __file__, "--populate", "--data-dir", str(data_dir)]
        child += ["--count", str(args.count)]
        child += ["--database-url", args.database_url] if args.database_url else []
        subprocess.run(child, check=True)
        populate_seconds = time.perf_counter() - started
        result = {
            "benchmark": "retention",
            "database": "postgresql" if args.database_url else "sqlite",
            "subjects": args.count,
            "batch_size": args.batch_size,
            "populate_seconds": round(populate_seconds, 1),
            **measure(data_dir, args.database_url, args.count, args.batch_size),
        }
    print(json.dumps(result))
    return 0


def _migrate(settings: Settings) -> None:
    import audit
    from vault.storage import migrate
    from vault.storage.db import create_engine

    engine = create_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        if sa.inspect(conn).has_table("subjects"):
            found = conn.execute(sa.text("SELECT count(*) FROM subjects")).scalar_one()
            if found:
                raise SystemExit("the database is not empty; give an empty one")
    migrate.upgrade(engine)
    audit.migrate(engine)
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
