"""Running the retention job in-process on a cron expression (times in UTC).

Every replica polls its trigger; all of them fire at the same cron time and the runner
lock lets exactly one of them run. A run that fails (database down) is retried at the
next poll rather than at the next cron time.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from croniter import croniter

from vault.background import PeriodicTask
from vault.clock import Clock
from vault.retention.job import RetentionJob

log = logging.getLogger(__name__)


class CronTrigger:
    """Due once per cron tick of the injected clock; the first tick after creation."""

    def __init__(self, expression: str, clock: Clock) -> None:
        self.expression = expression
        self._clock = clock
        self._next = self._after(clock.now())

    @property
    def next_at(self) -> datetime:
        return self._next

    def _after(self, moment: datetime) -> datetime:
        following: datetime = croniter(self.expression, moment).get_next(datetime)
        return following

    def due(self) -> bool:
        """True (once) when the clock has reached the next tick; then moves to the one after."""
        now = self._clock.now()
        if now < self._next:
            return False
        self._next = self._after(now)
        return True

    def retry(self) -> None:
        """Be due again at the next poll."""
        self._next = self._clock.now()


class RetentionScheduler:
    """A background thread that runs `job` whenever the cron trigger is due."""

    def __init__(
        self, job: RetentionJob, expression: str, clock: Clock, poll_seconds: float
    ) -> None:
        self._job = job
        self._trigger = CronTrigger(expression, clock)
        self._halt = threading.Event()
        self._task = PeriodicTask("retention", poll_seconds, self._tick)

    def start(self) -> None:
        log.info(
            "retention runs on '%s'; next at %s", self._trigger.expression, self._trigger.next_at
        )
        self._task.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop between batches; what is left waits for the next run."""
        self._halt.set()
        self._task.stop(timeout)

    def _tick(self) -> bool:
        if not self._trigger.due():
            return False
        try:
            self._job.run(stop=self._halt)
        except Exception:
            self._trigger.retry()
            raise
        return False
