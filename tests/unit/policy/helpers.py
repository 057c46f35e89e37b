"""Shared helpers for the policy tests: the real policy files, principals, the fields."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import MappingProxyType

from tests.conftest import REPO_ROOT
from vault.policy.sources import POLICY_FILE, POLICY_FILES, content_version
from vault.policy.state import EngineState
from vault.principal import Principal

POLICIES = REPO_ROOT / "policies"


def who(*roles: str, tenant: str = "acme", **attributes: str) -> Principal:
    """A principal of `tenant` holding `roles` with string `attributes`."""
    return Principal("caller-1", tenant, frozenset(roles), MappingProxyType(dict(attributes)))


def real_texts() -> dict[str, str]:
    """The four real policy files' texts by file name."""
    return {name: (POLICIES / name).read_text(encoding="utf-8") for name in POLICY_FILES}


def state_for(policy: str) -> EngineState:
    """An engine state over the real model, purposes and views, with `policy` as the CSV."""
    texts = real_texts()
    texts[POLICY_FILE] = policy
    return EngineState(texts, content_version(texts.items()))


def copy_policies(destination: Path) -> Path:
    """A writable copy of the real policy folder."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in POLICY_FILES:
        shutil.copyfile(POLICIES / name, destination / name)
    return destination
