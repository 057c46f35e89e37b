"""How a run drives its anonymization batches.

The per-subject work of a batch (decrypting and generalizing the kept fields, drawing
pseudonyms, building and encoding audit entries) needs no lock, so it is done for the
next batch from an unlocked read while the current batch writes: by a child process on
a large run (`vault.retention.preparer`), and the write transaction locks and re-checks
every notice (`RetentionBatchRunner.apply`; on PostgreSQL `FOR UPDATE SKIP LOCKED`, so runners never
wait for each other or apply the same notice twice).

Each batch commits on its own, so a crash loses at most the batch in flight, and the
caller's `stop` ends the run between batches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

from vault.clock import Clock
from vault.retention.batches import AnonymizeOutcome, RetentionBatchRunner
from vault.retention.preparer import Preparer


def prepared_ahead(
    batches: RetentionBatchRunner,
    preparer: Preparer,
    *,
    clock: Clock,
    now: datetime,
    run_id: str,
    stop: threading.Event,
    checkpoint_pages: int | None = None,
) -> Iterator[AnonymizeOutcome]:
    """`preparer` makes batch n+1 ready while batch n writes (`checkpoint_pages`: see
    `Database.write`)."""
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
    # Stopped: the request in flight is dropped (a child's reply finds the pipe closed).
