"""The audit search's state, read from and written to the query string.

The URL is the whole state (as in Datasette): filters, order, page size and cursor, so a
search can be bookmarked, shared and reopened, and every chart bar links to one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from vault.api.console_client import EntryFilters, LoggedEntry
from vault.web.console import language

FILTER_NAMES = (
    "since",
    "until",
    "actor",
    "role",
    "action",
    "subject",
    "purpose",
    "decision",
    "result",
)
DECISIONS = ("allow", "deny")
RESULTS = (
    "OK",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "NOT_FOUND",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "ABORTED",
    "UNAVAILABLE",
    "INTERNAL",
)
PAGE_SIZES = (10, 25, 50, 100, 200)
_NAME = re.compile(r"[A-Za-z0-9_.:@*/+-]{0,200}")


class SearchError(ValueError):
    """A filter value the search cannot use; the message names the filter."""


def parse_time(text: str, name: str) -> datetime | None:
    """`2026-12-06T05:30`, `2026-12-06T05:30:00Z`, `2026-12-06`; UTC unless an offset."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SearchError(f"{name}: not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime | None) -> str:
    """For a datetime-local input and for URLs (UTC, minutes or seconds)."""
    if moment is None:
        return ""
    moment = moment.astimezone(UTC)
    pattern = "%Y-%m-%dT%H:%M" if moment.second == 0 else "%Y-%m-%dT%H:%M:%S"
    return moment.strftime(pattern)


@dataclass(frozen=True)
class Search:
    since: str = ""
    until: str = ""
    actor: str = ""
    role: str = ""
    action: str = ""
    subject: str = ""
    purpose: str = ""
    decision: str = ""
    result: str = ""
    order: str = "newest"
    size: int = 50
    cursor: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Search:
        values: dict[str, Any] = {}
        for name in FILTER_NAMES:
            value = params.get(name, "").strip()
            if name not in ("since", "until") and not _NAME.fullmatch(value):
                raise SearchError(f"{name}: only letters, digits and _ . : @ - are allowed")
            values[name] = value
        if values["decision"] and values["decision"] not in DECISIONS:
            raise SearchError("decision: allow or deny")
        order = params.get("order", "newest")
        if order not in ("newest", "oldest"):
            raise SearchError("order: newest or oldest")
        try:
            size = int(params.get("size", "50"))
        except ValueError:
            raise SearchError("size: a number") from None
        if size not in PAGE_SIZES:
            raise SearchError(f"size: one of {', '.join(map(str, PAGE_SIZES))}")
        cursor = params.get("cursor", "")
        if len(cursor) > 512 or not re.fullmatch(r"[A-Za-z0-9_-]*", cursor):
            raise SearchError("cursor: not a cursor of this search")
        search = cls(order=order, size=size, cursor=cursor, **values)
        search.filters()  # checks the times
        return search

    def filters(self) -> EntryFilters:
        return EntryFilters(
            subject_id=self.subject,
            actor=self.actor,
            role=self.role,
            action=self.action,
            purpose=self.purpose,
            decision=self.decision,
            result_code=self.result,
            since=parse_time(self.since, "since"),
            until=parse_time(self.until, "until"),
        )

    @property
    def newest_first(self) -> bool:
        return self.order == "newest"

    @property
    def active(self) -> list[tuple[str, str]]:
        return [(n, getattr(self, n)) for n in FILTER_NAMES if getattr(self, n)]

    def query(self, **changes: Any) -> str:
        """The query string of this search with `changes` (the cursor dropped unless given)."""
        changed = replace(self, **({"cursor": ""} | changes))
        pairs = []
        for spec in fields(changed):
            value = getattr(changed, spec.name)
            default = spec.default
            if value not in (default, ""):
                pairs.append((spec.name, str(value)))
        return urlencode(pairs)

    def url(self, base: str = "/console/audit", **changes: Any) -> str:
        query = self.query(**changes)
        return f"{base}?{query}" if query else base


def search_url(**filters: str) -> str:
    """A link to the audit search with these filters (for charts and entry pages)."""
    unknown = set(filters) - set(FILTER_NAMES)
    if unknown:
        raise ValueError(f"not search filters: {sorted(unknown)}")
    return Search().url(**{k: v for k, v in filters.items() if v})


def row(logged: LoggedEntry) -> dict[str, Any]:
    """What a table row or a timeline item shows of an entry."""
    e = logged.entry
    return {
        "index": logged.index,
        "time": e.time.strftime("%Y-%m-%d %H:%M:%S"),
        "iso": e.time.isoformat().replace("+00:00", "Z"),
        "actor": e.actor,
        "roles": [language.role_name(r) for r in e.actor_roles],
        "action": e.action,
        "subjects": list(e.subject_ids),
        "fields": list(e.field_names),
        "purpose": e.purpose,
        "decision": e.decision,
        "result": e.result_code,
        "sentence": language.sentence(e),
        "justification": e.justification,
    }


def as_json(logged: LoggedEntry) -> dict[str, Any]:
    document = logged.entry.to_dict()
    document["index"] = logged.index
    document["sentence"] = language.sentence(logged.entry)
    return document
