"""Ed25519 signing keys as PEM files (JWT signing, audit checkpoints, consent receipts)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vault.crypto._files import (
    PRIVATE_FILE_MODE,
    PUBLIC_FILE_MODE,
    write_atomic,
)
from vault.crypto.errors import KeyMaterialError, SignatureError


def generate_ed25519_keypair(private_path: Path, public_path: Path) -> None:
    """Write a new Ed25519 key pair: PKCS#8 private PEM (0600) and SPKI public PEM (0644).

    Refuses (`KeyMaterialError`) if either file exists, so a key in use is never lost.
    """
    for path in (private_path, public_path):
        if path.exists():
            raise KeyMaterialError(f"refusing to overwrite existing file {path}")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(private_path, private_pem, mode=PRIVATE_FILE_MODE, overwrite=False)
    write_atomic(public_path, public_pem, mode=PUBLIC_FILE_MODE, overwrite=False)


def load_ed25519_public_pem(path: Path) -> bytes:
    """The bytes of `path` after checking they are an Ed25519 public key in PEM."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyMaterialError(f"{path} is not an Ed25519 public key")
    return data


def load_ed25519_private_pem(path: Path) -> bytes:
    """The bytes of `path` after checking they are an unencrypted Ed25519 private key in PEM."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"{path} is not an Ed25519 private key")
    return data


def sign_ed25519(private_pem: bytes, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of `data` (a detached signature)."""
    return _private_key(private_pem).sign(data)


def verify_ed25519(public_pem: bytes, data: bytes, signature: bytes) -> None:
    """Raise `SignatureError` unless `signature` is `public_pem`'s signature of `data`.

    One error for every failure (bad key, bad length, wrong signature): nothing tells
    the caller which check failed.
    """
    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SignatureError from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError from None


def ed25519_key_id(public_pem: bytes) -> str:
    """A short, stable name for a public key: hex SHA-256 of its raw 32 bytes, 16 digits."""
    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyMaterialError("not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def ed25519_is_key_pair(private_pem: bytes, public_pem: bytes) -> bool:
    """True if `public_pem` is the public half of the Ed25519 key `private_pem`; False
    when they differ or either is not an Ed25519 key in PEM."""
    try:
        derived = _private_key(private_pem).public_key()
        key = serialization.load_pem_public_key(public_pem)
    except (KeyMaterialError, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    if not isinstance(key, Ed25519PublicKey):
        return False
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    return derived.public_bytes(*raw) == key.public_bytes(*raw)


def _private_key(private_pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError("not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError("not an Ed25519 private key")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise KeyMaterialError(f"cannot read key file {path}") from None
