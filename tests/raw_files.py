"""Reading a SQLite database's files as raw bytes while the test's own connections are
open, without breaking their locks.

SQLite locks its files with POSIX advisory locks, which belong to the process, not to
the file descriptor: closing *any* descriptor of the file in the process drops every
lock the process holds on it (https://www.sqlite.org/howtocorrupt.html, 2.2). A test
that opened `vault.db-shm` with `open()` and closed it would leave its own connections
unlocked; a process opening the database next (the retention job's preparer child) then
takes itself for the only user, resets the shared-memory index under them, and they
fail with "disk I/O error". So the bytes are read by another process, whose closing
affects nobody's locks but its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_CAT = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"


def read_raw(path: Path) -> bytes:
    """The file's bytes, read by a child process (see the module's docstring)."""
    return subprocess.run(
        [sys.executable, "-c", _CAT, str(path)], check=True, capture_output=True
    ).stdout


def database_files_holding(data_dir: Path, secrets: Sequence[bytes]) -> dict[str, int]:
    """How many of `secrets` each of the SQLite database's files (vault.db and its -wal
    and -shm) still holds, read as raw bytes: free space and stale log frames too."""
    held = {}
    for path in sorted(data_dir.glob("vault.db*")):
        data = read_raw(path)
        count = sum(1 for secret in secrets if secret in data)
        if count:
            held[path.name] = count
    return held
