"""Charts as server-rendered SVG: no script, no library. Every bar is a link to the
audit search it counts, and every chart has a text equivalent (a table in the page).

The builders return plain data (bars with labels, counts, colors and links); the
templates draw it, so every label goes through Jinja2's escaping."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vault.api.console_client import LoggedEntry
from vault.web.console import language
from vault.web.console.search import format_time, search_url

PALETTE = ("#1f5fa8", "#c2571a", "#2e7d4f", "#7b3fa0", "#a61e4d", "#5c6b00", "#00727a", "#8a5a00")
NO_PURPOSE = "(no purpose)"
DECISION_COLORS = {"allow": "#2e7d4f", "deny": "#b3261e"}


@dataclass(frozen=True)
class Segment:
    label: str
    count: int
    color: str
    href: str
    y: float = 0.0
    height: float = 0.0


@dataclass
class Column:
    label: str
    start: datetime
    end: datetime
    segments: list[Segment] = field(default_factory=list)
    x: float = 0.0
    show_label: bool = True

    @property
    def total(self) -> int:
        return sum(s.count for s in self.segments)


@dataclass(frozen=True)
class StackedChart:
    title: str
    columns: list[Column]
    legend: list[tuple[str, str, str]]  # label, color, href
    width: int
    height: int
    bar_width: float
    max_total: int
    ticks: list[tuple[float, int]]


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    href: str
    width: float


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    max_count: int


def buckets(start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
    """Hours for a day or less, days otherwise."""
    span = end - start
    step = timedelta(hours=1) if span <= timedelta(days=1) else timedelta(days=1)
    if step == timedelta(days=1):
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
        label = "%d %b"
    else:
        first = start.replace(minute=0, second=0, microsecond=0)
        label = "%H:00"
    out = []
    moment = first
    while moment < end:
        out.append((moment, moment + step, moment.strftime(label)))
        moment += step
    return out


def _scale(max_total: int) -> int:
    """A round top for the y axis."""
    if max_total <= 5:
        return 5
    magnitude: int = 10 ** (len(str(max_total)) - 1)
    for step in (1, 2, 5, 10):
        if max_total <= step * magnitude:
            return step * magnitude
    return max_total


def stacked(
    title: str,
    entries: Sequence[LoggedEntry],
    start: datetime,
    end: datetime,
    *,
    key: str,
    colors: dict[str, str] | None = None,
) -> StackedChart:
    """Entries per time bucket, stacked by `key` ("purpose" or "decision")."""
    slots = buckets(start, end)
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for logged in entries:
        when = logged.entry.time
        for i, (lo, hi, _) in enumerate(slots):
            if lo <= when < hi:
                counts[i][getattr(logged.entry, key) or NO_PURPOSE] += 1
                break
    names = sorted({name for c in counts.values() for name in c})
    palette = colors or {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    width, height = 520, 200
    gap = 2.0
    bar_width = max(2.0, (width - 44) / max(1, len(slots)) - gap)
    max_total = _scale(max((sum(c.values()) for c in counts.values()), default=0))
    columns = []
    step = max(1, len(slots) // 5)
    for i, (lo, hi, label) in enumerate(slots):
        last = i == len(slots) - 1
        show = i % step == 0 if not last else (i % step == 0 or i % step >= step / 2)
        column = Column(label, lo, hi, x=44 + i * (bar_width + gap), show_label=show)
        y = float(height - 24)
        for name in names:
            count = counts[i][name]
            if not count:
                continue
            h = (height - 34) * count / max_total
            y -= h
            filters = {"since": format_time(lo), "until": format_time(hi)}
            filters[key] = "" if name == NO_PURPOSE else name
            column.segments.append(
                Segment(name, count, palette.get(name, "#666"), search_url(**filters), y, h)
            )
        columns.append(column)
    legend = [
        (
            name,
            palette.get(name, "#666"),
            search_url(
                since=format_time(start),
                until=format_time(end),
                **{key: "" if name == NO_PURPOSE else name},
            ),
        )
        for name in names
    ]
    ticks = [(height - 24 - (height - 34) * f, round(max_total * f)) for f in (0, 0.5, 1)]
    return StackedChart(title, columns, legend, width, height, bar_width, max_total, ticks)


def ranked(title: str, counted: Counter[str], href_for: dict[str, str], top: int = 8) -> BarChart:
    items = counted.most_common(top)
    top_count = max((c for _, c in items), default=0)
    return BarChart(
        title,
        [Bar(label, count, href_for[label], 100.0 * count / top_count) for label, count in items],
        top_count,
    )


def denials_by_role(entries: Iterable[LoggedEntry], since: str, until: str) -> BarChart:
    counted: Counter[str] = Counter()
    for logged in entries:
        if logged.entry.decision == "deny":
            for role in logged.entry.actor_roles or ("(no role)",):
                counted[role] += 1
    hrefs = {
        role: search_url(
            decision="deny", role="" if role == "(no role)" else role, since=since, until=until
        )
        for role in counted
    }
    return ranked("Denials by role", counted, hrefs)


def restricted_readers(
    entries: Iterable[LoggedEntry], restricted: frozenset[str], since: str, until: str
) -> BarChart:
    counted: Counter[str] = Counter()
    for logged in entries:
        e = logged.entry
        if (
            e.decision == "allow"
            and e.action in language.DISCLOSURE_ACTIONS
            and restricted.intersection(e.field_names)
        ):
            counted[e.actor] += 1
    hrefs = {
        actor: search_url(actor=actor, decision="allow", since=since, until=until)
        for actor in counted
    }
    return ranked("Top readers of restricted fields", counted, hrefs)
