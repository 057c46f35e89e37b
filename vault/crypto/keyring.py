"""The key ring: envelope encryption of per-subject data keys, and the derived-value keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TypeVar

from vault.crypto.dek_cache import DataKeyCache
from vault.crypto.derived import BlindIndexer, PageTokenMac, Pseudonymizer, Tokenizer
from vault.crypto.interfaces import KeyProvider
from vault.crypto.sealing import DEK_SIZE, FieldSealer
from vault.errors import DecryptionError

_D = TypeVar("_D", BlindIndexer, Tokenizer, Pseudonymizer)


@dataclass(frozen=True)
class WrappedDataKey:
    """A data key wrapped (RFC 3394) under KEK `kek_version`, as stored beside a subject.

    Deleting it is crypto-shredding: the subject's sealed fields become unrecoverable.
    """

    kek_version: int
    blob: bytes = field(repr=False)


class KeyRing:
    """Creates, unwraps and re-wraps data keys, and hands out sealers and derivers.

    The provider keeps the KEKs; the ring never sees them. Blind indexers, tokenizers
    and pseudonymizers are built once per root-secret version and cached, with their
    per-(tenant, field) keys; without a version, each call asks the provider which
    version is active, so a rotation picked up by `refresh` applies to the next value.

    With a `dek_cache`, unwrapped data keys are kept there (bounded, expiring:
    `vault.crypto.dek_cache`), so repeated reads of a subject skip the provider's unwrap.
    """

    def __init__(self, provider: KeyProvider, dek_cache: DataKeyCache | None = None) -> None:
        self.provider = provider
        self.dek_cache = dek_cache
        self._derivers: dict[
            tuple[str, int], BlindIndexer | Tokenizer | Pseudonymizer | PageTokenMac
        ] = {}

    def __repr__(self) -> str:
        return f"<KeyRing provider={self.provider.name!r} keys=<redacted>>"

    def refresh(self) -> bool:
        """Reload the provider's key material if it changed; True if it was reloaded."""
        reloaded = self.provider.refresh()
        if reloaded:
            self._derivers = {}
            if self.dek_cache is not None:
                self.dek_cache.clear()  # a retired KEK must stop unwrapping at once
        return reloaded

    def new_data_key(self) -> tuple[bytes, WrappedDataKey]:
        """A random 32-byte data key and its wrapping under the active KEK."""
        dek = os.urandom(DEK_SIZE)
        version = self.provider.active_kek_version()
        return dek, WrappedDataKey(version, self.provider.wrap_key(version, dek))

    def unwrap(self, wrapped: WrappedDataKey) -> bytes:
        """The data key inside `wrapped`; `DecryptionError` on any failure."""
        cache = self.dek_cache
        if cache is not None and (cached := cache.get(wrapped.kek_version, wrapped.blob)):
            return cached
        dek = self.provider.unwrap_key(wrapped.kek_version, wrapped.blob)
        if len(dek) != DEK_SIZE:
            raise DecryptionError
        if cache is not None:
            cache.put(wrapped.kek_version, wrapped.blob, dek)
        return dek

    def forget(self, wrapped: WrappedDataKey) -> None:
        """Drop `wrapped`'s data key from the cache (it was re-wrapped or shredded)."""
        if self.dek_cache is not None:
            self.dek_cache.forget(wrapped.kek_version, wrapped.blob)

    def rewrap(self, wrapped: WrappedDataKey) -> WrappedDataKey:
        """`wrapped` re-wrapped under the active KEK (the same object if it already is)."""
        active = self.provider.active_kek_version()
        if wrapped.kek_version == active:
            return wrapped
        rewrapped = WrappedDataKey(active, self.provider.wrap_key(active, self.unwrap(wrapped)))
        self.forget(wrapped)
        return rewrapped

    def sealer(self, dek: bytes, tenant: str, subject_id: str, dek_id: int = 1) -> FieldSealer:
        """A sealer for one subject's fields under `dek` (from `new_data_key`/`unwrap`)."""
        return FieldSealer(dek, tenant, subject_id, dek_id)

    def blind_indexer(self, version: int | None = None) -> BlindIndexer:
        """The blind indexer keyed by "blind-index" root secret `version` (None: active)."""
        return self._deriver(BlindIndexer, "blind-index", version)

    def blind_index_versions(self) -> tuple[int, ...]:
        """Every blind-index root secret version present, ascending."""
        return self.provider.root_versions("blind-index")

    def tokenizer(self, version: int | None = None) -> Tokenizer:
        """The tokenizer keyed by "token" root secret `version` (None: active)."""
        return self._deriver(Tokenizer, "token", version)

    def token_versions(self) -> tuple[int, ...]:
        """Every token root secret version present, ascending."""
        return self.provider.root_versions("token")

    def pseudonymizer(self) -> Pseudonymizer:
        """The pseudonymizer keyed by the active "pseudonym" root secret."""
        return self._deriver(Pseudonymizer, "pseudonym", None)

    def page_token_mac(self, version: int | None = None) -> PageTokenMac:
        """Page-token tags under "pseudonym" root secret `version` (None: active)."""
        if version is None:
            version = self.provider.active_root_version("pseudonym")
        cached = self._derivers.get(("page-token", version))
        if isinstance(cached, PageTokenMac):
            return cached
        made = PageTokenMac(self.provider.root_secret("pseudonym", version), version)
        self._derivers[("page-token", version)] = made
        return made

    def page_token_versions(self) -> tuple[int, ...]:
        """The root versions a page token may carry (those of "pseudonym" present)."""
        return self.provider.root_versions("pseudonym")

    def _deriver(self, kind: type[_D], purpose: str, version: int | None) -> _D:
        if version is None:
            version = self.provider.active_root_version(purpose)
        cached = self._derivers.get((purpose, version))
        if isinstance(cached, kind):
            return cached
        made = kind(self.provider.root_secret(purpose, version), version)
        # A racing thread may build the same deriver too: harmless, it is identical.
        self._derivers[(purpose, version)] = made
        return made
