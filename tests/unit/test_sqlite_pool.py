"""The SQLite engine never makes a thread wait for a connection: a read served on the
event loop must not block behind writers holding every pooled connection (each parked
on SQLite's own lock for up to the busy timeout)."""

from __future__ import annotations

import time
from pathlib import Path

from vault.storage.db import create_engine


def test_connections_beyond_the_pool_are_handed_out_at_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}", pool_size=2)
    held = []
    try:
        started = time.monotonic()
        for _ in range(40):  # more than any pool_size * 3 the vault would configure
            held.append(engine.connect())
        assert time.monotonic() - started < 10  # a capped pool would wait 30 s on the 7th
        assert all(conn.exec_driver_sql("SELECT 1").scalar_one() == 1 for conn in held)
    finally:
        for conn in held:
            conn.close()
        engine.dispose()
