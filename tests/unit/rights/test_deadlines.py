"""Statutory deadlines: GDPR's calendar month, PIPL's working days, the rules file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.rights.deadlines import (
    REQUESTS_FILE,
    Deadline,
    RequestRules,
    RequestRulesError,
    add_months,
    add_working_days,
    is_working_day,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies"
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
holidays = st.frozensets(days, max_size=30)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (date(2027, 1, 15), date(2027, 2, 15)),
        (date(2027, 1, 31), date(2027, 2, 28)),  # February has no 31st: its last day
        (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
        (date(2027, 3, 31), date(2027, 4, 30)),
        (date(2027, 12, 20), date(2028, 1, 20)),  # across the year
    ],
)
def test_one_calendar_month_is_the_same_day_or_the_months_last(received: date, due: date) -> None:
    assert add_months(received, 1) == due


@given(days, st.integers(min_value=1, max_value=12))
def test_a_month_later_is_later_and_never_skips_a_month(day: date, months: int) -> None:
    due = add_months(day, months)
    assert due > day
    assert (due.year * 12 + due.month) - (day.year * 12 + day.month) == months
    assert due.day == day.day or due.day < day.day  # clamped only at a month's end


@given(days, holidays)
def test_a_rolled_month_ends_on_the_first_working_day_from_the_plain_month(
    day: date, off: frozenset[date]
) -> None:
    rolled = Deadline(
        "EU", "GDPR", ZoneInfo("UTC"), months=1, holidays=off, roll_to_working_day=True
    )
    plain = add_months(day, 1)
    due = rolled.due_date(day)
    assert is_working_day(due, off)
    assert due >= plain
    assert all(
        not is_working_day(plain + timedelta(days=i), off) for i in range((due - plain).days)
    )


def test_fifteen_working_days_skip_weekends() -> None:
    # Monday 2027-03-01: three full weeks minus the receipt day -> Monday 2027-03-22.
    assert add_working_days(date(2027, 3, 1), 15) == date(2027, 3, 22)
    # Received on a Friday: counting starts on Monday.
    assert add_working_days(date(2027, 3, 5), 1) == date(2027, 3, 8)


def test_holidays_are_not_working_days() -> None:
    off = frozenset({date(2027, 3, 8), date(2027, 3, 9)})
    assert add_working_days(date(2027, 3, 5), 1, off) == date(2027, 3, 10)


@given(days, st.integers(min_value=1, max_value=60), holidays)
def test_the_due_day_is_a_working_day_with_exactly_n_working_days_after_receipt(
    day: date, count: int, off: frozenset[date]
) -> None:
    due = add_working_days(day, count, off)
    assert is_working_day(due, off)
    between = [day + timedelta(days=i) for i in range(1, (due - day).days + 1)]
    assert sum(is_working_day(d, off) for d in between) == count


@given(days, st.integers(min_value=1, max_value=30), holidays)
def test_more_working_days_never_end_earlier(day: date, count: int, off: frozenset[date]) -> None:
    assert add_working_days(day, count + 1, off) > add_working_days(day, count, off)


def test_the_shipped_rules_give_gdpr_a_month_and_pipl_fifteen_working_days() -> None:
    rules = RequestRules.from_file(POLICIES / REQUESTS_FILE)
    assert rules.default == "EU"
    received = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)
    eu = rules.deadline("")
    assert eu is not None
    # 2027-02-28 is a Sunday: the month ends on Monday 1 March (1182/71 art. 3(4)).
    assert eu.deadline_at(received).date() == date(2027, 3, 1)
    assert eu.deadline_at(datetime(2027, 1, 15, 10, 0, tzinfo=UTC)).date() == date(2027, 2, 15)
    # Received 2026-12-01: due Friday 2027-01-01, a listed holiday, then a weekend.
    assert eu.deadline_at(datetime(2026, 12, 1, 10, 0, tzinfo=UTC)).date() == date(2027, 1, 4)
    cn = rules.deadline("CN")
    assert cn is not None
    # Sunday 2027-01-31 in Shanghai; 15 working days from Monday: Friday 2027-02-19,
    # but the listed Spring Festival days (Feb 5, 8-11) push it to Friday 2027-02-26.
    assert cn.deadline_at(received).date() == date(2027, 2, 26)
    assert rules.deadline("XX") is None


def test_a_deadline_ends_at_the_last_instant_of_its_day_in_the_jurisdictions_zone() -> None:
    rules = RequestRules.from_file(POLICIES / REQUESTS_FILE)
    cn = rules.deadline("CN")
    assert cn is not None
    # 20:00 UTC on Friday is already Saturday in Shanghai: counting starts on Monday.
    at = cn.deadline_at(datetime(2027, 3, 5, 20, 0, tzinfo=UTC))
    assert at.date() == add_working_days(date(2027, 3, 6), 15)
    assert (at.hour, at.minute) == (23, 59)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"version": 1, "default_jurisdiction": "EU", "jurisdictions": {}}, "jurisdictions"),
        (
            {
                "version": 1,
                "default_jurisdiction": "US",
                "jurisdictions": {"EU": {"regulation": "GDPR", "months": 1}},
            },
            "default_jurisdiction",
        ),
        (
            {
                "version": 1,
                "default_jurisdiction": "EU",
                "jurisdictions": {"EU": {"regulation": "GDPR", "months": 1, "working_days": 3}},
            },
            "exactly one",
        ),
        (
            {
                "version": 1,
                "default_jurisdiction": "EU",
                "jurisdictions": {"EU": {"regulation": "GDPR", "months": 1, "timezone": "Mars"}},
            },
            "time zone",
        ),
    ],
)
def test_a_bad_rules_file_is_refused_naming_the_problem(raw: object, problem: str) -> None:
    with pytest.raises(RequestRulesError, match=problem):
        RequestRules.from_mapping(raw)
