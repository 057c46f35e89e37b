"""The domain service behind RetentionService: notices, legal holds, the report.

Every call acts in the caller's own tenant only. Changes and their audit entry commit in
one transaction; list calls are audited by the interceptor like every read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vault.access.guard import authorize, check_subject, justification, load_own_subject
from vault.audit_trail import Auditor
from vault.clock import Clock, to_micros
from vault.consent.models import subject_context
from vault.context import CallContext
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    VersionConflictError,
)
from vault.policy import Action, PolicyEngine
from vault.retention import runs as past_runs
from vault.retention.job import RetentionJob
from vault.retention.report import RetentionReport
from vault.retention.runs import PastRun
from vault.storage import notices
from vault.storage import subjects as repo
from vault.storage.db import Database
from vault.storage.notices import LegalHold, Notice
from vault.storage.retention_tables import OPEN
from vault.subject import SubjectState

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_REASON = 1000
_NOTICE_ID = re.compile(r"ntc_[a-z2-7]{26}")
_NOTICE_TOKEN = re.compile(r"[0-9]{1,19}\.ntc_[a-z2-7]{26}")
_SUBJECT_ID = re.compile(r"sub_[a-z2-7]{26}")
_RUN_TOKEN = re.compile(r"[0-9]{1,19}\.run_[a-z2-7]{26}")


@dataclass(frozen=True)
class HoldResult:
    hold: LegalHold
    cancelled_notice: bool


class RetentionService:
    """Notices for the e-mailing service; legal holds for counsel; the dry-run report."""

    def __init__(
        self,
        *,
        db: Database,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        job: RetentionJob,
    ) -> None:
        self._db = db
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._job = job

    def list_notices(
        self, call: CallContext, *, include_acknowledged: bool, page_size: int, page_token: str
    ) -> tuple[list[Notice], str]:
        """Open notices of the caller's tenant, a page at a time (next token or "")."""
        principal = authorize(self._policy, call, Action.RETENTION_ADMIN)
        limit = _page_size(page_size)
        after = _notice_token(page_token)
        with self._db.read() as conn:
            found = notices.list_open(
                conn,
                principal.tenant,
                after=after,
                limit=limit + 1,
                include_acknowledged=include_acknowledged,
            )
        page = found[:limit]
        call.subject_ids = [n.subject_id for n in page]
        call.extra = {"notices": str(len(page))}
        last = page[-1] if len(found) > limit else None
        return page, (f"{last.deadline_at}.{last.id}" if last is not None else "")

    def acknowledge(self, call: CallContext, notice_id: str) -> Notice:
        """The e-mailing service sent the notice. Acknowledging twice changes nothing."""
        principal = authorize(self._policy, call, Action.RETENTION_ADMIN)
        if not _NOTICE_ID.fullmatch(notice_id):
            raise InvalidArgumentError([FieldViolation("notice_id", "not a notice id")])
        call.extra = {"notice": notice_id}
        with self._db.write() as conn:
            notice = notices.get(conn, notice_id, for_update=True)
            if notice is None or notice.tenant != principal.tenant:
                raise NotFoundError("notice not found")
            call.subject_ids = [notice.subject_id]
            if notice.status != OPEN:
                raise FailedPreconditionError(f"notice is {notice.status}")
            notices.acknowledge(conn, notice_id, principal.id, to_micros(self._clock.now()))
            self._auditor.record_in(conn, call)
            acknowledged = notices.get(conn, notice_id)
        assert acknowledged is not None
        return acknowledged

    def set_hold(self, call: CallContext, subject_id: str, reason: str) -> HoldResult:
        """Put a subject on legal hold: it is not anonymized while the hold lasts, and an
        open notice is cancelled (a new one follows once the hold is cleared)."""
        principal = authorize(self._policy, call, Action.LEGAL_HOLD)
        call.subject_ids = [subject_id]
        reason = _check_reason(reason)
        call.justification = reason
        now_us = to_micros(self._clock.now())
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            check_subject(self._policy, call, Action.LEGAL_HOLD, subject_context(row.meta))
            changed: dict[str, object] = {"legal_hold": True}
            prior = notices.cancel_open(conn, subject_id, now_us, "legal_hold")
            if prior is not None and row.meta.state is SubjectState.PENDING_ANONYMIZATION:
                changed["state"] = prior.value
                call.extra = {"retention_notice": "cancelled"}
            if not repo.update_row(conn, subject_id, row.meta.version, changed):
                raise VersionConflictError(
                    "subject was changed concurrently; retry", subject_id=subject_id
                )
            hold = LegalHold(subject_id, principal.tenant, reason, principal.id, now_us)
            notices.put_hold(conn, hold)
            self._auditor.record_in(conn, call)
        return HoldResult(hold, prior is not None)

    def clear_hold(self, call: CallContext, subject_id: str, reason: str) -> None:
        """Lift a legal hold; the subject's retention clock is as its activity says."""
        principal = authorize(self._policy, call, Action.LEGAL_HOLD)
        call.subject_ids = [subject_id]
        reason = _check_reason(reason)
        call.justification = reason
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            if not row.meta.legal_hold:
                raise NotFoundError("subject has no legal hold")
            if not repo.update_row(conn, subject_id, row.meta.version, {"legal_hold": False}):
                raise VersionConflictError(
                    "subject was changed concurrently; retry", subject_id=subject_id
                )
            notices.delete_hold(conn, subject_id)
            self._auditor.record_in(conn, call)

    def list_holds(
        self, call: CallContext, *, page_size: int, page_token: str
    ) -> tuple[list[LegalHold], str]:
        principal = authorize(self._policy, call, Action.LEGAL_HOLD)
        limit = _page_size(page_size)
        after = _token(page_token, _SUBJECT_ID)
        with self._db.read() as conn:
            found = notices.list_holds(conn, principal.tenant, after=after, limit=limit + 1)
        page = found[:limit]
        call.subject_ids = [h.subject_id for h in page]
        return page, (page[-1].subject_id if len(found) > limit else "")

    def list_runs(
        self, call: CallContext, *, page_size: int, page_token: str
    ) -> tuple[list[PastRun], str]:
        """The finished runs, newest first, with the caller's tenant's part of each."""
        principal = authorize(self._policy, call, Action.RETENTION_ADMIN)
        limit = _page_size(page_size)
        token = _token(page_token, _RUN_TOKEN)
        before = None
        if token:
            finished, _, run_id = token.partition(".")
            before = (int(finished), run_id)
        with self._db.read() as conn:
            found = past_runs.page(conn, principal.tenant, before=before, limit=limit + 1)
        shown = found[:limit]
        last = shown[-1] if len(found) > limit else None
        return shown, (f"{last.finished_at}.{last.run_id}" if last is not None else "")

    def report(self, call: CallContext) -> RetentionReport:
        """What a run would do now in the caller's tenant, and its records' k-anonymity."""
        principal = authorize(self._policy, call, Action.RETENTION_ADMIN)
        return self._job.plan(principal.tenant)


def _page_size(size: int) -> int:
    if size < 0 or size > MAX_PAGE:
        raise InvalidArgumentError([FieldViolation("page_size", f"must be 0 to {MAX_PAGE}")])
    return size or DEFAULT_PAGE


def _notice_token(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    deadline, _, notice_id = _token(token, _NOTICE_TOKEN).partition(".")
    return int(deadline), notice_id


def _token(token: str, shape: re.Pattern[str]) -> str:
    if token and not shape.fullmatch(token):
        raise InvalidArgumentError([FieldViolation("page_token", "not a token this call gave")])
    return token


def _check_reason(reason: str) -> str:
    """Required, and one printable line that fits the holds table."""
    text = justification(reason, "reason", required=True)
    if len(text) > MAX_REASON or not text.isprintable():
        detail = f"must be one line of at most {MAX_REASON} characters"
        raise InvalidArgumentError([FieldViolation("reason", detail)])
    return text
