"""Values derived by keyed hashing: blind indexes, deterministic tokens, pseudonyms.

Each kind has its own root secret, and each (tenant, field) its own HKDF-derived key,
so equal values in different tenants or fields never produce linkable outputs, and
no derived value can be checked against a plain hash of a guessed value.
"""

from __future__ import annotations

import hmac
import os
import re

from vault.crypto._primitives import HmacSha256, hkdf_sha256

_KEY_SIZE = 32
_TOKEN_MAC_SIZE = 20  # 160 bits: 32 base32 characters, no padding
_PSEUDONYM_MAC_SIZE = 10  # 80 bits: 16 base32 characters; for display, not lookup
_RANDOM_TOKEN_SIZE = 16
_PAGE_TAG_SIZE = 16
# `tkd_k2_<32 base32>` / `tkr_k2_<26 base32>`: kind, token-key version, body. Tokens
# minted before versioning (`tkd_<32>`, `tkr_<26>`) belong to version 1.
_VERSIONED_TOKEN = re.compile(r"tk[dr]_k([1-9][0-9]{0,8})_[a-z2-7]{26,32}")
_LEGACY_TOKEN = re.compile(r"tk[dr]_[a-z2-7]{26,32}")


_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def b32(data: bytes) -> str:
    """Lower-case RFC 4648 base32 without padding: URL-, file- and case-insensitive-safe.

    Same output as `base64.b32encode(data).rstrip(b"=").lower()`, about twice as fast
    (two characters per table lookup over one big integer); ids are minted per subject.
    """
    nbits = len(data) * 8
    nchars = (nbits + 4) // 5
    value = int.from_bytes(data, "big") << (nchars * 5 - nbits)
    pairs, odd = divmod(nchars, 2)
    head = _ALPHABET[value >> (pairs * 10)] if odd else ""
    shifts = range((pairs - 1) * 10, -10, -10)
    return head + "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in shifts])


class _KeyDeriver:
    """HMAC keys per (tenant, field) by HKDF from one root secret, derived once and cached."""

    __slots__ = ("_cache", "_label", "_root")

    def __init__(self, root_secret: bytes, label: bytes) -> None:
        self._root = root_secret
        self._label = label
        self._cache: dict[tuple[str, str], HmacSha256] = {}

    def mac(self, tenant: str, field: str) -> HmacSha256:
        cached = self._cache.get((tenant, field))
        if cached is not None:
            return cached
        # The info string is `label|tenant|field` as specified; "|" inside a name would
        # make two different (tenant, field) pairs share a key, so it is refused.
        if "|" in tenant or "|" in field:
            raise ValueError("tenant and field names must not contain '|'")
        info = self._label + f"|{tenant}|{field}".encode()
        mac = HmacSha256(hkdf_sha256(self._root, salt=None, info=info, length=_KEY_SIZE))
        # A racing thread may derive the same key too: harmless, the result is identical.
        self._cache[(tenant, field)] = mac
        return mac


class BlindIndexer:
    """Blind indexes for exact-match search without decrypting the table.

    `version` is the version of the blind-index root secret it is keyed by; each stored
    digest records it, so a rotation can re-index and then retire the old version.
    """

    __slots__ = ("_keys", "version")

    def __init__(self, root_secret: bytes, version: int = 1) -> None:
        self._keys = _KeyDeriver(root_secret, b"cv:bidx:v1")
        self.version = version

    def __repr__(self) -> str:
        return f"<BlindIndexer version={self.version} key=<redacted>>"

    def compute(self, tenant: str, field: str, normalized_value: str) -> bytes:
        """HMAC-SHA256(key(tenant, field), value): 32 bytes, deterministic."""
        return self._keys.mac(tenant, field).digest(normalized_value.encode("utf-8"))


class Tokenizer:
    """Tokens that stand in for a value in other systems, marked with the version of the
    token root secret they were minted under (`version`)."""

    __slots__ = ("_keys", "version")

    def __init__(self, root_secret: bytes, version: int = 1) -> None:
        self._keys = _KeyDeriver(root_secret, b"cv:tok:v1")
        self.version = version

    def __repr__(self) -> str:
        return f"<Tokenizer version={self.version} key=<redacted>>"

    def deterministic(self, tenant: str, field: str, normalized_value: str) -> str:
        """`tkd_k<version>_` + 160-bit keyed hash: equal values give equal tokens per
        tenant, field and token-key version (a new version gives new tokens)."""
        mac = self._keys.mac(tenant, field).digest(normalized_value.encode("utf-8"))
        return f"tkd_k{self.version}_" + b32(mac[:_TOKEN_MAC_SIZE])

    def random_token(self) -> str:
        """`tkr_k<version>_` + 128 random bits: a reference the vault must store to reverse."""
        return f"tkr_k{self.version}_" + b32(os.urandom(_RANDOM_TOKEN_SIZE))


class PageTokenMac:
    """Tags for page tokens (AIP-158): a list call's next page token carries its cursor
    and a tag over the cursor and the query it continues, so a token cannot be forged,
    edited or replayed against another query or caller.

    The key is derived (HKDF, its own label) from the "pseudonym" root secret `version`,
    so every replica holding the vault's keys verifies every other's tokens, and no key
    file needs a new entry; a token of a root version no longer present stops verifying.
    """

    __slots__ = ("_mac", "version")

    def __init__(self, root_secret: bytes, version: int = 1) -> None:
        self._mac = _KeyDeriver(root_secret, b"cv:page-token:v1").mac("*", "*")
        self.version = version

    def __repr__(self) -> str:
        return f"<PageTokenMac version={self.version} key=<redacted>>"

    def tag(self, message: bytes) -> bytes:
        """128-bit tag of `message`."""
        return self._mac.digest(message)[:_PAGE_TAG_SIZE]

    def verify(self, message: bytes, tag: bytes) -> bool:
        """Whether `tag` is `message`'s tag (constant time)."""
        return hmac.compare_digest(self.tag(message), tag)


def token_key_version(token: str) -> int | None:
    """The token-key version a token carries (1 for a token minted before versioning),
    or None for text that is not shaped like a token."""
    versioned = _VERSIONED_TOKEN.fullmatch(token)
    if versioned is not None:
        return int(versioned.group(1))
    return 1 if _LEGACY_TOKEN.fullmatch(token) else None


class Pseudonymizer:
    """Short keyed pseudonyms for masked views: linkable within a view, not reversible."""

    __slots__ = ("_keys", "version")

    def __init__(self, root_secret: bytes, version: int = 1) -> None:
        self._keys = _KeyDeriver(root_secret, b"cv:psd:v1")
        self.version = version

    def __repr__(self) -> str:
        return f"<Pseudonymizer version={self.version} key=<redacted>>"

    def pseudonym(self, tenant: str, field: str, normalized_value: str) -> str:
        """`psd_` + 80-bit keyed hash of the value, per tenant and field."""
        mac = self._keys.mac(tenant, field).digest(normalized_value.encode("utf-8"))
        return "psd_" + b32(mac[:_PSEUDONYM_MAC_SIZE])
