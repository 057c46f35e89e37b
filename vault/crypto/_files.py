"""Writing secret files: private modes from the first byte, atomic, never half-written."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from vault.crypto.errors import KeyMaterialError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) and make it 0700: it holds nothing but keys."""
    directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing directory.
    os.chmod(directory, PRIVATE_DIR_MODE)


def write_atomic(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write `data` to `path` via a temporary file and a rename in the same directory.

    Readers see either the old file or the whole new one. With `overwrite=False` an
    existing `path` is never replaced (a hard link fails atomically if it exists), and
    `KeyMaterialError` is raised instead.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL + mode at creation: the secret is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # the creation mode was filtered by the umask
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise KeyMaterialError(f"refusing to overwrite existing file {path}") from None


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable: without it a crash can lose a rotated KEK.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
