"""Fixtures for the audit unit tests: a fresh signing key per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.checkpoint import CheckpointSigner
from audit.signing_keys import generate_signing_key


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    generate_signing_key(private, public)
    return private, public


@pytest.fixture
def signer(key_files: tuple[Path, Path]) -> CheckpointSigner:
    return CheckpointSigner(key_files[0].read_bytes(), "audit.example.com")
