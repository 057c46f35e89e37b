"""Periodic background work (key re-wrap, key refresh) on daemon threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


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
                log.warning("%s failed (%s); will retry", self.name, type(exc).__name__)
            if not again:
                self._stop.wait(self._interval)
