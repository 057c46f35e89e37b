"""Fixtures for the crypto unit tests: real key documents, providers and key rings."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from vault.crypto import EnvKeyProvider, KeyRing, LocalKeyFileProvider, generate_key_document


@pytest.fixture
def key_document() -> str:
    """A freshly generated key document (JSON text)."""
    return generate_key_document()


@pytest.fixture
def ring(key_document: str) -> KeyRing:
    """A key ring over an environment provider with fresh keys."""
    return KeyRing(EnvKeyProvider(key_document))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """Where `master.json` goes under a fresh data dir (not created yet)."""
    return tmp_path / "data" / "keys" / "master.json"


@pytest.fixture
def file_provider(key_file: Path) -> LocalKeyFileProvider:
    """A local key-file provider over a newly created key file."""
    return LocalKeyFileProvider.create(key_file)


def secret_spellings(document: str) -> list[str]:
    """Every key and root secret of `document` as base64, hex and Python bytes repr.

    Tests assert that none of these ever shows up in a message or a repr.
    """
    raw = json.loads(document)
    roots = [v for s in raw["root_secrets"].values() for v in s["versions"].values()]
    encoded = [*raw["keks"].values(), *roots]
    spellings: list[str] = []
    for value in encoded:
        data = base64.b64decode(value)
        spellings += [value, data.hex(), repr(data)[2:-1], value[:12]]
    return spellings


def assert_no_secrets(text: str, document: str) -> None:
    for spelling in secret_spellings(document):
        assert spelling not in text
