"""The key-provider port: what the key ring needs from wherever the master keys live."""

from __future__ import annotations

from typing import Protocol


class KeyProvider(Protocol):
    """Holds the KEKs and root secrets; a cloud KMS or Vault Transit provider fits too.

    KEK bytes need never leave the provider: the key ring only asks it to wrap and
    unwrap data keys. Root secrets, on the other hand, are handed out, because blind
    indexes and tokens are computed in-process at high rate.
    """

    @property
    def name(self) -> str:
        """A short, stable label for logs and `keys status` (e.g. "local-file")."""
        ...

    def active_kek_version(self) -> int:
        """The KEK version that wraps every new data key."""
        ...

    def kek_versions(self) -> tuple[int, ...]:
        """Every KEK version that can still unwrap, ascending."""
        ...

    def wrap_key(self, kek_version: int, key: bytes) -> bytes:
        """AES key wrap of `key` under KEK `kek_version` (RFC 3394 for the key file,
        RFC 5649 in a PKCS#11 token)."""
        ...

    def unwrap_key(self, kek_version: int, wrapped: bytes) -> bytes:
        """Undo `wrap_key`; raise `DecryptionError` on any failure, unknown version included."""
        ...

    def root_secret(self, purpose: str, version: int | None = None) -> bytes:
        """The 32-byte root secret for "blind-index", "token" or "pseudonym" at `version`
        (None: the active version); `KeyMaterialError` for a version not present."""
        ...

    def active_root_version(self, purpose: str) -> int:
        """The version of `purpose`'s root secret that new values are derived with."""
        ...

    def root_versions(self, purpose: str) -> tuple[int, ...]:
        """Every version of `purpose`'s root secret still present, ascending."""
        ...

    def refresh(self) -> bool:
        """Reload key material if its source changed; return True if it was reloaded."""
        ...

    def close(self) -> None:
        """Release what the provider holds open (an HSM session); a no-op for files."""
        ...


class ManagedKeyProvider(KeyProvider, Protocol):
    """A provider whose versions can be added and retired (`keys rotate`, `keys retire`
    and their blind-index and token twins): the key file and the PKCS#11 token."""

    def add_kek_version(self) -> int:
        """Add the next KEK version and make it active; returns it."""
        ...

    def retire_kek_version(self, version: int) -> None:
        """Remove a non-active KEK version (the caller checks nothing uses it)."""
        ...

    def add_root_version(self, purpose: str) -> int:
        """Add the next version of `purpose`'s root secret, made active; returns it."""
        ...

    def retire_root_version(self, purpose: str, version: int) -> None:
        """Remove a non-active version of `purpose`'s root secret."""
        ...
