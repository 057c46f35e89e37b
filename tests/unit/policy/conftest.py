"""Fixtures for the policy tests: an engine over the real files, a writable copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.policy.helpers import POLICIES, copy_policies
from vault.policy import PolicyEngine


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    """An engine over the real `policies/` folder (shared: its caches are the point)."""
    return PolicyEngine.from_dir(POLICIES)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A writable copy of `policies/` for tests that edit files."""
    return copy_policies(tmp_path / "policies")
