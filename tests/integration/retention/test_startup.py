"""A bad retention rule stops the vault at start-up, naming the file and the line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.harness import settings_for
from vault.app import VaultApp
from vault.retention.rules import RetentionRulesError

BAD = """\
version: 1
tenants: [acme, globex]
rules:
  - tenant: "*"
    anonymize_after_days: 1095
    notice_days: 30
  - tenant: initech
    anonymize_after_days: 365
    notice_days: 30
"""


@pytest.fixture
def bad_policies(tmp_path: Path) -> Path:
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    (policies / "retention.yaml").write_text(BAD)
    return policies


def test_the_vault_refuses_to_start_on_a_bad_rule(tmp_path: Path, bad_policies: Path) -> None:
    settings = settings_for(tmp_path / "data", None, policies_dir=bad_policies)
    with pytest.raises(RetentionRulesError) as caught:
        VaultApp.open(settings)
    assert caught.value.message == (
        "retention.yaml:7: rule: unknown tenant 'initech' (not under 'tenants', and not '*')"
    )


def test_the_one_shot_command_says_which_line_is_wrong(tmp_path: Path, bad_policies: Path) -> None:
    cli = Path(sys.executable).with_name("customer-vault")
    flags = ["--data-dir", str(tmp_path / "data"), "--policies-dir", str(bad_policies)]
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [str(cli), "retention", "run", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "retention.yaml:7" in done.stderr and "initech" in done.stderr
