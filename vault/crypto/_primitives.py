"""Hazardous materials: thin wrappers over the primitives the recipes are built from.

Nothing outside `vault.crypto` may use these. Each wrapper narrows a library primitive
to the parameters the vault uses and turns every failure to decrypt or unwrap into the
single opaque `DecryptionError`, chained `from None` so no library detail leaks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from vault.errors import DecryptionError

GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
AES_KEY_SIZES = frozenset({16, 24, 32})
SHA256_SIZE = 32
_SHA256_BLOCK_SIZE = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class AesGcm:
    """AES-GCM with 96-bit nonces and 128-bit tags, the only parameters the vault uses.

    Other nonce sizes are refused: they go through GHASH, which widens the attack
    surface (see Wycheproof's CounterWrap notes) for no benefit to random nonces.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) not in AES_KEY_SIZES:
            raise ValueError("AES key must be 16, 24 or 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<AesGcm key=<redacted>>"

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Return ciphertext || 16-byte tag. The caller guarantees nonce uniqueness."""
        if len(nonce) != GCM_NONCE_SIZE:
            raise ValueError("AES-GCM nonce must be 12 bytes")
        return self._aead.encrypt(nonce, plaintext, aad)

    def encrypt_each(self, nonces: bytes, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """`encrypt` of each (plaintext, aad) in `items`, the i-th under the i-th 12-byte
        nonce of `nonces` (exactly 12 bytes per item; the caller guarantees uniqueness):
        one call for a subject's fields instead of one per field."""
        if len(nonces) != GCM_NONCE_SIZE * len(items):
            raise ValueError("AES-GCM nonces must be 12 bytes each, one per item")
        encrypt = self._aead.encrypt
        return [
            encrypt(nonces[i : i + GCM_NONCE_SIZE], plaintext, aad)
            for i, (plaintext, aad) in zip(
                range(0, len(nonces), GCM_NONCE_SIZE), items, strict=True
            )
        ]

    def decrypt(self, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes:
        """Return the plaintext, or raise `DecryptionError` on any failure."""
        if len(nonce) != GCM_NONCE_SIZE or len(ciphertext_and_tag) < GCM_TAG_SIZE:
            raise DecryptionError
        try:
            return self._aead.decrypt(nonce, ciphertext_and_tag, aad)
        except (InvalidTag, ValueError, OverflowError):
            raise DecryptionError from None


def key_wrap(kek: bytes, key: bytes) -> bytes:
    """AES key wrap (RFC 3394) of `key` (16+ bytes, a multiple of 8) under `kek`."""
    if len(kek) not in AES_KEY_SIZES:
        raise ValueError("KEK must be 16, 24 or 32 bytes")
    if len(key) < 16 or len(key) % 8:
        raise ValueError("wrapped key must be at least 16 bytes and a multiple of 8")
    return aes_key_wrap(kek, key)


def key_unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """Undo `key_wrap`, or raise `DecryptionError` on any failure (including the IV check)."""
    if len(kek) not in AES_KEY_SIZES or len(wrapped) < 24 or len(wrapped) % 8:
        raise DecryptionError
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise DecryptionError from None


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869); `length` at most 255 * 32 bytes (ValueError otherwise)."""
    if not 0 < length <= 255 * SHA256_SIZE:
        raise ValueError("HKDF-SHA256 output must be 1..8160 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class HmacSha256:
    """HMAC-SHA256 under one key, with the padded-key hash states computed once.

    RFC 2104 done by hand over hashlib (as the stdlib's own fallback does): copying two
    prepared SHA-256 states is about three times faster than `hmac.digest`, which
    re-initialises the key on every call. Blind indexes are on the write hot path.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK_SIZE:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK_SIZE, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def __repr__(self) -> str:
        return "<HmacSha256 key=<redacted>>"

    def digest(self, message: bytes) -> bytes:
        """The full 32-byte HMAC-SHA256 of `message`."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
