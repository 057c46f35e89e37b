"""How a run drives its anonymization batches, per database.

SQLite has one writer at a time, and the job holds it for each batch's write
transaction. So the per-subject work (decrypting and generalizing the kept fields,
drawing pseudonyms, building audit entries) is done for the next batch, from an unlocked
read, while the current batch writes: a thread prepares ahead, the write transaction
locks and re-checks every notice (`Batches.apply`). sqlite3 releases the GIL while a
statement runs, so the two overlap, and the write lock is held only for the writes
(which remain most of a batch's time: docs/performance.md, "Anonymization").

PostgreSQL locks rows, not the database: workers each take their own batch
(`FOR UPDATE SKIP LOCKED`) and do everything in its one transaction, side by side.

Either way each batch commits on its own, so a crash loses at most the batches in flight,
and the caller's `stop` ends the run between batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from vault.retention import store
from vault.retention.batches import AnonymizeOutcome, Batches, Prepared


def prepared_ahead(
    batches: Batches, now: datetime, run_id: str, stop: threading.Event
) -> Iterator[AnonymizeOutcome]:
    """SQLite: prepare batch n+1 in a thread while batch n writes."""

    def read_and_prepare(
        in_flight: Sequence[str],
    ) -> tuple[list[store.DueNotice], dict[str, Prepared]]:
        due = batches.read_due(now, in_flight)
        return due, batches.prepare(due, now, run_id)

    with ThreadPoolExecutor(1, thread_name_prefix="retention-prepare") as ahead:
        upcoming = ahead.submit(read_and_prepare, ())
        while not stop.is_set():
            due, prepared = upcoming.result()
            if not due:
                return
            # Read once this batch is prepared; its notices are still open until it commits.
            upcoming = ahead.submit(read_and_prepare, [d.notice_id for d in due])
            done = batches.apply(prepared, due, now, run_id)
            if done.notices:
                yield done


def side_by_side(
    batches: Batches, now: datetime, run_id: str, stop: threading.Event, workers: int
) -> Iterator[AnonymizeOutcome]:
    """PostgreSQL: `workers` threads, each taking batches until none is left."""
    outcomes: queue.Queue[AnonymizeOutcome | BaseException | None] = queue.Queue()
    halt = threading.Event()

    def work() -> None:
        try:
            while not (stop.is_set() or halt.is_set()):
                done = batches.anonymize(now, run_id)
                if not done.notices:
                    return
                outcomes.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcomes.put(exc)
        finally:
            outcomes.put(None)

    threads = [
        threading.Thread(target=work, name=f"retention-worker-{n}", daemon=True)
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = outcomes.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        halt.set()
        for thread in threads:
            thread.join()
