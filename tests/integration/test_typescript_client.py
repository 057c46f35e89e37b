"""The TypeScript client (clients/typescript) against a running vault: node's test runner
runs its tests (and its example) with the vault's address and tokens in the environment.

Needs the client built: `make clients-ts` (npm ci from the lock, then tsc), which
`make test` and `make check` do first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.integration.harness import RunningVault

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
AGENT = {"principal": "agent-1", "roles": ("support_agent",)}


def test_the_typescript_client_against_a_running_vault(sqlite_vault: RunningVault) -> None:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the TypeScript client's tests"
    built = CLIENT / "dist" / "test" / "client.test.js"
    assert built.exists(), "the TypeScript client is not built: run `make clients-ts`"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CUSTOMER_VAULT_ADDR": sqlite_vault.address,
        "CUSTOMER_VAULT_TOKEN": sqlite_vault.token(),
        "CUSTOMER_VAULT_READER_TOKEN": sqlite_vault.token(**AGENT),  # type: ignore[arg-type]
    }
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(built)],
        cwd=CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout or "fail 0" in done.stdout, done.stdout
