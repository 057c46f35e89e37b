"""EventService's domain side: read the outbox by cursor; number and prune it.

A reader names its position with a page token: the sequence number of the last event
it handled (the empty token is the start of what is retained). The token is durable: it
stays valid across restarts of the vault and of the reader, so a consumer stores it with
its own progress and resumes from it. The feed never ends; a consumer polls with the
last `next_page_token` it received.

Every read is authorized (`events:read`) and audited before it returns, naming the
subjects the page mentions. Events carry ids, kinds, times and non-personal facts only
(vault.event_kinds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from vault.access.guard import authorize
from vault.audit_trail import Auditor
from vault.clock import Clock, to_micros
from vault.context import CallContext
from vault.errors import FieldViolation, InvalidArgumentError
from vault.event_kinds import EventKind
from vault.policy import Action, PolicyEngine
from vault.storage import events as outbox
from vault.storage.db import Database

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TOKEN = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class EventPage:
    """A page of the feed and where the next one starts."""

    events: list[outbox.StoredEvent]
    next_page_token: str
    # The lowest sequence number still retained (0: none); a position below it minus
    # one has missed events the retention window removed.
    oldest_sequence: int


class EventFeed:
    """Reads of the outbox for one vault process, and its background upkeep."""

    def __init__(
        self,
        *,
        db: Database,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        retention: timedelta,
    ) -> None:
        self._db = db
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._retention = retention

    def list(
        self,
        call: CallContext,
        *,
        page_size: int,
        page_token: str,
        kinds: Sequence[EventKind] = (),
    ) -> EventPage:
        """The caller's tenant's events after `page_token`, lowest sequence first."""
        principal = authorize(self._policy, call, Action.EVENTS_READ)
        limit = _page_size(page_size)
        after = _position(page_token)
        self.sequence()
        with self._db.read() as conn:
            found = outbox.page(conn, principal.tenant, after=after, limit=limit, kinds=kinds)
            highest = outbox.highest_sequence(conn)
            oldest = outbox.oldest_sequence(conn)
        # Fewer than a page: nothing else of this tenant (and these kinds) is numbered up
        # to `highest` in this snapshot, so the next read may start there.
        position = found[-1].sequence if len(found) == limit else max(after, highest)
        call.subject_ids = list(dict.fromkeys(e.subject_id for e in found))
        call.extra = {"events": str(len(found)), "after": str(after)}
        self._auditor.record(call)
        return EventPage(found, str(position), oldest)

    def sequence(self) -> int:
        """Number the committed events that have no number yet; how many."""
        with self._db.read() as conn:
            if not outbox.has_pending(conn):
                return 0
        with self._db.write() as conn:
            return outbox.sequence_pending(conn)

    def prune_once(self) -> bool:
        """Number what is pending, then drop one batch of events past the retention
        window (the background task `event-prune`); True: more are waiting."""
        self.sequence()
        cutoff = to_micros(self._clock.now() - self._retention)
        with self._db.write() as conn:
            return outbox.prune(conn, cutoff) == outbox.PRUNE_BATCH


def _page_size(size: int) -> int:
    if size < 0 or size > MAX_PAGE:
        raise InvalidArgumentError([FieldViolation("page_size", f"0 to {MAX_PAGE}")])
    return size or DEFAULT_PAGE


def _position(token: str) -> int:
    if not token:
        return 0
    if not _TOKEN.fullmatch(token):
        raise InvalidArgumentError([FieldViolation("page_token", "not a token this feed returned")])
    return int(token)
