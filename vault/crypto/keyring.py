"""The key ring: envelope encryption of per-subject data keys, and the derived-value keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vault.crypto.derived import BlindIndexer, Pseudonymizer, Tokenizer
from vault.crypto.interfaces import KeyProvider
from vault.crypto.sealing import DEK_SIZE, FieldSealer
from vault.errors import DecryptionError


@dataclass(frozen=True)
class WrappedDataKey:
    """A data key wrapped (RFC 3394) under KEK `kek_version`, as stored beside a subject.

    Deleting it is crypto-shredding: the subject's sealed fields become unrecoverable.
    """

    kek_version: int
    blob: bytes = field(repr=False)


class KeyRing:
    """Creates, unwraps and re-wraps data keys, and hands out sealers and derivers.

    The provider keeps the KEKs; the ring never sees them. Blind indexer, tokenizer and
    pseudonymizer are built once and cached, with their per-(tenant, field) keys.
    """

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self._blind_indexer: BlindIndexer | None = None
        self._tokenizer: Tokenizer | None = None
        self._pseudonymizer: Pseudonymizer | None = None

    def __repr__(self) -> str:
        return f"<KeyRing provider={self.provider.name!r} keys=<redacted>>"

    def new_data_key(self) -> tuple[bytes, WrappedDataKey]:
        """A random 32-byte data key and its wrapping under the active KEK."""
        dek = os.urandom(DEK_SIZE)
        version = self.provider.active_kek_version()
        return dek, WrappedDataKey(version, self.provider.wrap_key(version, dek))

    def unwrap(self, wrapped: WrappedDataKey) -> bytes:
        """The data key inside `wrapped`; `DecryptionError` on any failure."""
        dek = self.provider.unwrap_key(wrapped.kek_version, wrapped.blob)
        if len(dek) != DEK_SIZE:
            raise DecryptionError
        return dek

    def rewrap(self, wrapped: WrappedDataKey) -> WrappedDataKey:
        """`wrapped` re-wrapped under the active KEK (the same object if it already is)."""
        active = self.provider.active_kek_version()
        if wrapped.kek_version == active:
            return wrapped
        return WrappedDataKey(active, self.provider.wrap_key(active, self.unwrap(wrapped)))

    def sealer(self, dek: bytes, tenant: str, subject_id: str, dek_id: int = 1) -> FieldSealer:
        """A sealer for one subject's fields under `dek` (from `new_data_key`/`unwrap`)."""
        return FieldSealer(dek, tenant, subject_id, dek_id)

    def blind_indexer(self) -> BlindIndexer:
        """The blind indexer (cached), keyed by the "blind-index" root secret."""
        if self._blind_indexer is None:
            self._blind_indexer = BlindIndexer(self.provider.root_secret("blind-index"))
        return self._blind_indexer

    def tokenizer(self) -> Tokenizer:
        """The tokenizer (cached), keyed by the "token" root secret."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(self.provider.root_secret("token"))
        return self._tokenizer

    def pseudonymizer(self) -> Pseudonymizer:
        """The pseudonymizer (cached), keyed by the "pseudonym" root secret."""
        if self._pseudonymizer is None:
            self._pseudonymizer = Pseudonymizer(self.provider.root_secret("pseudonym"))
        return self._pseudonymizer
