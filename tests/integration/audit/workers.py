"""Code run in child processes by the multi-process tests (importable under spawn)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from audit import CheckpointSigner, GroupCommitWriter, Integrator, append_in
from tests.integration.audit.helpers import ORIGIN, make_entry


def append_and_integrate(
    url: str, key_pem: bytes, key_name: str, worker: int, count: int, barrier: Any
) -> None:
    """Append `count` entries (both ways) while integrating now and then."""
    engine = sa.create_engine(url, pool_size=4)
    integrator = Integrator(engine, CheckpointSigner(key_pem, key_name), ORIGIN)
    writer = GroupCommitWriter(engine)
    barrier.wait()
    for n in range(count):
        entry = make_entry(worker * 100_000 + n)
        if n % 2:
            writer.append(entry, timeout=60)
        else:
            with engine.begin() as conn:
                append_in(conn, [entry])
        if n % 10 == 9:
            integrator.integrate(max_batch=25)
    writer.close()
    while integrator.integrate() is not None:
        pass
    engine.dispose()
