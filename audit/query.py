"""Reading the log for compliance: filtered, keyset-paged queries and subject history.

Pages follow insertion order (`id`), oldest or newest first, resuming after the last id
of the previous page, so a page never skips or repeats an entry while the log grows.
The page token is opaque to callers and bound to the filters and order it was issued for.

The role filter has no column (roles live only in the entry itself): it is applied to
the decoded entries, scanning at most `ROLE_SCAN_BUDGET` rows a page, so a page filtered
by role may be short, or empty, and still carry a token to continue from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.append import epoch_us
from audit.entry import AuditEntry
from audit.errors import PageTokenError
from audit.mac import EntryMac
from audit.tables import entries as entries_table
from audit.tables import entry_subjects

MAX_PAGE_SIZE = 1000
ROLE_SCAN_BUDGET = 5000
_SCAN_CHUNK = 500


@dataclass(frozen=True)
class LoggedEntry:
    """An entry as stored: its database id, its leaf index once integrated, and itself."""

    id: int
    leaf_index: int | None
    entry: AuditEntry
    mac: bytes | None = None


@dataclass(frozen=True)
class Page:
    """One page of results; `next_page_token` is None on the last page."""

    entries: tuple[LoggedEntry, ...]
    next_page_token: str | None


def query(
    engine: Engine,
    *,
    subject_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    decision: str | None = None,
    purpose: str | None = None,
    tenant: str | None = None,
    result_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    role: str | None = None,
    newest_first: bool = False,
    page_size: int = 100,
    page_token: str | None = None,
) -> Page:
    """Entries matching every given filter, oldest first unless `newest_first`;
    `[since, until)` on entry time; `role` is one of the actor's roles.

    Raises `ValueError` for a bad page size or naive datetimes, `PageTokenError` for a
    token that is malformed or was issued for other filters.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    filters: dict[str, Any] = {
        "subject_id": subject_id,
        "actor": actor,
        "action": action,
        "decision": decision,
        "purpose": purpose,
        "tenant": tenant,
        "result_code": result_code,
        "since": None if since is None else epoch_us(since),
        "until": None if until is None else epoch_us(until),
    }
    # Only set keys join the fingerprint, so tokens issued before these keys existed
    # (oldest first, no role) stay valid.
    fingerprint = _fingerprint(
        filters | ({"role": role} if role else {}) | ({"newest": True} if newest_first else {})
    )
    after = None if page_token is None else _decode_token(page_token, fingerprint)
    if not role:
        statement = _statement(filters, after, newest_first).limit(page_size + 1)
        with engine.connect() as conn:
            rows = conn.execute(statement).all()
        found = tuple(_logged(row) for row in rows[:page_size])
        token = _encode_token(found[-1].id, fingerprint) if len(rows) > page_size else None
        return Page(found, token)
    return _role_page(
        engine,
        filters,
        role=role,
        newest_first=newest_first,
        page_size=page_size,
        after=after,
        fingerprint=fingerprint,
    )


def _logged(row: Any) -> LoggedEntry:
    return LoggedEntry(
        row[0],
        row[1],
        AuditEntry.from_canonical(bytes(row[2])),
        None if row[3] is None else bytes(row[3]),
    )


def _role_page(
    engine: Engine,
    filters: dict[str, Any],
    *,
    role: str,
    newest_first: bool,
    page_size: int,
    after: int | None,
    fingerprint: str,
) -> Page:
    """A page of entries whose actor held `role`, scanning at most ROLE_SCAN_BUDGET rows."""
    found: list[LoggedEntry] = []
    scanned = 0
    position = after
    with engine.connect() as conn:
        while scanned < ROLE_SCAN_BUDGET:
            chunk = min(_SCAN_CHUNK, ROLE_SCAN_BUDGET - scanned)
            rows = conn.execute(_statement(filters, position, newest_first).limit(chunk)).all()
            for row in rows:
                logged = _logged(row)
                scanned += 1
                position = logged.id
                if role in logged.entry.actor_roles:
                    found.append(logged)
                    if len(found) == page_size:
                        more = _any_after(conn, filters, position, newest_first)
                        token = _encode_token(position, fingerprint) if more else None
                        return Page(tuple(found), token)
            if len(rows) < chunk:
                return Page(tuple(found), None)
        more = position is not None and _any_after(conn, filters, position, newest_first)
    token = _encode_token(position, fingerprint) if more and position is not None else None
    return Page(tuple(found), token)


def _any_after(conn: Any, filters: dict[str, Any], position: int, newest_first: bool) -> bool:
    return conn.execute(_statement(filters, position, newest_first).limit(1)).first() is not None


def entry_at(engine: Engine, leaf_index: int, *, tenant: str | None = None) -> LoggedEntry | None:
    """The integrated entry at `leaf_index` (of `tenant`, when given), or None."""
    table = entries_table
    statement = sa.select(table.c.id, table.c.leaf_index, table.c.entry, table.c.mac).where(
        table.c.leaf_index == leaf_index
    )
    if tenant is not None:
        statement = statement.where(table.c.tenant == tenant)
    with engine.connect() as conn:
        row = conn.execute(statement).first()
    return None if row is None else _logged(row)


def iter_query(engine: Engine, **filters: Any) -> Iterator[LoggedEntry]:
    """Every entry `query` would return for `filters`, page after page (for exports)."""
    token: str | None = None
    while True:
        page = query(engine, page_size=MAX_PAGE_SIZE, page_token=token, **filters)
        yield from page.entries
        if page.next_page_token is None:
            return
        token = page.next_page_token


def iter_documents(
    engine: Engine,
    *,
    tenant: str | None = None,
    since: datetime | None = None,
    chunk: int = 5000,
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """(leaf index, entry as a JSON document) of every entry of `tenant` at or after
    `since`, oldest first, in keyset chunks: a fast read for analyses over many entries
    (`policy simulate`) that trusts the stored bytes. Verifying them is `verify_log`'s
    job; `query` and `iter_query` check each entry's canonical form as they read it.
    """
    table = entries_table
    after = 0
    while True:
        statement = sa.select(table.c.id, table.c.leaf_index, table.c.entry).where(
            table.c.id > after
        )
        if tenant is not None:
            statement = statement.where(table.c.tenant == tenant)
        if since is not None:
            statement = statement.where(table.c.time_us >= epoch_us(since))
        with engine.connect() as conn:
            rows = conn.execute(statement.order_by(table.c.id).limit(chunk)).all()
        for row in rows:
            yield row[1], json.loads(bytes(row[2]))
        if len(rows) < chunk:
            return
        after = rows[-1][0]


def subject_history(
    engine: Engine,
    subject_id: str,
    *,
    tenant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    newest_first: bool = False,
    page_size: int = 100,
    page_token: str | None = None,
) -> Page:
    """Every entry about one subject, oldest first unless `newest_first`: who saw or
    changed it, when and why.

    Allowed and denied attempts alike; paged like `query`. Subject ids are random, so
    `tenant` is only a safeguard (an entry's tenant is its caller's).
    """
    return query(
        engine,
        subject_id=subject_id,
        tenant=tenant,
        since=since,
        until=until,
        newest_first=newest_first,
        page_size=page_size,
        page_token=page_token,
    )


def _statement(filters: dict[str, Any], after: int | None, newest_first: bool) -> sa.Select[Any]:
    table = entries_table
    statement = sa.select(table.c.id, table.c.leaf_index, table.c.entry, table.c.mac)
    if after is not None:
        statement = statement.where(table.c.id < after if newest_first else table.c.id > after)
    for name in ("actor", "action", "decision", "purpose", "tenant", "result_code"):
        if filters[name] is not None:
            statement = statement.where(table.c[name] == filters[name])
    if filters["since"] is not None:
        statement = statement.where(table.c.time_us >= filters["since"])
    if filters["until"] is not None:
        statement = statement.where(table.c.time_us < filters["until"])
    if filters["subject_id"] is not None:
        # Tenant is filtered on the entry, whose columns `verify_log` checks; the link's
        # own tenant column only keeps its primary key unique.
        link = sa.select(entry_subjects.c.entry_id).where(
            entry_subjects.c.subject_id == filters["subject_id"]
        )
        statement = statement.where(table.c.id.in_(link))
    return statement.order_by(table.c.id.desc() if newest_first else table.c.id)


def _fingerprint(filters: dict[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _encode_token(after: int, fingerprint: str) -> str:
    raw = json.dumps({"v": 1, "after": after, "q": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def _decode_token(token: str, fingerprint: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        raise PageTokenError("page token is malformed") from None
    if not isinstance(document, dict) or document.get("v") != 1:
        raise PageTokenError("page token is malformed")
    after = document.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise PageTokenError("page token is malformed")
    if document.get("q") != fingerprint:
        raise PageTokenError("page token was issued for a different query")
    return after


def authentic(
    engine: Engine, found: Iterator[LoggedEntry] | list[LoggedEntry], mac: EntryMac
) -> tuple[list[LoggedEntry], int]:
    """The entries whose MAC verifies under `mac`, and how many were left out.

    An entry without a MAC counts as authentic only if it was written before the first
    entry that has one (the log's entries from before MACs existed); one after it, or
    one whose MAC fails, was not written by the vault.
    """
    with engine.connect() as conn:
        first = conn.execute(
            sa.select(entries_table.c.id)
            .where(entries_table.c.mac.is_not(None))
            .order_by(entries_table.c.id)
            .limit(1)
        ).scalar_one_or_none()
    kept: list[LoggedEntry] = []
    dropped = 0
    for logged in found:
        data = logged.entry.canonical_bytes()
        legacy = logged.mac is None and (first is None or logged.id < first)
        if legacy or mac.is_valid(data, logged.mac):
            kept.append(logged)
        else:
            dropped += 1
    return kept, dropped
