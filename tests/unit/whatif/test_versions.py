"""The engine tells a listener every policy it puts in force (what `PolicyVersions`
keeps); an engine built from texts decides exactly as one built from the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.policy.helpers import copy_policies, real_texts
from vault.policy import PolicyConfigError, PolicyEngine
from vault.policy.sources import POLICY_FILE, VIEWS_FILE

EXTRA = "p, auditor, *, audit:read, *, *, 0, *, allow\n"


def test_a_listener_hears_the_policy_in_force_and_each_new_one(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    engine = PolicyEngine.from_dir(folder)
    heard: list[tuple[str, str]] = []
    engine.on_version(lambda version, files: heard.append((version, files[POLICY_FILE])))

    def broken(version: str, files: object) -> None:
        raise RuntimeError("storage down")

    engine.on_version(broken)  # a failing listener never stops a reload
    assert heard == [(engine.version, real_texts()[POLICY_FILE])]
    assert engine.reload() is False  # unchanged: nothing new to hear
    (folder / POLICY_FILE).write_text(real_texts()[POLICY_FILE] + EXTRA, encoding="utf-8")
    assert engine.reload() is True
    assert [v for v, _ in heard] == [heard[0][0], engine.version]
    assert heard[-1][1].endswith(EXTRA)


def test_an_engine_from_texts_is_the_engine_from_the_same_files(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    on_disk, in_memory = PolicyEngine.from_dir(folder), PolicyEngine.from_texts(real_texts())
    assert in_memory.version == on_disk.version
    assert dict(in_memory.texts) == dict(on_disk.texts)
    with pytest.raises(PolicyConfigError) as missing:
        PolicyEngine.from_texts({k: v for k, v in real_texts().items() if k != VIEWS_FILE})
    assert missing.value.file == VIEWS_FILE
