"""Group commit: durable appends for reads, many threads sharing one commit.

`audit.append_in` is for changes: the entry commits or rolls back with the change it
records. `GroupCommitWriter` is for reads: many threads' entries share one transaction
and one commit, and `append` returns only once its entry is durable. If that commit
fails, every waiter of the batch gets `AuditUnavailableError`, so the read fails closed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from audit.append import append_in
from audit.entry import AuditEntry
from audit.errors import AuditUnavailableError

__all__ = ["GroupCommitWriter", "append_in"]

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    entries: list[AuditEntry] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class GroupCommitWriter:
    """Durable appends from many threads, written together by one background thread.

    While the writer thread commits one batch, new entries gather in the next, so the
    number of commits adapts to the load without any timer.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 1000) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: deque[_Batch] = deque()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="audit-group-commit", daemon=True)
        self._thread.start()

    def append(self, entry: AuditEntry, *, timeout: float | None = 10.0) -> int:
        """Write `entry` durably and return its id; blocks until committed.

        Raises `AuditUnavailableError` if the batch's commit failed, the writer is
        closed, or `timeout` seconds pass first (the entry may still be written later:
        an extra record of a failed read is harmless, a missing one is not).
        """
        with self._lock:
            if self._closing:
                raise AuditUnavailableError("audit writer is closed")
            if not self._queue or len(self._queue[-1].entries) >= self._max_batch:
                self._queue.append(_Batch())
            batch = self._queue[-1]
            position = len(batch.entries)
            batch.entries.append(entry)
            self._wakeup.notify()
        if not batch.done.wait(timeout):
            raise AuditUnavailableError("audit write timed out")
        if batch.error is not None:
            raise AuditUnavailableError("audit log unavailable") from batch.error
        return batch.ids[position]

    def close(self, timeout: float | None = None) -> None:
        """Write everything already appended, then stop the writer thread."""
        with self._lock:
            self._closing = True
            self._wakeup.notify()
        self._thread.join(timeout)

    def __enter__(self) -> GroupCommitWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wakeup.wait()
                if not self._queue:
                    return
                batch = self._queue.popleft()
            self._write(batch)

    def _write(self, batch: _Batch) -> None:
        try:
            with self._engine.begin() as conn:
                batch.ids = append_in(conn, batch.entries)
        # Any failure at all must reach the waiters, or they would wait forever or,
        # worse, go on as if their entries had been written.
        except Exception as exc:  # noqa: BLE001
            # The type only: driver messages can quote SQL and bound entry values.
            log.error(  # noqa: TRY400 - not log.exception, for the same reason
                "audit batch of %d entries failed: %s", len(batch.entries), type(exc).__name__
            )
            batch.error = exc
        finally:
            if batch.error is None and len(batch.ids) != len(batch.entries):
                batch.error = AuditUnavailableError("audit batch was not written")
            batch.done.set()
