"""Periodic background work (key re-wrap, key refresh, WAL checkpoints) on daemon threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# While a task keeps failing (a database outage), its WARNING is repeated at most this
# often; the failures in between are logged at DEBUG. A WAL checkpoint runs 4 times a
# second: an outage would otherwise write four lines a second per process.
REPEAT_WARNING_SECONDS = 60.0


class PeriodicTask:
    """Calls `work` every `interval` seconds until stopped; a failure is logged, not fatal.

    `work` returns True when it wants to run again at once (e.g. more batches are waiting).
    """

    def __init__(self, name: str, interval: float, work: Callable[[], bool]) -> None:
        self.name = name
        self._interval = interval
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failures = 0
        self._warned_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            again = False
            try:
                again = self._work()
            except Exception as exc:  # noqa: BLE001 - background work must survive outages
                self._failed(exc)
            else:
                self._succeeded()
            if not again:
                self._stop.wait(self._interval)

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1 or now - self._warned_at >= REPEAT_WARNING_SECONDS:
            self._warned_at = now
            # The type only: a driver's message can quote SQL and values.
            log.warning(
                "%s failed (%s, %d in a row); will retry", self.name, type(exc).__name__,
                self._failures,
            )  # fmt: skip
        else:
            log.debug("%s failed again (%s)", self.name, type(exc).__name__)

    def _succeeded(self) -> None:
        if self._failures:
            log.info("%s recovered after %d failures", self.name, self._failures)
            self._failures = 0
