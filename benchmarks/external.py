"""The benchmarks other engineers own, run as subprocesses and read back.

- `bench_policy.py` (policy decision cost with 1,000 lines) prints text lines;
- `bench_audit.py` (verification of a large log) prints one JSON line with
  `entries_per_second` and `entries_per_cpu_second`; it takes `--database-url`;
- `bench_retention.py` (dormant-subject anonymization) prints one JSON line with
  `anonymized_per_second`, `peak_rss_mb` and `rss_mb_during_anonymization`; its size
  flag (`--count`) and `--database-url` are found in its `--help`.

- `bench_workers.py` (masked gets against `serve --workers 1` and `2`, from h2load when
  it is installed, then batch creates from concurrent clients on the same servers)
  prints one JSON line with `ratio_to_one_worker` and each run's `batch_create`; it
  takes `--database-url` and `--workers`.

A script that is missing, fails or prints nothing readable is reported as not available,
with the tail of its output kept in the JSON results.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import REPO
from report import Results

from audit.cpus import usable_cpus

GROUP = "owned benchmarks (subprocess)"
# The lines of bench_policy.py that time one warm-cache decision (allowed, and mixed).
_CACHED_DECISIONS = ("engine.authorize, cached, allowed", "engine.decide, cached, mixed")
_POLICY_LINE = re.compile(r"^(?P<label>[^:]+):\s+(?P<value>[\d.]+)\s+(?P<unit>\S+)")


def _script(name: str) -> Path:
    return REPO / "benchmarks" / name


def _run(argv: list[str], timeout: float) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return -1, out, f"timed out after {timeout:.0f} s", time.perf_counter() - started
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def _help(script: Path) -> str:
    code, out, err, _ = _run([str(script), "--help"], timeout=60)
    return out + err if code == 0 else ""


def _json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                found.append(doc)
    return found


def policy(results: Results, raw: dict[str, Any]) -> None:
    script = _script("bench_policy.py")
    if not script.exists():
        results.not_available("policy decision cost (benchmarks/bench_policy.py is missing)")
        results.target("policy decision, 1,000 lines", "-", None, 50, "us", at_most=True)
        return
    code, out, err, seconds = _run([str(script)], timeout=600)
    raw["policy"] = {"returncode": code, "stdout": out, "stderr": err[-2000:], "seconds": seconds}
    figures = {}
    for line in out.splitlines():
        match = _POLICY_LINE.match(line)
        if match:
            figures[match["label"].strip()] = (float(match["value"]), match["unit"])
    cached = [v for k, (v, _) in figures.items() if k.startswith(_CACHED_DECISIONS)]
    if code != 0 or not cached:
        results.not_available(f"policy decision cost (bench_policy.py exited {code})")
        results.target("policy decision, 1,000 lines", "-", None, 50, "us", at_most=True)
        return
    for label, (value, unit) in figures.items():
        if unit.startswith(("us", "ms")):
            results.add(GROUP, f"policy: {label}", None, value, unit.split("/")[0])
    worst = max(cached)
    results.target("policy decision, 1,000 lines (cached)", "-", worst, 50, "us", at_most=True)
    miss = next((v for k, (v, _) in figures.items() if k.startswith("engine cache miss")), None)
    if miss is not None:
        results.target("policy decision, 1,000 lines (cache miss)", "-", miss, 50, "us",
                       at_most=True)  # fmt: skip


def audit(
    results: Results, raw: dict[str, Any], entries: int, database_urls: dict[str, str]
) -> None:
    """bench_audit.py on SQLite and, given its URL, on PostgreSQL: entries/s of wall-clock
    time (the target) and per second of the verifier's CPU time."""
    script = _script("bench_audit.py")
    if not script.exists():
        results.not_available("audit verification (benchmarks/bench_audit.py is missing)")
        results.target("audit verification", "sqlite", None, 200_000, "entries/s")
        return
    # Three verifications each way, the medians reported: one run of 5 s moves with the host.
    base = [str(script), "--entries", str(entries), "--repeat", "3"]
    runs = [("sqlite", base)]
    if "postgresql" in database_urls:
        runs.append(("postgresql", [*base, "--database-url", database_urls["postgresql"]]))
    raw["audit"] = []
    for db, argv in runs:
        code, out, err, seconds = _run(argv, timeout=1800)
        raw["audit"].append(
            {"database": db, "argv": argv[1:], "returncode": code, "stdout": out,
             "stderr": err[-2000:], "seconds": seconds}
        )  # fmt: skip
        docs = [d for d in _json_lines(out) if "entries_per_second" in d]
        if code != 0 or not docs:
            results.not_available(f"audit verification on {db} (bench_audit.py exited {code})")
            results.target("audit verification", db, None, 200_000, "entries/s")
            continue
        doc = docs[-1]
        how = "in one process; "
        if doc.get("workers", 1) > 1:
            alone = doc.get("one_process_entries_per_second")
            alone_text = f"{alone:,}" if isinstance(alone, int | float) else "?"
            how = f"{doc['workers']} worker processes; one process: {alone_text} entries/s; "
        note = (
            f"{how}{doc.get('entries', 0):,} entries, {doc.get('checkpoints', '?')} checkpoints, "
            f"verify {doc.get('verify_seconds')} s, {doc.get('verify_cpu_seconds')} s CPU "
            f"(build {doc.get('build_seconds')} s); ok={doc.get('ok')}"
        )
        results.add(GROUP, "audit: verify the whole log", db, doc["entries_per_second"],
                    "entries/s", note, **doc)  # fmt: skip
        per_cpu = doc.get("entries_per_cpu_second")
        if per_cpu is not None:
            cpu_note = "the verifier's and its workers' CPU time"
            if (with_server := doc.get("entries_per_cpu_second_with_server")) is not None:
                cpu_note += f"; {with_server:,}/CPU-s counting the database server's too"
            results.add(GROUP, "audit: verify the whole log, per CPU-second", db, per_cpu,
                        "entries/CPU-s", cpu_note)  # fmt: skip
        results.target("audit verification", db, doc["entries_per_second"], 200_000, "entries/s")


def retention(
    results: Results, raw: dict[str, Any], subjects: int, database_urls: dict[str, str]
) -> None:
    script = _script("bench_retention.py")
    if not script.exists():
        results.not_available("anonymization (benchmarks/bench_retention.py is missing)")
        results.target("anonymization", "-", None, 10_000, "subjects/s")
        return
    usage = _help(script)
    runs: list[tuple[str, list[str]]] = []
    base = [str(script)]
    for flag in ("--count", "--subjects"):
        if flag in usage:
            base += [flag, str(subjects)]
            break
    runs.append(("sqlite", base))
    if "--database-url" in usage and "postgresql" in database_urls:
        runs.append(("postgresql", [*base, "--database-url", database_urls["postgresql"]]))
    raw["retention"] = []
    for db, argv in runs:
        code, out, err, seconds = _run(argv, timeout=1800)
        raw["retention"].append(
            {"database": db, "argv": argv[1:], "returncode": code, "stdout": out[-4000:],
             "stderr": err[-2000:], "seconds": seconds}
        )  # fmt: skip
        docs = [d for d in _json_lines(out) if _rate(d) is not None]
        if code != 0 or not docs:
            results.not_available(f"anonymization on {db} (bench_retention.py exited {code})")
            results.target("anonymization", db, None, 10_000, "subjects/s")
            continue
        doc = docs[-1]
        reported = str(doc.get("database", db))
        rss = _rss(doc)
        note = f"{doc.get('subjects', subjects):,} subjects"
        if rss is not None:
            note += f"; peak RSS {rss:,.0f} MiB"
        during = doc.get("rss_mb_during_anonymization")
        if isinstance(during, list) and during:
            note += f" (RSS during the run {min(during):,.0f}-{max(during):,.0f} MiB)"
        results.add(GROUP, "retention: anonymize dormant subjects", reported, _rate(doc),
                    "subjects/s", note, **doc)  # fmt: skip
        results.target("anonymization", reported, _rate(doc), 10_000, "subjects/s")


def _rate(doc: dict[str, Any]) -> float | None:
    for key in ("subjects_per_second", "anonymized_per_second", "per_second"):
        value = doc.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _rss(doc: dict[str, Any]) -> float | None:
    for key in ("peak_rss_mib", "peak_rss_mb", "max_rss_mib", "max_rss_mb"):
        value = doc.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def workers(results: Results, raw: dict[str, Any], urls: dict[str, str]) -> None:
    """bench_workers.py on SQLite and, given its URL, on PostgreSQL: masked gets/s of
    `serve --workers 2` against `--workers 1`, the same load on both; and batch creates
    from concurrent clients with `--workers` at the machine's cores (DESIGN's target)."""
    script = _script("bench_workers.py")
    cores = usable_cpus()
    counts = sorted({1, 2, cores})
    raw["workers"] = []
    for db in ("sqlite", *urls):
        argv = [str(script), "--seconds", "8", "--workers", *map(str, counts)]
        if db in urls:
            argv += ["--database-url", urls[db]]
        code, out, err, seconds = _run(argv, timeout=1200)
        raw["workers"].append({"database": db, "returncode": code, "stdout": out[-4000:],
                               "stderr": err[-2000:], "seconds": seconds})  # fmt: skip
        docs = _json_lines(out)
        doc = docs[-1] if code == 0 and docs else {}
        runs = doc.get("runs", {})
        ratio = doc.get("ratio_to_one_worker", {}).get("2")
        if ratio is None:
            results.not_available(
                f"--workers 2 / --workers 1 on {db} (bench_workers.py exited {code})"
            )
            results.target("--workers 2 / --workers 1, masked gets", db, None, 1.6, "x")
        else:
            one, two = runs["1"], runs["2"]
            note = (
                f"load from {doc['client']} ({max(two['client_cores']):.2f} cores at most); "
                f"server cores busy {one['server_cores']:.2f} / {two['server_cores']:.2f}"
            )
            for count, run in (("1", one), ("2", two)):
                label = f"serve --workers {count}: masked gets, 16 in flight"
                results.add(GROUP, label, db, run["calls_per_second"], "calls/s",
                            note if count == "2" else "")  # fmt: skip
            results.target("--workers 2 / --workers 1, masked gets", db, ratio, 1.6, "x")
        _batch_create(results, db, runs, cores)


def _batch_create(results: Results, db: str, runs: dict[str, Any], cores: int) -> None:
    """The batch-create rows of bench_workers.py's runs, and DESIGN's two targets for it
    (subjects/s and server CPU per subject), read at `--workers` = the machine's cores."""
    for count, run in sorted(runs.items(), key=lambda item: int(item[0])):
        batch = run.get("batch_create")
        if batch:
            results.add(
                GROUP, f"serve --workers {count}: batch create, concurrent clients", db,
                batch["subjects_per_second"], "subjects/s",
                f"server CPU {batch['server_cpu_us_per_subject']:.0f} us/subject; "
                f"{len(batch['client_cores'])} clients, calls of {batch['batch_size']:,}",
            )  # fmt: skip
    at_cores = runs.get(str(cores), {}).get("batch_create")
    if at_cores is None:
        results.not_available(f"batch create with --workers {cores} on {db}")
    required = 25_000 if db == "sqlite" else 15_000
    name = f"batch create, --workers {cores} (the cores)"
    rate = at_cores["subjects_per_second"] if at_cores else None
    cpu = at_cores["server_cpu_us_per_subject"] if at_cores else None
    results.target(name, db, rate, required, "subjects/s")
    results.target("batch create server CPU per subject", db, cpu, 60, "us", at_most=True)
