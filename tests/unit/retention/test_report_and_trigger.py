"""k-anonymity arithmetic and the cron trigger, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vault.retention.report import KAnonymity, Outcome, RetentionReport
from vault.retention.scheduler import CronTrigger


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def test_k_anonymity_counts_small_groups() -> None:
    k = KAnonymity.from_group_sizes([12, 5, 4, 1, 30])
    assert (k.records, k.groups, k.min_group_size) == (52, 5, 1)
    assert (k.groups_below_k, k.records_below_k) == (2, 5)
    assert KAnonymity.from_group_sizes([]) == KAnonymity()


def test_a_report_is_json_without_surprises() -> None:
    report = RetentionReport("run_x", datetime(2030, 1, 1, tzinfo=UTC))
    report.add(Outcome.ANONYMIZED, 3)
    report.note_held(f"sub_{i}" for i in range(500))
    report.finished_at = report.started_at + timedelta(seconds=2)
    doc = report.to_dict()
    assert doc["counts"] == {"notified": 0, "anonymized": 3, "cancelled": 0, "held": 0}
    assert len(report.held_subjects) == 100
    assert doc["duration_seconds"] == 2.0
    assert "anonymized=3" in report.summary()


def test_the_cron_trigger_fires_once_per_tick() -> None:
    clock = _Clock(datetime(2030, 5, 1, 3, 0, tzinfo=UTC))
    trigger = CronTrigger("17 3 * * *", clock)
    assert trigger.next_at == datetime(2030, 5, 1, 3, 17, tzinfo=UTC)
    assert not trigger.due()
    clock.current += timedelta(minutes=17)
    assert trigger.due()
    assert not trigger.due()  # once per tick
    clock.current += timedelta(days=3)  # missed ticks collapse into one run
    assert trigger.due()
    assert not trigger.due()
    trigger.retry()
    assert trigger.due()
