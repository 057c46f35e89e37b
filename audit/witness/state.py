"""The witness's storage: the latest cosigned checkpoint of each log, in a SQLite file.

`compare_and_set` runs the caller's check and the update in one `BEGIN IMMEDIATE`
transaction, so two requests can never both pass against the same old size (the race
tlog-witness warns about, which would roll a log back). The file is the witness's own:
nothing of the vault's database is in it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL,
    cosigned_at INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Latest:
    """The latest checkpoint cosigned for one origin (its note carries the cosignature)."""

    size: int
    root_hash: bytes
    note: str
    cosigned_at: int


class WitnessState:
    """The per-origin latest checkpoints, persisted before any cosignature is returned."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def latest(self, origin: str) -> Latest | None:
        """The latest cosigned checkpoint of `origin`, if any."""
        with self._lock:
            return self._read(origin)

    def compare_and_set(
        self, origin: str, decide: Callable[[Latest | None], tuple[Latest | None, T]]
    ) -> T:
        """Atomically: `decide(current)` returns (what to store or None, result)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                new, result = decide(self._read(origin))
                if new is not None:
                    self._conn.execute(
                        "INSERT INTO latest (origin, size, root_hash, note, cosigned_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET "
                        "size = excluded.size, root_hash = excluded.root_hash, "
                        "note = excluded.note, cosigned_at = excluded.cosigned_at",
                        (origin, new.size, new.root_hash, new.note, new.cosigned_at),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def _read(self, origin: str) -> Latest | None:
        row = self._conn.execute(
            "SELECT size, root_hash, note, cosigned_at FROM latest WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else Latest(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))
