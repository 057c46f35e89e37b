"""Reads: get, find and export, always through a view and for a declared purpose.

The audit entry of a read is committed before any data leaves; if it cannot be written
the read fails closed with no data. Every read derives the subjects' consent from the
consent ledger inside the same read transaction as the subjects themselves (no cache),
and the entry records the ledger version the decision relied on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date

from vault.access.guard import authorize, load_own_subject_with_consent
from vault.audit_trail import Auditor
from vault.clock import Clock
from vault.consent import ledger
from vault.context import CallContext
from vault.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError
from vault.fields.dictionary import DataDictionary
from vault.policy import Action, LegalBasis, PolicyEngine
from vault.policy.subject import STATE_RULE
from vault.principal import Principal
from vault.records.cipher import RecordCipher
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
    ) -> None:
        self._db = db
        self._sealing = sealing
        self._dictionary = dictionary
        self._policy = policy
        self._renderer = renderer
        self._auditor = auditor
        self._clock = clock
        self._export_batch_size = export_batch_size

    def _check_read(self, call: CallContext, action: Action, view: str, purpose: str) -> Principal:
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
        return authorize(self._policy, call, action, purpose=purpose, resource=f"view:{view}")

    def get(self, call: CallContext, subject_id: str, view: str, purpose: str) -> SubjectView:
        """One subject through `view` for `purpose`."""
        call.subject_ids = [subject_id]
        principal = self._check_read(call, Action.SUBJECT_READ, view, purpose)
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
        self, call: CallContext, field: str, value: str, view: str, purpose: str
    ) -> list[SubjectView]:
        """Subjects whose `field` equals `value` exactly, through the blind index."""
        principal = self._check_read(call, Action.SUBJECT_FIND, view, purpose)
        spec = self._dictionary.field(field)
        if not self._sealing.is_searchable(spec.name):
            raise InvalidArgumentError([FieldViolation("field", "is not searchable")])
        normalized = self._dictionary.normalize_one(field, value, today=self._today())
        digests = self._sealing.search_digests(principal.tenant, field, normalized)
        now = self._clock.now()
        with self._db.read() as conn:
            rows = repo.get_many(conn, repo.find_ids(conn, principal.tenant, field, digests))
            rows = [r for r in rows if not r.meta.state.is_terminal]
            consents = ledger.current_many(conn, [r.meta.id for r in rows], now)
        views = [
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
        call.subject_ids = [v.meta.id for v in views]
        call.consent_version = _latest(v.consent_version for v in views)
        call.field_names = sorted({name for v in views for name in v.fields})
        call.extra = {**call.extra, "searched_field": field, "matches": str(len(views))}
        self._auditor.record(call)
        return views

    def export(
        self, call: CallContext, view: str, purpose: str, states: Sequence[SubjectState]
    ) -> Iterator[SubjectView]:
        """Every subject of the caller's tenant in `states`, through `view`, in batches.

        The call's single audit entry is committed before the first subject is sent.
        Each batch is planned afresh and reads the subjects' consent in its own read
        transaction, so a policy reload, a state change or a withdrawal applies to the
        rest of a running export. The entry records the ledger position at the start.
        """
        principal = self._check_read(call, Action.SUBJECT_EXPORT, view, purpose)
        wanted = [s.value for s in (states or DEFAULT_EXPORT_STATES)]
        if any(SubjectState(s).is_terminal for s in wanted):
            raise InvalidArgumentError(
                [FieldViolation("states", "erased and anonymized subjects cannot be exported")]
            )
        call.extra = {**call.extra, "states": ",".join(wanted)}
        call.field_names = list(self._dictionary.fields)
        if self._policy.purposes.get(purpose).legal_basis in _LEDGER_BASES:
            with self._db.read() as conn:
                call.consent_version = ledger.position(conn)
        self._auditor.record(call)
        after = ""
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
            for row in batch:
                yield self._renderer.render(
                    principal,
                    view,
                    purpose,
                    row,
                    today=now.date(),
                    action=Action.SUBJECT_EXPORT,
                    consent=consents[row.meta.id],
                )
            after = batch[-1].meta.id

    def _today(self) -> date:
        return self._clock.now().date()


def _latest(versions: Iterable[str]) -> str:
    """The newest ledger version among several subjects' (empty when none was relied on)."""
    numbers = [int(v) for v in versions if v]
    return str(max(numbers)) if numbers else ""
