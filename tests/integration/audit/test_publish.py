"""Publishing to a witness that goes away and comes back: back-off, lag, catching up.

Real witness processes (stopped and started again on the same port and directory),
real SQLite; the publisher's clock is injected so the back-off schedule is exact.
"""

from __future__ import annotations

from pathlib import Path

from audit import (
    CheckpointSigner,
    Integrator,
    Publisher,
    append_in,
    create_sqlite_engine,
    generate_signing_key,
    migrate,
)
from audit.tables import cosignatures
from tests.integration.audit import helpers
from tests.integration.witnessing import witness_process


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_witness_that_is_down_is_retried_with_back_off_and_caught_up(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "log.pem")
    signer = CheckpointSigner((tmp_path / "log.pem").read_bytes(), helpers.ORIGIN)
    engine = create_sqlite_engine(tmp_path / "vault.db")
    migrate(engine)
    integrator = Integrator(engine, signer, helpers.ORIGIN)
    clock = Clock()
    alarms: list[str] = []

    def add(numbers: range) -> None:
        with engine.begin() as conn:
            append_in(conn, [helpers.make_entry(n) for n in numbers])
        integrator.integrate()

    with witness_process(tmp_path / "witness", signer.verifier_key) as witness:
        address = witness.url.removeprefix("http://")
        publisher = Publisher(
            engine, [witness.client()], signer.verifier(), on_alarm=alarms.append, monotonic=clock
        )
        add(range(10))
        publisher.publish()
        assert publisher.lag() == {"witness.test/w1": 0}
    # The witness is down: the vault goes on writing; publishing backs off 1, 2, 4 s.
    add(range(10, 25))
    for expected_delay in (1.0, 2.0, 4.0):
        publisher.publish()
        progress = publisher._progress[0]
        assert progress.next_attempt == clock.now + expected_delay
        publisher.publish()  # not due yet: no attempt, no change
        assert progress.next_attempt == clock.now + expected_delay
        clock.now += expected_delay
    assert publisher.lag() == {"witness.test/w1": 15}
    assert alarms == []
    # Back on the same port with its state: the publisher catches up from its size.
    with witness_process(tmp_path / "witness", signer.verifier_key, address) as witness:
        publisher.publish()
        assert publisher.lag() == {"witness.test/w1": 0}
        assert publisher._progress[0].failures == 0
        latest = witness.client().latest(helpers.ORIGIN)
        assert latest is not None
        assert signer.verifier().verify(latest).size == 25
    with engine.connect() as conn:
        stored = conn.execute(cosignatures.select()).all()
    assert [row.size for row in stored] == [25]  # only the newest is kept between checkpoints
    assert alarms == []
    engine.dispose()
