"""How a run drives its anonymization batches, per database.

SQLite has one writer at a time, and the job holds it for each batch's write
transaction. So the per-subject work (decrypting and generalizing the kept fields,
drawing pseudonyms, building audit entries) for the next batch is done from an unlocked
read while the current batch writes: by a child process on a large run
(`vault.retention.preparer`), and the write transaction locks and re-checks every
notice (`Batches.apply`).

PostgreSQL locks rows, not the database: workers each take their own batch
(`FOR UPDATE SKIP LOCKED`) and do everything in its one transaction, side by side.

Either way each batch commits on its own, so a crash loses at most the batches in flight,
and the caller's `stop` ends the run between batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import datetime

from vault.clock import Clock
from vault.retention.batches import AnonymizeOutcome, Batches
from vault.retention.preparer import Preparer


def prepared_ahead(
    batches: Batches,
    preparer: Preparer,
    *,
    clock: Clock,
    now: datetime,
    run_id: str,
    stop: threading.Event,
    checkpoint_pages: int | None = None,
) -> Iterator[AnonymizeOutcome]:
    """SQLite: `preparer` makes batch n+1 ready while batch n writes (`checkpoint_pages`:
    see `Database.write`)."""
    preparer.request(now, clock.now(), run_id, ())
    while not stop.is_set():
        notice_ids, prepared = preparer.result()
        if not notice_ids:
            return
        # Read once this batch is prepared; its notices are still open until it commits.
        preparer.request(now, clock.now(), run_id, notice_ids)
        done = batches.apply(prepared, notice_ids, now, run_id, checkpoint_pages)
        if done.notices:
            yield done
    preparer.result()  # the request in flight: answered, so the child is idle


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
