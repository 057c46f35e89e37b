"""The CLI starts fast because a client command imports only what it needs: no
SQLAlchemy, Casbin, OpenTelemetry SDK or cryptography (the figures are in
docs/performance.md; this is the behaviour behind them, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "casbin", "opentelemetry.sdk", "cryptography", "vault.app", "vault.api")

_PROBE = """
import json, sys
from typer.testing import CliRunner
from vault.cli.main import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"exit": result.exit_code, "modules": sorted(sys.modules)}))
"""


def _modules_after(*args: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "CUSTOMER_VAULT_TIMEOUT": "0.5"},
    )
    report = json.loads(done.stdout.splitlines()[-1])
    return report["exit"], set(report["modules"])


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY)}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["subjects", "--help"],
        ["subjects", "get", "--help"],
        ["consent", "status", "--help"],
        ["retention", "holds", "--help"],
    ],
)
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    code, modules = _modules_after(*args)
    assert code == 0
    assert _heavy(modules) == set()


def test_a_client_command_that_runs_imports_the_slim_client_only() -> None:
    # Port 9 on loopback refuses: the call runs end to end and fails UNAVAILABLE.
    code, modules = _modules_after(
        "subjects", "get", "sub_x", "--token", "t", "--address", "127.0.0.1:9"
    )
    assert code == 1
    assert "customer_vault_client" in modules and "grpc" in modules
    assert _heavy(modules) == set()


def test_shell_completion_reaches_into_the_lazy_groups() -> None:
    # What bash's completion function (`customer-vault --install-completion`) asks.
    done = subprocess.run(
        [sys.executable, "-c", "from vault.cli.main import main; main()"],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "_CUSTOMER_VAULT_COMPLETE": "complete_bash",
            "COMP_WORDS": "customer-vault subjects to",
            "COMP_CWORD": "2",
        },
    )
    assert done.stdout.split() == ["tokenize"], done.stdout + done.stderr
