"""Ed25519 keys for checkpoint signing: generation, loading, and raw verification."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.errors import CheckpointError, KeyFormatError

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def generate_signing_key(
    private_path: Path | str, public_path: Path | str | None = None
) -> tuple[Path, Path]:
    """Create a new Ed25519 key pair as PEM files, both mode 0600; returns their paths.

    The public key goes to `public_path`, by default beside the private key with the
    suffix `.pub.pem` (`audit_signing.pem` -> `audit_signing.pub.pem`). Missing parent
    directories are created (mode 0700). Refuses to overwrite an existing file
    (`FileExistsError`): replacing a log's signing key silently would orphan every
    checkpoint signed so far.
    """
    private = Path(private_path)
    public = private.with_suffix(".pub.pem") if public_path is None else Path(public_path)
    for path in (private, public):
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_private_file(private, private_pem)
    _write_private_file(public, public_pem)
    return private, public


def _write_private_file(path: Path, data: bytes) -> None:
    # O_EXCL with the mode at creation: the file is never readable by others, not even
    # for the moment between create and chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PKCS#8 PEM."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFormatError("not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError("private key is not Ed25519")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from SubjectPublicKeyInfo PEM."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFormatError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError("public key is not Ed25519")
    return key


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its raw 32 bytes."""
    if len(raw) != PUBLIC_KEY_SIZE:
        raise KeyFormatError("Ed25519 public key must be 32 bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyFormatError("not an Ed25519 public key") from None


def verify_ed25519(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """Check a strict RFC 8032 Ed25519 signature; raises `CheckpointError` if it fails.

    The length is checked first: a truncated or padded signature is never passed on.
    """
    if len(signature) != SIGNATURE_SIZE:
        raise CheckpointError("signature is not valid")
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        raise CheckpointError("signature is not valid") from None
