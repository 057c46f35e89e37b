"""Key files, key loading, and Ed25519 verification against Wycheproof."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from audit.errors import CheckpointError, KeyFormatError
from audit.signing_keys import (
    generate_signing_key,
    load_private_key,
    load_public_key,
    public_key_from_bytes,
    verify_ed25519,
)
from tests.data import VECTORS

WYCHEPROOF = VECTORS / "wycheproof"


def _wycheproof_cases() -> list[Any]:
    document = json.loads((WYCHEPROOF / "ed25519_test.json").read_text())
    return [
        pytest.param(group["publicKey"]["pk"], case, id=f"tc{case['tcId']}-{case['result']}")
        for group in document["testGroups"]
        for case in group["tests"]
    ]


@pytest.mark.parametrize(("public_hex", "case"), _wycheproof_cases())
def test_wycheproof_ed25519(public_hex: str, case: dict[str, Any]) -> None:
    key = public_key_from_bytes(bytes.fromhex(public_hex))
    signature, message = bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"])
    assert case["result"] in ("valid", "invalid")
    if case["result"] == "valid":
        verify_ed25519(key, signature, message)
    else:
        with pytest.raises(CheckpointError):
            verify_ed25519(key, signature, message)


def test_generated_key_files_are_private_and_load(tmp_path: Path) -> None:
    private, public = tmp_path / "k", tmp_path / "k.pub"
    generate_signing_key(private, public)
    for path in (private, public):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_private_key(private.read_bytes())
    assert load_public_key(public.read_bytes()) == key.public_key()


def test_existing_key_files_are_never_overwritten(tmp_path: Path) -> None:
    private, public = tmp_path / "k", tmp_path / "k.pub"
    generate_signing_key(private, public)
    before = private.read_bytes()
    with pytest.raises(FileExistsError):
        generate_signing_key(private, tmp_path / "other.pub")
    assert private.read_bytes() == before


def test_other_keys_and_garbage_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for loader, data in (
        (load_private_key, ec_private),
        (load_private_key, b"not a key"),
        (load_public_key, ec_public),
        (load_public_key, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
    ):
        with pytest.raises(KeyFormatError):
            loader(data)
    with pytest.raises(KeyFormatError):
        public_key_from_bytes(b"\x00" * 31)


def test_the_public_key_goes_beside_the_private_one_by_default(tmp_path: Path) -> None:
    private, public = generate_signing_key(tmp_path / "keys" / "audit_signing.pem")
    assert public == tmp_path / "keys" / "audit_signing.pub.pem"
    assert private.is_file()
    assert public.is_file()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert (
        load_public_key(public.read_bytes()) == load_private_key(private.read_bytes()).public_key()
    )
    with pytest.raises(FileExistsError):
        generate_signing_key(tmp_path / "keys" / "audit_signing.pem")
