"""Two server processes on one PostgreSQL: a consent change through either one binds the
very next read through the other (no cache anywhere)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.data import ADA
from tests.integration.consent_support import MARKETER, grant, withdraw, withheld
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClient

pytestmark = pytest.mark.postgres

_SERVING = re.compile(r"customer-vault serving on .* \(port (\d+)\)")
# The Typer app itself, so the test does not depend on every optional CLI group.
_SERVE = "from vault.cli.main import app; app(prog_name='customer-vault')"


@pytest.fixture
def first(tmp_path: Path, postgres_url: str) -> Iterator[RunningVault]:
    with running_vault(settings_for(tmp_path / "data", postgres_url)) as running:
        yield running


@pytest.fixture
def second(first: RunningVault, postgres_url: str) -> Iterator[str]:
    """Another OS process serving the same database with the same keys; yields its address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env["VAULT_WORKERS"] = "1"  # one server process: the test is about two of them
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SERVE,
            "serve",
            "--address",
            "127.0.0.1:0",
            "--data-dir",
            str(first.settings.data_dir),
            "--database-url",
            postgres_url,
            "--dev",  # PostgreSQL with the data dir's token key (the tests mint tokens)
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = None
        for line in process.stdout:
            found = _SERVING.search(line)
            if found:
                port = int(found.group(1))
                break
        assert port, f"the second vault did not start (exit code {process.poll()})"
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_consent_withdrawal_through_one_process_binds_the_next_read_through_the_other(
    first: RunningVault, second: str
) -> None:
    service_a = first.client()
    service_b = VaultClient(second, first.token())
    marketer_a = first.client(**MARKETER)
    marketer_b = VaultClient(second, first.token(**MARKETER))
    try:
        subject = service_a.create(ADA).subject_id

        grant(service_a, subject, "marketing")
        assert marketer_b.get(subject, "marketing", "marketing").fields
        withdraw(service_a, subject, "marketing")
        after = marketer_b.get(subject, "marketing", "marketing")
        assert not after.fields and set(withheld(after).values()) == {"consent"}

        grant(service_b, subject, "marketing")
        assert marketer_a.get(subject, "marketing", "marketing").fields
        withdraw(service_b, subject, "marketing")
        assert not marketer_a.get(subject, "marketing", "marketing").fields
    finally:
        service_b.__exit__(None, None, None)
        marketer_b.__exit__(None, None, None)
