"""Statutory deadlines of data-subject requests, per jurisdiction (`policies/requests.yaml`).

Pure functions: `due_date` turns the day a request was received into the last day it may
be answered on, `deadline_at` into the last instant of that day in the jurisdiction's
time zone. GDPR art. 12(3) counts one calendar month (the same day number of the next
month, or that month's last day when it has none: Regulation 1182/71 art. 3(2)(c)); PIPL
counts working days (neither Saturday, Sunday nor a listed holiday) from the next day.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vault.policy.errors import PolicyConfigError

REQUESTS_FILE = "requests.yaml"
_SATURDAY = 5


class RequestRulesError(PolicyConfigError):
    """`requests.yaml` is malformed (the message names the entry, never more)."""


class _Jurisdiction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regulation: str = Field(min_length=1, max_length=80)
    timezone: str = "UTC"
    months: int | None = Field(default=None, ge=1, le=12)
    working_days: int | None = Field(default=None, ge=1, le=260)
    holidays: tuple[date, ...] = ()
    roll_to_working_day: bool = False

    @model_validator(mode="after")
    def _one_period(self) -> _Jurisdiction:
        if (self.months is None) == (self.working_days is None):
            raise ValueError("give exactly one of months and working_days")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return self


class _RequestsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, le=1)
    default_jurisdiction: str
    verification_minutes: int = Field(default=30, ge=1, le=24 * 60)
    jurisdictions: dict[str, _Jurisdiction] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_known(self) -> _RequestsFile:
        if self.default_jurisdiction not in self.jurisdictions:
            raise ValueError("default_jurisdiction is not listed under jurisdictions")
        return self


@dataclass(frozen=True)
class Deadline:
    """How long one jurisdiction gives a controller to answer."""

    code: str
    regulation: str
    zone: ZoneInfo
    months: int = 0
    working_days: int = 0
    holidays: frozenset[date] = frozenset()
    roll_to_working_day: bool = False

    def due_date(self, received: date) -> date:
        """The last day a request received on `received` may be answered on; a period
        in months that ends on a Saturday, Sunday or holiday ends on the next working day
        when `roll_to_working_day` (Regulation 1182/71 art. 3(4))."""
        if not self.months:
            return add_working_days(received, self.working_days, self.holidays)
        due = add_months(received, self.months)
        while self.roll_to_working_day and not is_working_day(due, self.holidays):
            due += timedelta(days=1)
        return due

    def deadline_at(self, received_at: datetime) -> datetime:
        """The last instant (aware) a request received at `received_at` is due by."""
        local = received_at.astimezone(self.zone)
        last_day = self.due_date(local.date())
        return datetime.combine(last_day, time.max, tzinfo=self.zone)


@dataclass(frozen=True)
class RequestRules:
    """The jurisdictions a request may name, the default one, the verification window."""

    jurisdictions: Mapping[str, Deadline]
    default: str
    verification: timedelta

    def deadline(self, jurisdiction: str) -> Deadline | None:
        """The named jurisdiction's rule (the default for ""), None when not configured."""
        return self.jurisdictions.get(jurisdiction or self.default)

    @classmethod
    def from_file(cls, path: Path) -> RequestRules:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RequestRulesError(
                path.name, None, f"cannot read ({type(exc).__name__})"
            ) from None
        except yaml.YAMLError:
            raise RequestRulesError(path.name, None, "not valid YAML") from None
        return cls.from_mapping(raw, path.name)

    @classmethod
    def from_mapping(cls, raw: object, name: str = REQUESTS_FILE) -> RequestRules:
        try:
            parsed = _RequestsFile.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise RequestRulesError(name, None, problems) from None
        return cls(
            jurisdictions={
                code: Deadline(
                    code=code,
                    regulation=j.regulation,
                    zone=ZoneInfo(j.timezone),
                    months=j.months or 0,
                    working_days=j.working_days or 0,
                    holidays=frozenset(j.holidays),
                    roll_to_working_day=j.roll_to_working_day,
                )
                for code, j in parsed.jurisdictions.items()
            },
            default=parsed.default_jurisdiction,
            verification=timedelta(minutes=parsed.verification_minutes),
        )


def add_months(day: date, months: int) -> date:
    """`day` moved `months` calendar months on; the month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def is_working_day(day: date, holidays: frozenset[date] = frozenset()) -> bool:
    """Neither Saturday, Sunday nor a listed holiday."""
    return day.weekday() < _SATURDAY and day not in holidays


def add_working_days(day: date, count: int, holidays: frozenset[date] = frozenset()) -> date:
    """The `count`-th working day after `day` (the day of receipt itself never counts)."""
    current = day
    left = count
    while left > 0:
        current += timedelta(days=1)
        if is_working_day(current, holidays):
            left -= 1
    return current
