"""Ed25519 key pairs as PEM files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vault.crypto import (
    KeyMaterialError,
    generate_ed25519_keypair,
    load_ed25519_private_pem,
    load_ed25519_public_pem,
)


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "signing.pem", tmp_path / "pub" / "signing.pub.pem"
    generate_ed25519_keypair(private, public)
    return private, public


def test_generated_pair_signs_and_verifies(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    private_key = serialization.load_pem_private_key(load_ed25519_private_pem(private), None)
    public_key = serialization.load_pem_public_key(load_ed25519_public_pem(public))
    assert isinstance(private_key, Ed25519PrivateKey)
    assert isinstance(public_key, Ed25519PublicKey)
    public_key.verify(private_key.sign(b"checkpoint"), b"checkpoint")


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    before = private.read_bytes(), public.read_bytes()
    with pytest.raises(KeyMaterialError):
        generate_ed25519_keypair(private, tmp_path / "new.pub.pem")
    with pytest.raises(KeyMaterialError):
        generate_ed25519_keypair(tmp_path / "new.pem", public)
    assert (private.read_bytes(), public.read_bytes()) == before
    assert not (tmp_path / "new.pem").exists()


def test_loaders_validate(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = tmp_path / "ec.pem"
    ec_private.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ec_public = tmp_path / "ec.pub.pem"
    ec_public.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    for path in (public, ec_private, garbage, tmp_path / "missing.pem"):
        with pytest.raises(KeyMaterialError):
            load_ed25519_private_pem(path)
    for path in (private, ec_public, garbage, tmp_path / "missing.pem"):
        with pytest.raises(KeyMaterialError):
            load_ed25519_public_pem(path)


def test_error_messages_do_not_contain_the_key(tmp_path: Path) -> None:
    private, _ = _pair(tmp_path)
    with pytest.raises(KeyMaterialError) as info:
        load_ed25519_public_pem(private)
    body = private.read_text().splitlines()[1]
    assert body not in str(info.value)
    assert info.value.__cause__ is None
