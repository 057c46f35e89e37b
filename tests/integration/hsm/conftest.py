"""A fresh SoftHSM2 token per test (tests/softhsm.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.softhsm import SoftHsmToken, new_token


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsmToken:
    return new_token(tmp_path / "softhsm", monkeypatch)
