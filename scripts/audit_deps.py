"""Audit the locked dependencies against an advisory database (`make audit-deps`).

Runs pip-audit on each lock file as it is (`--disable-pip`: no resolution, every pinned
and hashed requirement is looked up as written) and ends in one of four ways:

- exit 0: every dependency was looked up and none has a known vulnerability;
- exit 1: a dependency has a known vulnerability (always a failure, offline or not);
- exit 3: the advisory database could not be reached, or some dependency could not be
  looked up: a loud ``WARNING: advisory database unreachable: dependencies NOT audited``
  line, and a failure unless ``AUDIT_DEPS_OFFLINE=allow`` is set, which keeps the
  warning and exits 0 (for a runner known to be cut off from the database; `.ci/run`);
- exit 2: pip-audit itself failed for another reason (its output is shown).

pip-audit alone would pass silently here: when the PyPI JSON API answers 404 it
"skips" every dependency and still reports "No known vulnerabilities found", exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

OK, VULNERABLE, FAILED, NOT_AUDITED = 0, 1, 2, 3
OFFLINE_OVERRIDE = "AUDIT_DEPS_OFFLINE"
UNREACHABLE = "WARNING: advisory database unreachable: dependencies NOT audited"
# What requests and urllib3 say when the service cannot be reached at all.
_NETWORK_FAILURES = (
    "ConnectionError",
    "ProxyError",
    "ConnectTimeout",
    "ReadTimeout",
    "NameResolutionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
)


@dataclass
class Audit:
    """What pip-audit found in one lock file."""

    lock: str
    audited: list[str] = field(default_factory=list)
    vulnerable: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    unreachable: str = ""


def parse_report(lock: str, report: dict[str, object]) -> Audit:
    """Sort pip-audit's JSON report (`-f json`) into audited, vulnerable and skipped."""
    audit = Audit(lock)
    dependencies = report.get("dependencies", [])
    assert isinstance(dependencies, list)
    for dependency in dependencies:
        version = dependency.get("version")
        name = f"{dependency['name']}=={version}" if version else str(dependency["name"])
        if "skip_reason" in dependency:
            audit.skipped[name] = str(dependency["skip_reason"])
        elif dependency.get("vulns"):
            audit.vulnerable[name] = [str(v["id"]) for v in dependency["vulns"]]
        else:
            audit.audited.append(name)
    return audit


def run_pip_audit(lock: Path, service: str, timeout: int, cache_dir: Path | None) -> Audit:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock),
        "--require-hashes",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--vulnerability-service",
        service,
        "--timeout",
        str(timeout),
        *(["--cache-dir", str(cache_dir)] if cache_dir else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    if isinstance(report, dict):
        return parse_report(str(lock), report)
    if any(marker in done.stderr for marker in _NETWORK_FAILURES):
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        return Audit(str(lock), unreachable=last[:300])
    raise RuntimeError(f"pip-audit failed on {lock} (exit {done.returncode}):\n{done.stderr}")


def verdict(audits: Sequence[Audit], *, offline_allowed: bool) -> tuple[int, list[str]]:
    """The exit code and the lines to print for these audits."""
    lines: list[str] = []
    vulnerable = not_audited = False
    for audit in audits:
        total = len(audit.audited) + len(audit.vulnerable) + len(audit.skipped)
        if audit.unreachable:
            not_audited = True
            lines.append(f"{audit.lock}: not audited: {audit.unreachable}")
            continue
        lines.append(
            f"{audit.lock}: {len(audit.audited) + len(audit.vulnerable)} of {total} "
            f"dependencies audited, {len(audit.vulnerable)} with known vulnerabilities"
        )
        for name, ids in sorted(audit.vulnerable.items()):
            vulnerable = True
            lines.append(f"  VULNERABLE {name}: {', '.join(ids)}")
        if audit.skipped:
            not_audited = True
            if len(audit.skipped) == total:
                example = next(iter(audit.skipped.values()))
                lines.append(f"  none could be looked up, e.g. {example}")
            else:
                lines += [f"  not audited {n}: {r}" for n, r in sorted(audit.skipped.items())]
    if vulnerable:
        lines.append("FAILED: upgrade the vulnerable dependencies (`make lock`) or justify each")
        return VULNERABLE, lines
    if not_audited:
        lines.append(UNREACHABLE)
        if offline_allowed:
            lines.append(f"({OFFLINE_OVERRIDE}=allow is set: not failing for that)")
            return OK, lines
        lines.append(f"set {OFFLINE_OVERRIDE}=allow to accept an unaudited run explicitly")
        return NOT_AUDITED, lines
    lines.append("no known vulnerabilities in the locked dependencies")
    return OK, lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path, help="hashed lock files")
    parser.add_argument("--service", default="pypi", choices=("pypi", "osv"))
    parser.add_argument("--timeout", type=int, default=15, help="seconds per request")
    parser.add_argument("--cache-dir", type=Path, help="pip-audit's HTTP cache")
    args = parser.parse_args(argv)
    try:
        audits = [
            run_pip_audit(lock, args.service, args.timeout, args.cache_dir) for lock in args.locks
        ]
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return FAILED
    offline_allowed = os.environ.get(OFFLINE_OVERRIDE, "") == "allow"
    code, lines = verdict(audits, offline_allowed=offline_allowed)
    for line in lines:
        print(line, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
