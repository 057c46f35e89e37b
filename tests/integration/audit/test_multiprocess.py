"""Several processes appending and integrating on one PostgreSQL database."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import (
    CheckpointSigner,
    Integrator,
    IntegratorThread,
    append_in,
    iter_query,
    migrate,
    verify_log,
)
from audit.tables import entries
from tests.integration.audit import workers
from tests.integration.audit.helpers import ORIGIN, make_entry

PROCESSES = 3
PER_PROCESS = 120


@pytest.mark.postgres
@pytest.mark.slow
def test_three_processes_append_and_integrate_concurrently(
    postgres_url: str, audit_signer: CheckpointSigner, tmp_path: Path
) -> None:
    engine = sa.create_engine(postgres_url, pool_size=4)
    migrate(engine)
    pem = (tmp_path / "audit.key").read_bytes()  # written by the audit_signer fixture
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    processes = [
        context.Process(
            target=workers.append_and_integrate,
            args=(postgres_url, pem, audit_signer.key_name, worker, PER_PROCESS, barrier),
        )
        for worker in range(PROCESSES)
    ]
    # A fourth integrator, on a thread of this process, contends for the lock throughout.
    background = IntegratorThread(
        Integrator(engine, audit_signer, ORIGIN, checkpoint_interval=16), interval=0.005
    )
    background.start()
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    background.stop()
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    Integrator(engine, audit_signer, ORIGIN).integrate()
    report = verify_log(engine, audit_signer.verifier())
    report.raise_for_failure()
    assert report.size == PROCESSES * PER_PROCESS
    assert report.pending == 0
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one()
        leaves = conn.execute(sa.select(entries.c.leaf_index).order_by(entries.c.leaf_index))
        assert list(leaves.scalars()) == list(range(PROCESSES * PER_PROCESS))
    assert total == PROCESSES * PER_PROCESS
    appended = {f"req-{w * 100_000 + n}" for w in range(PROCESSES) for n in range(PER_PROCESS)}
    assert sorted(logged.entry.request_id for logged in iter_query(engine)) == sorted(appended)
    engine.dispose()


@pytest.mark.postgres
def test_ids_committed_out_of_order_are_integrated_in_commit_order(
    postgres_url: str, audit_signer: CheckpointSigner
) -> None:
    engine = sa.create_engine(postgres_url)
    migrate(engine)
    integrator = Integrator(engine, audit_signer, ORIGIN)
    with engine.connect() as slow, engine.connect() as fast:
        slow_tx = slow.begin()
        (slow_id,) = append_in(slow, [make_entry(1)])  # takes the lower id ...
        with fast.begin():
            (fast_id,) = append_in(fast, [make_entry(2)])  # ... but commits second
        assert slow_id < fast_id
        integrator.integrate()  # sees only the committed row
        slow_tx.commit()
    integrator.integrate()
    with engine.connect() as conn:
        order = conn.execute(sa.select(entries.c.id).order_by(entries.c.leaf_index)).scalars()
        assert list(order) == [fast_id, slow_id]
    assert verify_log(engine, audit_signer.verifier()).ok
    engine.dispose()
