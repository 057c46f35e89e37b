"""Server processes started by the benchmark: wait for their port, watch RSS, stop them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
_PORT = re.compile(r"port (\d+)")


class ServerProcess:
    """A child process that prints ``... port N`` on stdout once it serves."""

    def __init__(
        self, argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env={**os.environ, **(env or {})},
            text=True,
        )
        self.port = self._wait_for_port(timeout=90)
        self._drain = threading.Thread(target=self._discard_stdout, daemon=True)
        self._drain.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _wait_for_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = _PORT.search(line)
            if match:
                return int(match.group(1))
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.argv[:3]} did not start; its log ends with:\n{tail}")

    def _discard_stdout(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def rss_mib(self) -> float:
        """Resident set size now, in MiB."""
        # psutil (the bench extra) is imported here, not at the top, so the soak and
        # its test can start servers with the dev extra alone.
        import psutil

        try:
            return psutil.Process(self.pid).memory_info().rss / 2**20
        except psutil.Error:
            return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        import psutil

        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return float("nan")
        return times.user + times.system

    def tree_cpu_seconds(self) -> float:
        """User + system CPU time of the process and all its descendants now alive (the
        worker processes of `serve --workers N`)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            return float("nan")
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        drain = getattr(self, "_drain", None)  # absent when the server never started
        if drain is not None:
            drain.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def echo_server(log: Path) -> ServerProcess:
    return ServerProcess([sys.executable, "benchmarks/echo_server.py", "--port", "0"], log=log)


def floor_server(data_dir: Path, database_url: str | None, log: Path) -> ServerProcess:
    """`floor_server.py` (echo + token check + one durable insert) over the vault's keys
    in `data_dir`, writing to `database_url` (default: a SQLite file in `data_dir`)."""
    argv = [
        sys.executable,
        "benchmarks/floor_server.py",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        argv += ["--database-url", database_url]
    return ServerProcess(argv, log=log)


def vault_cli(*args: str, timeout: float = 120) -> str:
    """Run `customer-vault ARGS` and return its stdout (raises on failure)."""
    done = subprocess.run(
        [str(VENV_BIN / "customer-vault"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"customer-vault {args[0]} failed: {done.stderr[-2000:]}")
    return done.stdout


def vault_server(
    data_dir: Path, database_url: str | None, log: Path, workers: int = 1
) -> ServerProcess:
    """`customer-vault serve --workers N` on a free loopback port (keys, schema prepared
    first). One worker unless asked: the per-call figures are one process's."""
    vault_cli("keys", "init", "--data-dir", str(data_dir))
    argv = [
        str(VENV_BIN / "customer-vault"),
        "serve",
        "--workers",
        str(workers),
        "--address",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        vault_cli("migrate", "--data-dir", str(data_dir), "--database-url", database_url)
        # PostgreSQL with the data dir's own token key: a development setup (--dev).
        argv += ["--database-url", database_url, "--dev"]
    # Benchmarks and the soak measure throughput from a handful of principals; the
    # per-principal abuse budgets (search, erasure: docs/security.md) would measure
    # themselves instead, so they are off here. A configured controller (receipts name
    # it), so `serve` has no placeholder to warn of.
    env = {
        "VAULT_SEARCH_RATE_PER_MINUTE": "0",
        "VAULT_ERASE_RATE_PER_MINUTE": "0",
        "VAULT_CONSENT_CONTROLLER": "Soak Test Shop Ltd",
        "VAULT_CONSENT_CONTROLLER_CONTACT": "privacy@soak.example",
        "VAULT_CONSENT_POLICY_URL": "https://soak.example/privacy",
    }
    return ServerProcess(argv, log=log, env=env)
