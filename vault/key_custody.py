"""Key custody: creating development keys, choosing the provider, rotation and re-wrap."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import audit
from vault.config import Settings
from vault.crypto import (
    EnvKeyProvider,
    KeyProvider,
    KeyRing,
    LocalKeyFileProvider,
    WrappedDataKey,
    generate_ed25519_keypair,
)
from vault.errors import FailedPreconditionError
from vault.storage import subjects as repo
from vault.storage.db import Database

log = logging.getLogger(__name__)


def init_keys(settings: Settings) -> list[str]:
    """Create every missing key under the data dir; returns what was created."""
    created = []
    settings.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.master_keys is None and not settings.resolved_key_file.exists():
        LocalKeyFileProvider.create(settings.resolved_key_file)
        created.append(str(settings.resolved_key_file))
    if not settings.token_private_key.exists():
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
    """The environment's key document wins; otherwise the local key file."""
    if settings.master_keys:
        return EnvKeyProvider(settings.master_keys)
    return LocalKeyFileProvider(settings.resolved_key_file)


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


def retire(db: Database, provider: LocalKeyFileProvider, version: int) -> None:
    """Remove a KEK version, only when no data key references it any more."""
    current = status(db, provider)
    if version == current.active_version:
        raise FailedPreconditionError("the active KEK cannot be retired")
    if current.data_keys_by_version.get(version, 0):
        raise FailedPreconditionError("data keys are still wrapped by this KEK; re-wrap first")
    provider.retire_kek_version(version)
