"""A daemon thread that notices edits to `policies/` and asks the engine to reload."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from vault.policy.sources import stat_signature

_log = logging.getLogger(__name__)

# A file rewritten within the file system's timestamp granularity, with the same size,
# keeps its signature; every this many polls the engine re-hashes the files anyway.
REHASH_EVERY = 10


class PolicyWatcher:
    """Polls the policy files' (mtime, size) and calls `reload` when they change.

    `reload` itself compares content hashes, so a touched but unchanged file does not
    rebuild anything. `reload` must not raise for a bad policy (the engine keeps the
    old one); anything else it raises is logged by type only and polling goes on.
    """

    def __init__(
        self,
        directory: Path,
        reload: Callable[[], object],
        signature: Callable[[], tuple[tuple[int, int], ...]],
        interval: float,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._directory = directory
        self._reload = reload
        self._signature = signature
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-watcher", daemon=True)

    def start(self) -> None:
        """Start polling in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread (at most one poll interval)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        polls = 0
        while not self._stop.wait(self._interval):
            polls += 1
            try:
                changed = stat_signature(self._directory) != self._signature()
                if changed or polls % REHASH_EVERY == 0:
                    self._reload()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one poll
                _log.error("policy watcher poll failed (%s)", type(exc).__name__)
