"""`customer-vault witness serve` as a separate OS process, for the witness tests."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from audit import CosignatureVerifier
from audit.witness import WitnessClient
from tests.integration.serving import CUSTOMER_VAULT, clean_env

_SERVING = re.compile(r"customer-vault witness (\S+) on 127\.0\.0\.1:(\d+)")
WITNESS_NAME = "witness.test/w1"


@dataclass
class WitnessProcess:
    """A running witness: its URL, its verifier key, and a client configured with both."""

    process: subprocess.Popen[str]
    url: str
    verifier_key: str
    directory: Path

    def client(self) -> WitnessClient:
        return WitnessClient(self.url, CosignatureVerifier.from_verifier_key(self.verifier_key))


@contextmanager
def witness_process(
    directory: Path, log_key: str, address: str = "127.0.0.1:0"
) -> Iterator[WitnessProcess]:
    """Start a witness for the log whose verifier key is `log_key`, in its own directory."""
    log_path = directory.with_suffix(".log")
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                str(CUSTOMER_VAULT),
                "witness",
                "serve",
                "--dir",
                str(directory),
                "--name",
                WITNESS_NAME,
                "--address",
                address,
                "--log-key",
                log_key,
            ],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        found = _SERVING.search(process.stdout.readline())
        watchdog.cancel()
        assert found, f"witness did not start:\n{log_path.read_text()}"
        yield WitnessProcess(
            process, f"http://127.0.0.1:{found.group(2)}", found.group(1), directory
        )
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
