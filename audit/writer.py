"""Group commit: durable appends for reads, many threads sharing one commit.

`audit.append_in` is for changes: the entry commits or rolls back with the change it
records. `GroupCommitWriter` is for reads: many threads' entries share one transaction
and one commit, and `append` returns only once its entry is durable. If that commit
fails, every waiter of the batch gets `AuditUnavailableError`, so the read fails closed.

`submit` hands an entry over without waiting and returns a `PendingAppend`: a server
whose reads run on an event loop awaits its durability there (`when_done` calls back on
the writer's thread) instead of parking a thread on it, and sends nothing before.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from audit.append import append_in, append_sqlite_committed
from audit.entry import AuditEntry
from audit.errors import AuditUnavailableError

__all__ = ["GroupCommitWriter", "PendingAppend", "append_in"]

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    entries: list[AuditEntry] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Called on the writer's thread once the batch is committed or has failed; None
    # once that has happened (a late `when_done` then calls back at once).
    callbacks: list[Callable[[], None]] | None = field(default_factory=list)


class PendingAppend:
    """One entry handed to the writer: `wait` for it, or be called back `when_done`."""

    __slots__ = ("_batch", "_lock", "_position")

    def __init__(self, batch: _Batch, position: int, lock: threading.Lock) -> None:
        self._batch = batch
        self._position = position
        self._lock = lock

    def wait(self, timeout: float | None = 10.0) -> int:
        """The entry's id once it is durable; `AuditUnavailableError` if its batch
        failed or `timeout` seconds pass first."""
        if not self._batch.done.wait(timeout):
            raise AuditUnavailableError("audit write timed out")
        return self.result()

    def done(self) -> bool:
        return self._batch.done.is_set()

    def result(self) -> int:
        """The entry's id; `AuditUnavailableError` if its batch failed (or is not done)."""
        batch = self._batch
        if not batch.done.is_set():
            raise AuditUnavailableError("audit write not finished")
        if batch.error is not None:
            raise AuditUnavailableError("audit log unavailable") from batch.error
        return batch.ids[self._position]

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call `callback` (no arguments, must not raise or block) once the entry's
        batch is committed or has failed: on the writer's thread, or here if it already
        is."""
        with self._lock:
            waiting = self._batch.callbacks
            if waiting is not None:
                waiting.append(callback)
                return
        callback()


class GroupCommitWriter:
    """Durable appends from many threads, written together by one background thread.

    While the writer thread commits one batch, new entries gather in the next, so the
    number of commits adapts to the load without any timer.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 1000) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
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
        return self.submit(entry).wait(timeout)

    def submit(self, entry: AuditEntry) -> PendingAppend:
        """Hand `entry` to the writer without waiting; nothing it stands for may be
        released before its `PendingAppend` says it is durable.

        Raises `AuditUnavailableError` if the writer is closed.
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
        return PendingAppend(batch, position, self._lock)

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
            if self._sqlite:
                batch.ids = append_sqlite_committed(self._engine, batch.entries)
            else:
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
            with self._lock:
                callbacks, batch.callbacks = batch.callbacks or [], None
            for callback in callbacks:
                try:
                    callback()
                except Exception as exc:  # noqa: BLE001 - one waiter's fault must not stop the writer
                    log.error("audit waiter's callback failed: %s", type(exc).__name__)  # noqa: TRY400
