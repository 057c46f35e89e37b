"""Key custody: creating development keys, choosing the provider, rotation and re-wrap,
and the versions of the blind-index and token root secrets (rotation, status, retirement).
The re-index that follows a blind-index rotation is `vault.records.reindex`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import audit
from vault.config import Settings
from vault.crypto import (
    DataKeyCache,
    EnvKeyProvider,
    KeyProvider,
    KeyRing,
    LocalKeyFileProvider,
    ManagedKeyProvider,
    WrappedDataKey,
    generate_ed25519_keypair,
)
from vault.errors import FailedPreconditionError
from vault.storage import subjects as repo

if TYPE_CHECKING:
    from vault.crypto.hsm import Pkcs11KeyProvider
from vault.storage.db import Database

log = logging.getLogger(__name__)


def init_keys(settings: Settings) -> list[str]:
    """Create every missing key under the data dir; returns what was created."""
    created = []
    if not settings.data_dir.exists():
        # 0700 whatever the caller's umask: `serve` refuses a data dir others may read.
        settings.data_dir.mkdir(parents=True, mode=0o700)
        settings.data_dir.chmod(0o700)
    settings.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    custody = settings.resolved_key_provider
    if custody == "file" and not settings.resolved_key_file.exists():
        LocalKeyFileProvider.create(settings.resolved_key_file)
        created.append(str(settings.resolved_key_file))
    elif custody == "pkcs11":
        provider = _pkcs11_provider(settings)
        try:
            created += [f"{label} (in the PKCS#11 token)" for label in provider.initialize()]
        finally:
            provider.close()
    # A token key pair only for the development setup: with VAULT_TOKEN_PUBLIC_KEY the
    # tokens come from an issuer elsewhere, and no private token key belongs here.
    if settings.token_public_key is None and not settings.token_private_key.exists():
        generate_ed25519_keypair(settings.token_private_key, settings.resolved_token_public_key)
        created.append(str(settings.token_private_key))
    if not settings.resolved_audit_signing_key.exists():
        generate_ed25519_keypair(settings.resolved_audit_signing_key, settings.audit_public_key)
        created.append(str(settings.resolved_audit_signing_key))
    if not settings.resolved_audit_mac_key.exists():
        audit.generate_mac_key(settings.resolved_audit_mac_key)
        created.append(str(settings.resolved_audit_mac_key))
    if not settings.resolved_receipt_signing_key.exists():
        generate_ed25519_keypair(settings.resolved_receipt_signing_key, settings.receipt_public_key)
        created.append(str(settings.resolved_receipt_signing_key))
    return created


def provider_for(settings: Settings) -> KeyProvider:
    """The configured provider (`key_provider`): the PKCS#11 token, the environment's
    key document, or the local key file (the default)."""
    custody = settings.resolved_key_provider
    if custody == "pkcs11":
        return _pkcs11_provider(settings)
    if custody == "env":
        assert settings.master_keys is not None  # checked by Settings
        return EnvKeyProvider(settings.master_keys)
    return LocalKeyFileProvider(settings.resolved_key_file)


@contextmanager
def managed_provider(settings: Settings) -> Iterator[ManagedKeyProvider]:
    """The provider whose versions `keys rotate`/`retire` change, closed afterwards: the
    key file or the PKCS#11 token (a key document in the environment is changed where
    it is kept, not from here)."""
    custody = settings.resolved_key_provider
    if custody == "env":
        raise FailedPreconditionError(
            "keys given in VAULT_MASTER_KEYS are rotated where that document is kept"
        )
    provider: ManagedKeyProvider = (
        _pkcs11_provider(settings)
        if custody == "pkcs11"
        else LocalKeyFileProvider(settings.resolved_key_file)
    )
    try:
        yield provider
    finally:
        provider.close()


def keyring_for(settings: Settings) -> KeyRing:
    """A key ring over the configured provider, with the data-key cache the settings
    ask for (`dek_cache_size`, `dek_cache_ttl_seconds`; size 0: none)."""
    cache = (
        DataKeyCache(settings.dek_cache_size, settings.dek_cache_ttl_seconds)
        if settings.dek_cache_size
        else None
    )
    return KeyRing(provider_for(settings), dek_cache=cache)


def _pkcs11_provider(settings: Settings) -> Pkcs11KeyProvider:
    # Imported here: python-pkcs11 loads a native module only deployments with an HSM use.
    from vault.crypto.hsm import Pkcs11Config, Pkcs11KeyProvider  # noqa: PLC0415

    assert settings.pkcs11_module is not None  # checked by Settings
    config = Pkcs11Config(
        settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_pin_value()
    )
    return Pkcs11KeyProvider(config)


@dataclass(frozen=True)
class KeyStatus:
    active_version: int
    versions: tuple[int, ...]
    data_keys_by_version: dict[int | None, int]

    @property
    def pending_rewrap(self) -> int:
        return sum(
            n for v, n in self.data_keys_by_version.items() if v not in (None, self.active_version)
        )


def status(db: Database, provider: KeyProvider) -> KeyStatus:
    with db.read() as conn:
        counts = repo.count_by_kek_version(conn)
    return KeyStatus(provider.active_kek_version(), provider.kek_versions(), counts)


def rewrap_batch(db: Database, keyring: KeyRing, batch_size: int) -> int:
    """Re-wrap up to `batch_size` data keys under the active KEK; returns how many moved.

    Rows locked by another replica are skipped (PostgreSQL SKIP LOCKED), and a row that
    was erased meanwhile is left alone (the update is conditional on the old version).
    """
    active = keyring.provider.active_kek_version()
    moved = 0
    with db.write() as conn:
        for subject_id, version, blob in repo.stale_wrapped_keys(conn, active, batch_size):
            rewrapped = keyring.rewrap(WrappedDataKey(version, blob))
            if repo.set_wrapped_key(
                conn, subject_id, version, rewrapped.kek_version, rewrapped.blob
            ):
                moved += 1
    return moved


BLIND_INDEX = "blind-index"
TOKEN = "token"  # noqa: S105 - the name of a root-secret purpose, not a secret


@dataclass(frozen=True)
class SecretStatus:
    """One purpose's root secret versions and how many stored rows each one made
    (digests for "blind-index", recorded tokens for "token")."""

    purpose: str
    active_version: int
    versions: tuple[int, ...]
    rows_by_version: dict[int, int]

    @property
    def pending(self) -> int:
        """Rows not under the active version: digests left to re-index, or tokens that
        stop working when their version is retired."""
        return sum(n for v, n in self.rows_by_version.items() if v != self.active_version)


def secret_status(db: Database, provider: KeyProvider, purpose: str) -> SecretStatus:
    """Versions of the "blind-index" or "token" root secret and the rows under each."""
    counter = {
        BLIND_INDEX: repo.count_blind_indexes_by_version,
        TOKEN: repo.count_tokens_by_version,
    }[purpose]
    with db.read() as conn:
        counts = counter(conn)
    return SecretStatus(
        purpose, provider.active_root_version(purpose), provider.root_versions(purpose), counts
    )


def retire_blind_index_version(db: Database, provider: ManagedKeyProvider, version: int) -> None:
    """Remove a blind-index secret version, only when no stored digest was made with it
    (run the re-index first). Afterwards no key can link a digest of that version, in a
    copy of the database or a backup, to a value."""
    current = secret_status(db, provider, BLIND_INDEX)
    if version == current.active_version:
        raise FailedPreconditionError("the active blind-index key cannot be retired")
    if current.rows_by_version.get(version, 0):
        raise FailedPreconditionError(
            "blind indexes still use this key version; re-index first (keys reindex)"
        )
    provider.retire_root_version(BLIND_INDEX, version)


def retire_token_version(db: Database, provider: ManagedKeyProvider, version: int) -> int:
    """Remove a token secret version: every token minted under it stops detokenizing
    (its rows are deleted first, so a crash in between leaves the version retirable
    again). Returns how many recorded tokens were forgotten."""
    active, present = provider.active_root_version(TOKEN), provider.root_versions(TOKEN)
    if version == active:
        raise FailedPreconditionError("the active token key cannot be retired")
    if version not in present:
        raise FailedPreconditionError(f"token key version {version} does not exist")
    with db.write() as conn:
        forgotten = repo.delete_tokens_of_version(conn, version)
    provider.retire_root_version(TOKEN, version)
    return forgotten


def retire(db: Database, provider: ManagedKeyProvider, version: int) -> None:
    """Remove a KEK version, only when no data key references it any more."""
    current = status(db, provider)
    if version == current.active_version:
        raise FailedPreconditionError("the active KEK cannot be retired")
    if current.data_keys_by_version.get(version, 0):
        raise FailedPreconditionError("data keys are still wrapped by this KEK; re-wrap first")
    provider.retire_kek_version(version)
