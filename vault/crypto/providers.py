"""Key providers over the JSON key document: a local key file and an environment variable."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from vault.crypto import _primitives, keydoc
from vault.crypto._files import PRIVATE_FILE_MODE, ensure_private_dir, write_atomic
from vault.crypto.errors import KeyMaterialError
from vault.crypto.keydoc import KeyMaterial
from vault.errors import DecryptionError


class _DocumentProvider:
    """The `KeyProvider` operations over an in-memory `KeyMaterial`."""

    name = "document"
    _material: KeyMaterial

    def __repr__(self) -> str:
        return f"<{type(self).__name__} active_kek={self._material.active_kek} keys=<redacted>>"

    def active_kek_version(self) -> int:
        """The KEK version that wraps every new data key."""
        return self._material.active_kek

    def close(self) -> None:
        """Nothing is held open."""

    def kek_versions(self) -> tuple[int, ...]:
        """Every KEK version present, ascending."""
        return self._material.versions()

    def wrap_key(self, kek_version: int, key: bytes) -> bytes:
        """AES key wrap (RFC 3394) of `key` under KEK `kek_version`."""
        kek = self._material.keks.get(kek_version)
        if kek is None:
            raise KeyMaterialError(f"KEK version {kek_version} does not exist")
        return _primitives.key_wrap(kek, key)

    def unwrap_key(self, kek_version: int, wrapped: bytes) -> bytes:
        """Undo `wrap_key`; `DecryptionError` on any failure, an unknown version included."""
        kek = self._material.keks.get(kek_version)
        if kek is None:
            raise DecryptionError
        return _primitives.key_unwrap(kek, wrapped)

    def root_secret(self, purpose: str, version: int | None = None) -> bytes:
        """The 32-byte root secret for "blind-index", "token" or "pseudonym", at `version`
        (the active one when None); `KeyMaterialError` for a version not present."""
        secrets = self._material.secrets_of(purpose)
        secret = secrets.versions.get(secrets.active if version is None else version)
        if secret is None:
            raise KeyMaterialError(f"{purpose} secret version {version} does not exist")
        return secret

    def active_root_version(self, purpose: str) -> int:
        """The version of `purpose`'s root secret that new values are derived with."""
        return self._material.secrets_of(purpose).active

    def root_versions(self, purpose: str) -> tuple[int, ...]:
        """Every version of `purpose`'s root secret present, ascending."""
        return tuple(sorted(self._material.secrets_of(purpose).versions))


class EnvKeyProvider(_DocumentProvider):
    """Read-only provider over a key document given as text (`VAULT_MASTER_KEYS`).

    For development and tests. The caller reads the environment (`vault.config` is the
    only reader), so this class takes the document itself.
    """

    name = "env"

    def __init__(self, document: str) -> None:
        self._material = keydoc.parse(document)

    def refresh(self) -> bool:
        """An environment variable cannot change under a running process: always False."""
        return False


class LocalKeyFileProvider(_DocumentProvider):
    """Provider over `<data-dir>/keys/master.json` (directory 0700, file 0600).

    Key material is cached; `refresh()` re-reads the file only when its inode, size or
    mtime changed, so servers can poll it cheaply and pick up a rotation done by
    `customer-vault keys rotate` without a restart.
    """

    name = "local-file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._material, self._signature = self._read()

    def __repr__(self) -> str:
        return (
            f"<LocalKeyFileProvider path={str(self.path)!r} "
            f"active_kek={self._material.active_kek} keys=<redacted>>"
        )

    @classmethod
    def create(cls, path: Path) -> LocalKeyFileProvider:
        """Write a fresh key document to `path` and open it; never overwrites a file."""
        ensure_private_dir(path.parent)
        document = keydoc.generate_key_document().encode("utf-8")
        write_atomic(path, document, mode=PRIVATE_FILE_MODE, overwrite=False)
        return cls(path)

    def refresh(self) -> bool:
        """Re-read the key file if it changed on disk; True if it was reloaded."""
        with self._lock:
            if self._stat_signature() == self._signature:
                return False
            self._material, self._signature = self._read()
            return True

    def add_kek_version(self) -> int:
        """Rotate: add a random KEK one above the highest version, make it active, save it.

        Starts from the file on disk rather than the cache, so a rotation made by
        another process is not lost. Returns the new version.
        """
        with self._lock:
            current, _ = self._read()
            updated, version = current.with_new_kek()
            self._write(updated)
            return version

    def retire_kek_version(self, version: int) -> None:
        """Remove a non-active KEK. The caller must first check no data key uses it."""
        with self._lock:
            current, _ = self._read()
            self._write(current.without_kek(version))

    def add_root_version(self, purpose: str) -> int:
        """Rotate a root secret: add a random version of `purpose` above the highest one,
        make it active and save the file. Returns the new version."""
        with self._lock:
            current, _ = self._read()
            updated, version = current.with_new_root_secret(purpose)
            self._write(updated)
            return version

    def retire_root_version(self, purpose: str, version: int) -> None:
        """Remove a non-active root secret version. The caller checks nothing uses it."""
        with self._lock:
            current, _ = self._read()
            self._write(current.without_root_secret(purpose, version))

    def _write(self, material: KeyMaterial) -> None:
        data = keydoc.serialize(material).encode("utf-8")
        write_atomic(self.path, data, mode=PRIVATE_FILE_MODE, overwrite=True)
        self._material, self._signature = material, self._stat_signature()

    def _read(self) -> tuple[KeyMaterial, tuple[int, int, int] | None]:
        # Stat before reading: if the file is replaced in between, the stale signature
        # makes the next refresh() read it again instead of missing the change.
        signature = self._stat_signature()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise KeyMaterialError(f"key file {self.path} does not exist") from None
        except OSError:
            raise KeyMaterialError(f"key file {self.path} cannot be read") from None
        return keydoc.parse(data), signature

    def _stat_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)
