"""Reads: get, find and export, always through a view and for a declared purpose.

The audit entry of a read is committed before any data leaves; if it cannot be written
the read fails closed with no data. Every read derives the subjects' consent from the
consent ledger inside the same read transaction as the subjects themselves (no cache),
and the entry records the ledger version the decision relied on.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date

from vault.access.guard import (
    authorize,
    load_own_subject_with_consent,
    stated_justification,
)
from vault.audit_trail import Auditor
from vault.clock import Clock
from vault.consent import ledger
from vault.context import CallContext
from vault.crypto import is_subject_id
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    PermissionDeniedError,
)
from vault.fields.dictionary import DataDictionary
from vault.policy import Action, LegalBasis, PolicyEngine, class_resource
from vault.policy.subject import STATE_RULE
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.records.limits import RateLimiter
from vault.records.rendering import SubjectView, ViewRenderer
from vault.storage import subjects as repo
from vault.storage.db import Database
from vault.subject import SubjectState

DEFAULT_EXPORT_STATES = (SubjectState.ACTIVE, SubjectState.RESTRICTED)
_LEDGER_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTEREST})


class RecordReader:
    """The domain service behind VaultService's read RPCs."""

    def __init__(
        self,
        *,
        db: Database,
        sealing: RecordCipher,
        dictionary: DataDictionary,
        policy: PolicyEngine,
        renderer: ViewRenderer,
        auditor: Auditor,
        clock: Clock,
        export_batch_size: int = 500,
        search_limit: RateLimiter | None = None,
        find_page_size: int = 50,
        find_max_page_size: int = 500,
    ) -> None:
        self._db = db
        self._sealing = sealing
        self._dictionary = dictionary
        self._policy = policy
        self._renderer = renderer
        self._auditor = auditor
        self._clock = clock
        self._export_batch_size = export_batch_size
        self._search_limit = search_limit or RateLimiter("search", 0, 1, clock)
        self._find_page_size = find_page_size
        self._find_max_page_size = max(find_max_page_size, find_page_size)

    def _check_read(
        self, call: CallContext, action: Action, view: str, purpose: str, justification: str
    ) -> Principal:
        violations = []
        if not view:
            violations.append(FieldViolation("view", "must name a view"))
        if not purpose:
            violations.append(FieldViolation("purpose", "must name a purpose"))
        if violations:
            raise InvalidArgumentError(violations)
        self._policy.purposes.get(purpose)  # undeclared -> INVALID_ARGUMENT
        self._renderer.check_view(view)
        call.purpose, call.extra = purpose, {"view": view}
        # A full clear-text view, or a legal-obligation purpose, must say why.
        stated_justification(self._policy, call, justification, purpose=purpose, view=view)
        return authorize(self._policy, call, action, purpose=purpose, resource=f"view:{view}")

    def get(
        self, call: CallContext, subject_id: str, view: str, purpose: str, justification: str = ""
    ) -> SubjectView:
        """One subject through `view` for `purpose`."""
        call.subject_ids = [subject_id]
        principal = self._check_read(call, Action.SUBJECT_READ, view, purpose, justification)
        now = self._clock.now()
        with self._db.read() as conn:
            # One statement: the subject and its consent ledger, in this transaction.
            row, events = load_own_subject_with_consent(conn, call, principal, subject_id)
        consent = ledger.current_from_rows(events, now)
        if row.meta.state.is_terminal:
            call.deny(f"subject is {row.meta.state.value}")
            raise FailedPreconditionError(f"subject is {row.meta.state.value}")
        rendered = self._renderer.render(
            principal, view, purpose, row, today=now.date(), consent=consent
        )
        if rendered.subject_rule.startswith(STATE_RULE):
            # Restriction freezes processing: a single read says so instead of
            # returning an empty view (exports and searches withhold such subjects).
            call.deny(rendered.subject_rule, self._policy.version)
            raise FailedPreconditionError(f"subject is {row.meta.state.value}")
        call.field_names = sorted(rendered.fields)
        call.consent_version = rendered.consent_version
        if rendered.subject_rule:
            call.extra = {**call.extra, "subject_rule": rendered.subject_rule}
        self._auditor.record(call)
        return rendered

    def find(
        self,
        call: CallContext,
        field: str,
        value: str,
        view: str,
        purpose: str,
        *,
        justification: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> FoundPage:
        """One page of the subjects whose `field` equals `value` exactly (blind index).

        A search confirms or denies a guessed value, so searching by a field needs the
        right to read that field in clear for the purpose (fields:clear on its class),
        besides subjects:find on the view; each search spends the principal's search
        budget. Subjects the purpose may not touch (restricted, no consent, opted out)
        are left out, not returned withheld. Only the page's subjects are decrypted,
        and the page's entry links every subject returned.
        """
        principal = self._check_read(call, Action.SUBJECT_FIND, view, purpose, justification)
        spec = self._dictionary.field(field)
        if not self._sealing.is_searchable(spec.name):
            raise InvalidArgumentError([FieldViolation("field", "is not searchable")])
        call.extra = {**call.extra, "searched_field": field}
        self._authorize_search(call, principal, purpose, spec.sensitivity)
        limit = self._page_size(page_size)
        normalized = self._dictionary.normalize_one(field, value, today=self._today())
        # Under every blind-index key version present (a re-index may be under way);
        # the page token is bound to the active version's digest.
        digests = self._sealing.search_digests(principal.tenant, field, normalized)
        query = _query_hash(field, view, purpose, digests[0][1])
        after = _read_page_token(page_token, query)
        self._search_limit.charge(call, principal)
        now = self._clock.now()
        with self._db.read() as conn:
            ids = repo.find_ids_page(
                conn, principal.tenant, field, digests, after=after, limit=limit + 1
            )
            more, ids = len(ids) > limit, ids[:limit]
            rows = [r for r in repo.get_many(conn, ids) if not r.meta.state.is_terminal]
            consents = ledger.current_many(conn, [r.meta.id for r in rows], now)
        rendered = [
            self._renderer.render(
                principal,
                view,
                purpose,
                row,
                today=now.date(),
                action=Action.SUBJECT_FIND,
                consent=consents[row.meta.id],
            )
            for row in rows
        ]
        # Withheld for state or consent: the purpose may not touch them, so a search
        # must not even confirm they exist.
        views = [v for v in rendered if not v.subject_rule]
        call.subject_ids = [v.meta.id for v in views]
        call.consent_version = _latest(v.consent_version for v in rendered)
        call.field_names = sorted({name for v in views for name in v.fields})
        call.extra = {
            **call.extra,
            "matches": str(len(views)),
            "left_out": str(len(rendered) - len(views)),
            "page": "first" if not after else "next",
        }
        self._auditor.record(call)
        next_token = _page_token(ids[-1], query) if more and ids else ""
        return FoundPage(views, next_token)

    def _authorize_search(
        self, call: CallContext, principal: Principal, purpose: str, sensitivity: str
    ) -> None:
        """Searching by a field of class `sensitivity` = reading it in clear (audited)."""
        view_rule = call.reason
        decision = self._policy.decide(
            principal, Action.FIELD_CLEAR, purpose=purpose, resource=class_resource(sensitivity)
        )
        if not decision.allowed:
            call.deny(decision.rule, self._policy.version)
            raise PermissionDeniedError(
                "searching by this field needs the right to read it in clear for this purpose",
                decision.rule,
            )
        call.allow(f"{view_rule}; {decision.rule}", self._policy.version)

    def _page_size(self, requested: int) -> int:
        if requested < 0:
            raise InvalidArgumentError([FieldViolation("page_size", "must not be negative")])
        return min(requested or self._find_page_size, self._find_max_page_size)

    def export(
        self,
        call: CallContext,
        view: str,
        purpose: str,
        states: Sequence[SubjectState],
        justification: str = "",
        *,
        after: str = "",
    ) -> Iterator[SubjectView]:
        """Every subject of the caller's tenant in `states`, through `view`, in batches,
        by subject id (only those after the subject id `after`: a resumed export).

        The call's audit entry is committed before the first subject is sent, and each
        batch's entry, linking every subject of the batch (so each subject's history
        and access package show the export), before that batch is sent. Each batch is
        planned afresh and reads the subjects' consent in its own read transaction, so
        a policy reload, a state change or a withdrawal applies to the rest of a running
        export. The call's entry records the ledger position at the start.
        """
        principal = self._check_read(call, Action.SUBJECT_EXPORT, view, purpose, justification)
        wanted = [s.value for s in (states or DEFAULT_EXPORT_STATES)]
        if any(SubjectState(s).is_terminal for s in wanted):
            raise InvalidArgumentError(
                [FieldViolation("states", "erased and anonymized subjects cannot be exported")]
            )
        if after and not is_subject_id(after):
            raise InvalidArgumentError([FieldViolation("resume_token", "not a resume token")])
        call.extra = {**call.extra, "states": ",".join(wanted)}
        if after:
            call.extra["resumed"] = "true"
        call.field_names = list(self._dictionary.fields)
        if self._policy.purposes.get(purpose).legal_basis in _LEDGER_BASES:
            with self._db.read() as conn:
                call.consent_version = ledger.position(conn)
        self._auditor.record(call)
        number = 0
        while True:
            # One short read transaction per batch: no snapshot held open for a whole export.
            with self._db.read() as conn:
                batch = repo.tenant_batch(
                    conn, principal.tenant, wanted, after, self._export_batch_size
                )
                now = self._clock.now()
                consents = ledger.current_many(conn, [r.meta.id for r in batch], now)
            if not batch:
                return
            rendered = [
                self._renderer.render(
                    principal,
                    view,
                    purpose,
                    row,
                    today=now.date(),
                    action=Action.SUBJECT_EXPORT,
                    consent=consents[row.meta.id],
                )
                for row in batch
            ]
            number += 1
            self._auditor.record(_batch_entry(call, number, rendered))
            yield from rendered
            after = batch[-1].meta.id

    def _today(self) -> date:
        return self._clock.now().date()


@dataclass(frozen=True)
class FoundPage:
    """One page of search results, and the token of the next (empty on the last)."""

    subjects: list[SubjectView]
    next_page_token: str


def _batch_entry(call: CallContext, number: int, views: Sequence[SubjectView]) -> CallContext:
    """The audit facts of one export batch: the call's, with the batch's subjects."""
    return replace(
        call,
        subject_ids=[v.meta.id for v in views],
        field_names=sorted({name for v in views for name in v.fields}),
        extra={**call.extra, "export_batch": str(number), "batch_size": str(len(views))},
        audited=False,
    )


def _query_hash(field: str, view: str, purpose: str, digest: bytes) -> str:
    """Binds a page token to its query (AIP-158) without carrying the searched value."""
    material = "\x00".join((field, view, purpose)).encode() + b"\x00" + digest
    return hashlib.sha256(material).hexdigest()[:16]


def _page_token(after: str, query: str) -> str:
    raw = json.dumps({"a": after, "q": query}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str, query: str) -> str:
    """The subject id a page starts after ("" for the first page)."""
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
        after, bound = decoded["a"], decoded["q"]
    except (ValueError, TypeError, KeyError):
        after, bound = None, None
    if not isinstance(after, str) or not is_subject_id(after) or bound != query:
        raise InvalidArgumentError(
            [FieldViolation("page_token", "not a page token of this search")]
        )
    return after


def _latest(versions: Iterable[str]) -> str:
    """The newest ledger version among several subjects' (empty when none was relied on)."""
    numbers = [int(v) for v in versions if v]
    return str(max(numbers)) if numbers else ""
