"""`customer-vault` as a separate OS process, started the way a container starts it (its
in-process twin is `vault.testing.running_vault`, on the same start-up path)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from vault.config import Settings
from vault.principal import Principal
from vault.testing import token_issuer

CUSTOMER_VAULT = Path(sys.executable).with_name("customer-vault")
"""The console script pip installed: what the container's entrypoint runs."""
_SERVING = re.compile(r"customer-vault serving on .* \(port (\d+)[,)]")
_STRAY = ("VAULT_", "OTEL_")


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any VAULT_/OTEL_ setting, plus one server
    process (`VAULT_WORKERS=1`: a test that wants more says so) and `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRAY)}
    env["VAULT_WORKERS"] = "1"
    env.update(overrides)
    return env


def run_cli(args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one `customer-vault` command to completion (output captured, not checked)."""
    return subprocess.run(  # noqa: PLW1510 - callers check the code and the output
        [str(CUSTOMER_VAULT), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class ServeProcess:
    """A running `customer-vault serve` whose stderr (its log) goes to `log_path`."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM, then wait up to `timeout` s: (exit code or None, seconds taken)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started


@contextmanager
def serving(
    args: Sequence[str], env: Mapping[str, str], log_path: Path, startup_timeout: float = 60.0
) -> Iterator[ServeProcess]:
    """Start `customer-vault serve ARGS`, wait for its "serving on" line, yield it, and
    make sure it is gone afterwards."""
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(CUSTOMER_VAULT), "serve", *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    watchdog = threading.Timer(startup_timeout, process.kill)
    watchdog.start()
    try:
        port = _wait_for_port(process)
        watchdog.cancel()
        assert port, f"serve did not start (exit code {process.poll()}):\n{log_path.read_text()}"
        yield ServeProcess(process, port, log_path)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _wait_for_port(process: subprocess.Popen[str]) -> int | None:
    assert process.stdout is not None
    for line in process.stdout:
        found = _SERVING.search(line)
        if found:
            return int(found.group(1))
    return None


def token_for(
    data_dir: Path,
    principal: str = "order-service",
    roles: tuple[str, ...] = ("service",),
    tenant: str = "acme",
    **attributes: str,
) -> str:
    """A bearer token signed with the development key under `data_dir`."""
    issuer = token_issuer(Settings(data_dir=data_dir))
    who = Principal(principal, tenant, frozenset(roles), MappingProxyType(dict(attributes)))
    return issuer.issue(who, timedelta(minutes=30))
