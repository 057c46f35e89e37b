"""What the soak checks besides the calls themselves: the server's memory, what it
stored, its log, its exit on SIGTERM and its audit log."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from procs import VENV_BIN, ServerProcess
from soak_traffic import FIELD_NAMES

from vault.api.client import VaultClient, VaultClientError
from vault.config import Settings

GRACE_SECONDS = 15.0
"""The server's default shutdown grace: SIGTERM must end it within this plus 15 s."""


@dataclass
class RssSampler:
    """Reads VmRSS and RssAnon of one process from /proc every `interval` seconds."""

    pid: int
    interval: float = 1.0
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> tuple[float, float] | None:
        """(VmRSS, RssAnon) in MiB now, or None once the process is gone."""
        values: dict[str, float] = {}
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    name, _, rest = line.partition(":")
                    if name in ("VmRSS", "RssAnon"):
                        values[name] = int(rest.split()[0]) / 1024  # kB -> MiB
        except OSError:
            return None
        return values.get("VmRSS", float("nan")), values.get("RssAnon", float("nan"))

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.read()
            if now is not None:
                self.samples.append((time.monotonic(), *now))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def window(self, start: float, end: float) -> list[tuple[float, float, float]]:
        return [s for s in self.samples if start <= s[0] <= end]


@dataclass
class Verification:
    """What the run left behind: checked after the traffic, before and after SIGTERM."""

    acknowledged: int = 0
    erased: int = 0
    missing: int = 0
    unacknowledged: int = 0
    incomplete: int = 0
    erased_readable: int = 0
    server_exit_code: int | None = None
    audit_verified: bool = False
    audit_output: str = ""
    server_log_problems: dict[str, int] = field(default_factory=dict)


_LOG_PROBLEM = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (\S+)")


def server_log_problems(log: Path) -> dict[str, int]:
    """Warnings, errors and tracebacks in the server's log, counted by level and logger
    (the messages are not copied: the report holds no server text)."""
    problems: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        found = _LOG_PROBLEM.match(line)
        if found:
            problems[f"{found.group(1)} {found.group(2)}"] += 1
        elif line.startswith("Traceback"):
            problems["Traceback"] += 1
    return dict(problems)


def check_stored(
    address: str, dpo_token: str, created: set[str], erased: set[str], v: Verification
) -> None:
    """Every acknowledged create that was not erased is exported with all its fields
    in clear (so it decrypts); nothing else is; erased subjects refuse a read."""
    v.acknowledged, v.erased = len(created), len(erased)
    expected = created - erased
    exported: set[str] = set()
    with VaultClient(address, dpo_token, timeout=600) as dpo:
        for view in dpo.export("full", "data_subject_request", "DSR-1"):
            exported.add(view.meta.subject_id)
            if set(view.fields) != set(FIELD_NAMES) or view.withheld:
                v.incomplete += 1
        for subject in sorted(erased)[:100]:
            try:
                dpo.get(subject, "full", "data_subject_request", "DSR-1")
                v.erased_readable += 1
            except VaultClientError as exc:
                if exc.code != "FAILED_PRECONDITION":
                    v.erased_readable += 1
    v.missing = len(expected - exported)
    v.unacknowledged = len(exported - expected)


def stop_server(server: ServerProcess) -> int | None:
    """SIGTERM and the exit code (None when it did not exit within the grace + 15 s)."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = server.proc.wait(GRACE_SECONDS + 15)
    except subprocess.TimeoutExpired:
        code = None
    server.stop()  # kills it if it is still there, closes the log
    return code


def audit_verify(data_dir: Path, database_url: str | None) -> tuple[bool, str]:
    url = database_url or f"sqlite:///{(data_dir / 'vault.db').resolve()}"
    public_key = Settings(data_dir=data_dir).audit_public_key
    done = subprocess.run(
        [
            str(VENV_BIN / "customer-vault"),
            "audit",
            "verify",
            "--public-key",
            str(public_key),
            "--database-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, lines[-1] if lines else ""


def rss_summary(sampler: RssSampler, start: float, end: float) -> dict[str, float]:
    window = sampler.window(start, end)
    if len(window) < 2:
        return {}
    t0 = window[0][0]
    xs = [(t - t0) / 60 for t, _, _ in window]
    ys = [rss for _, rss, _ in window]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return {
        "start": round(ys[0], 1),
        "end": round(ys[-1], 1),
        "max": round(max(ys), 1),
        "growth": round(ys[-1] - ys[0], 1),
        "slope_mib_per_min": round(slope, 2),
        "anon_start": round(window[0][2], 1),
        "anon_end": round(window[-1][2], 1),
        "samples": len(window),
    }
