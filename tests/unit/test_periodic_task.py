"""`PeriodicTask`: a failing task keeps running and says so once, not on every round
(a WAL checkpoint runs four times a second), then says when it has recovered."""

from __future__ import annotations

import logging
import threading

import pytest

from vault.background import PeriodicTask


def test_an_outage_is_one_warning_then_one_recovery(caplog: pytest.LogCaptureFixture) -> None:
    rounds = 0
    recovered = threading.Event()

    def work() -> bool:
        nonlocal rounds
        rounds += 1
        if rounds <= 5:
            raise OSError("disk I/O error near 'ada@example.com'")
        recovered.set()
        return False

    task = PeriodicTask("wal-checkpoint", 0.001, work)
    with caplog.at_level(logging.DEBUG, logger="vault.background"):
        task.start()
        assert recovered.wait(10)
        task.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "wal-checkpoint failed (OSError, 1 in a row); will retry"
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["wal-checkpoint recovered after 5 failures"]
    assert "ada@example.com" not in caplog.text
