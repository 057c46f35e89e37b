"""docs/operations.md documents every setting there is, and only those."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT
from tests.deploy.manifests import setting_env_names

OPERATIONS = REPO_ROOT / "docs" / "operations.md"


def test_every_setting_is_documented() -> None:
    text = OPERATIONS.read_text()
    assert sorted(n for n in setting_env_names() if f"`{n}`" not in text) == []


def test_every_documented_vault_variable_is_a_setting() -> None:
    named = set(re.findall(r"`(VAULT_[A-Z_]+)`", OPERATIONS.read_text()))
    assert named - setting_env_names() == set()
