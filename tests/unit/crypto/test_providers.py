"""Key documents and the local-file and environment key providers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.unit.crypto.conftest import assert_no_secrets
from vault.crypto import (
    EnvKeyProvider,
    KeyMaterialError,
    KeyRing,
    LocalKeyFileProvider,
    generate_key_document,
)
from vault.errors import DecryptionError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_document_shape(key_document: str) -> None:
    raw = json.loads(key_document)
    assert raw["format"] == 2
    assert raw["active_kek"] == 1
    assert set(raw["keks"]) == {"1"}
    assert set(raw["root_secrets"]) == {"blind-index", "token", "pseudonym"}
    assert all(set(s) == {"active", "versions"} for s in raw["root_secrets"].values())
    roots = [s["versions"]["1"] for s in raw["root_secrets"].values()]
    values = [*raw["keks"].values(), *roots]
    assert all(len(base64.b64decode(v)) == 32 for v in values)
    assert len(set(values)) == 4
    assert generate_key_document() != key_document


def test_create_uses_private_modes(key_file: Path) -> None:
    provider = LocalKeyFileProvider.create(key_file)
    assert _mode(key_file) == 0o600
    assert _mode(key_file.parent) == 0o700
    assert provider.kek_versions() == (1,)
    assert provider.active_kek_version() == 1
    # The temporary file of the atomic write is gone.
    assert [p.name for p in key_file.parent.iterdir()] == ["master.json"]


def test_create_refuses_to_overwrite(file_provider: LocalKeyFileProvider, key_file: Path) -> None:
    before = key_file.read_bytes()
    with pytest.raises(KeyMaterialError):
        LocalKeyFileProvider.create(key_file)
    assert key_file.read_bytes() == before
    assert [p.name for p in key_file.parent.iterdir()] == ["master.json"]


def test_rotation_and_retirement(file_provider: LocalKeyFileProvider, key_file: Path) -> None:
    ring = KeyRing(file_provider)
    dek, wrapped_v1 = ring.new_data_key()
    assert wrapped_v1.kek_version == 1

    assert file_provider.add_kek_version() == 2
    assert file_provider.active_kek_version() == 2
    assert file_provider.kek_versions() == (1, 2)
    assert _mode(key_file) == 0o600
    assert ring.unwrap(wrapped_v1) == dek
    assert ring.new_data_key()[1].kek_version == 2

    wrapped_v2 = ring.rewrap(wrapped_v1)
    assert wrapped_v2.kek_version == 2
    assert ring.unwrap(wrapped_v2) == dek
    assert ring.rewrap(wrapped_v2) is wrapped_v2

    file_provider.retire_kek_version(1)
    assert file_provider.kek_versions() == (2,)
    with pytest.raises(DecryptionError):
        ring.unwrap(wrapped_v1)
    # The change is on disk, not only in this instance.
    assert LocalKeyFileProvider(key_file).kek_versions() == (2,)


def test_retire_refuses_active_and_unknown(file_provider: LocalKeyFileProvider) -> None:
    with pytest.raises(KeyMaterialError):
        file_provider.retire_kek_version(1)
    with pytest.raises(KeyMaterialError):
        file_provider.retire_kek_version(9)
    assert file_provider.kek_versions() == (1,)


def test_refresh_picks_up_rotation_by_another_instance(
    file_provider: LocalKeyFileProvider, key_file: Path
) -> None:
    assert file_provider.refresh() is False
    other = LocalKeyFileProvider(key_file)
    dek, wrapped = KeyRing(other).new_data_key()
    assert other.add_kek_version() == 2

    assert file_provider.refresh() is True
    assert file_provider.active_kek_version() == 2
    assert file_provider.refresh() is False
    rewrapped = KeyRing(other).rewrap(wrapped)
    assert KeyRing(file_provider).unwrap(rewrapped) == dek


def test_rotation_starts_from_the_file_not_the_cache(
    file_provider: LocalKeyFileProvider, key_file: Path
) -> None:
    # A stale instance rotating after another one must not drop the other's KEK.
    LocalKeyFileProvider(key_file).add_kek_version()
    assert file_provider.add_kek_version() == 3
    assert LocalKeyFileProvider(key_file).kek_versions() == (1, 2, 3)


def test_refresh_keeps_material_when_file_breaks(
    file_provider: LocalKeyFileProvider, key_file: Path
) -> None:
    document = key_file.read_text()
    key_file.write_text("{broken")
    with pytest.raises(KeyMaterialError) as info:
        file_provider.refresh()
    assert_no_secrets(str(info.value), document)
    assert file_provider.kek_versions() == (1,)
    KeyRing(file_provider).new_data_key()


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError):
        LocalKeyFileProvider(tmp_path / "nope.json")


def test_env_provider_reads_the_same_document(
    file_provider: LocalKeyFileProvider, key_file: Path
) -> None:
    env = EnvKeyProvider(key_file.read_text())
    dek, wrapped = KeyRing(file_provider).new_data_key()
    assert KeyRing(env).unwrap(wrapped) == dek
    for purpose in ("blind-index", "token", "pseudonym"):
        assert env.root_secret(purpose) == file_provider.root_secret(purpose)
    assert env.refresh() is False
    assert not hasattr(env, "add_kek_version")


def test_root_secrets_are_separate(key_document: str) -> None:
    provider = EnvKeyProvider(key_document)
    secrets = {provider.root_secret(p) for p in ("blind-index", "token", "pseudonym")}
    assert len(secrets) == 3
    assert all(len(s) == 32 for s in secrets)
    kek = base64.b64decode(json.loads(key_document)["keks"]["1"])
    assert kek not in secrets
    with pytest.raises(ValueError):
        provider.root_secret("kek")


def test_unknown_versions(key_document: str) -> None:
    provider = EnvKeyProvider(key_document)
    blob = provider.wrap_key(1, os.urandom(32))
    with pytest.raises(DecryptionError):
        provider.unwrap_key(2, blob)
    with pytest.raises(KeyMaterialError):
        provider.wrap_key(2, os.urandom(32))


def _mutations(raw: dict[str, Any]) -> list[Any]:
    kek = raw["keks"]["1"]
    secrets = raw["root_secrets"]
    token = secrets["token"]["versions"]["1"]
    short = base64.b64encode(base64.b64decode(kek)[:31]).decode()
    return [
        [raw],
        {**raw, "format": 3},
        {**raw, "format": 1},  # format 1 holds plain base64 secrets, not objects
        {**raw, "format": "2"},
        {k: v for k, v in raw.items() if k != "format"},
        {k: v for k, v in raw.items() if k != "keks"},
        {**raw, "keks": {}},
        {**raw, "keks": []},
        {**raw, "keks": {"0": kek}, "active_kek": 0},
        {**raw, "keks": {"01": kek}},
        {**raw, "keks": {"1": kek, "x": kek}},
        {**raw, "keks": {"1": kek[:-2] + "!!"}},
        {**raw, "keks": {"1": short}},
        {**raw, "keks": {"1": 12}},
        {**raw, "active_kek": 2},
        {**raw, "active_kek": True},
        {**raw, "active_kek": "1"},
        {k: v for k, v in raw.items() if k != "root_secrets"},
        {**raw, "root_secrets": {k: v for k, v in secrets.items() if k != "token"}},
        {**raw, "root_secrets": {**secrets, "pseudonym": short}},
        {**raw, "root_secrets": {**secrets, "blind-index": token}},
        {**raw, "root_secrets": {**secrets, "token": {"active": 1, "versions": {"1": short}}}},
        {**raw, "root_secrets": {**secrets, "token": {"active": 2, "versions": {"1": token}}}},
        {**raw, "root_secrets": {**secrets, "token": {"active": 1, "versions": {}}}},
        {**raw, "root_secrets": {**secrets, "token": {"active": 1, "versions": {"01": token}}}},
        {**raw, "root_secrets": {**secrets, "token": {"versions": {"1": token}}}},
    ]


def test_malformed_documents_are_refused_without_leaking(key_document: str) -> None:
    raw = json.loads(key_document)
    texts = [json.dumps(m) for m in _mutations(raw)]
    texts += ["", "not json", key_document[:-10], key_document.replace('"', "'")]
    for text in texts:
        with pytest.raises(KeyMaterialError) as info:
            EnvKeyProvider(text)
        assert_no_secrets(str(info.value), key_document)
        # No chained library exception: a JSONDecodeError would carry the document.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__


def test_deeply_nested_document_is_refused(key_document: str) -> None:
    # Found by tests/fuzz/fuzz_sealed.py: json's recursion limit escaped as RecursionError.
    nested = key_document.replace('"format": 2', '"format": ' + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(KeyMaterialError, match="not valid JSON"):
        EnvKeyProvider(nested)


def test_reprs_show_no_key_material(
    file_provider: LocalKeyFileProvider, key_file: Path, key_document: str
) -> None:
    assert_no_secrets(repr(file_provider), key_file.read_text())
    assert_no_secrets(repr(EnvKeyProvider(key_document)), key_document)
    assert "redacted" in repr(file_provider)


def test_format_1_documents_still_open_as_version_1(key_document: str, key_file: Path) -> None:
    raw = json.loads(key_document)
    legacy = {
        "format": 1,
        "active_kek": 1,
        "keks": raw["keks"],
        "root_secrets": {p: s["versions"]["1"] for p, s in raw["root_secrets"].items()},
    }
    old, new = EnvKeyProvider(json.dumps(legacy)), EnvKeyProvider(key_document)
    for purpose in ("blind-index", "token", "pseudonym"):
        assert old.root_versions(purpose) == (1,)
        assert old.root_secret(purpose) == new.root_secret(purpose, 1)
    # A rotation rewrites the file in format 2, keeping version 1.
    key_file.parent.mkdir(parents=True)
    key_file.write_text(json.dumps(legacy))
    assert LocalKeyFileProvider(key_file).add_root_version("token") == 2
    assert json.loads(key_file.read_text())["format"] == 2
    assert LocalKeyFileProvider(key_file).root_secret("token", 1) == old.root_secret("token")


def test_root_secret_rotation_and_retirement(
    file_provider: LocalKeyFileProvider, key_file: Path
) -> None:
    ring = KeyRing(file_provider)
    first = ring.blind_indexer()
    assert file_provider.add_root_version("blind-index") == 2
    assert file_provider.root_versions("blind-index") == (1, 2)
    assert file_provider.root_versions("token") == (1,)  # each purpose on its own
    second = ring.blind_indexer()
    assert (first.version, second.version) == (1, 2)
    assert first.compute("t", "email", "a@b.c") != second.compute("t", "email", "a@b.c")
    assert ring.blind_indexer(1).compute("t", "email", "a@b.c") == first.compute(
        "t", "email", "a@b.c"
    )
    with pytest.raises(KeyMaterialError):
        file_provider.retire_root_version("blind-index", 2)  # the active one
    file_provider.retire_root_version("blind-index", 1)
    assert LocalKeyFileProvider(key_file).root_versions("blind-index") == (2,)
    with pytest.raises(KeyMaterialError):
        file_provider.root_secret("blind-index", 1)
    with pytest.raises(KeyMaterialError):
        file_provider.retire_root_version("blind-index", 7)
    assert_no_secrets(repr(file_provider), key_file.read_text())
