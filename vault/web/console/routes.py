"""The compliance console's pages. Each one calls the vault as the signed-in person; what
the vault refuses, the page says (and the refusal is in the audit log, as that person)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from vault.api.console_client import (
    CheckpointInfo,
    ConsoleClient,
    EntryFilters,
    LoggedEntry,
    RunInfo,
    VaultClientError,
    VerifyInfo,
    VerifyStep,
)
from vault.web import security
from vault.web.console import charts, language, proofs
from vault.web.console.pdf import report_pdf
from vault.web.console.requests import request_routes
from vault.web.console.search import (
    DECISIONS,
    PAGE_SIZES,
    RESULTS,
    Search,
    SearchError,
    as_json,
    format_time,
    row,
    search_url,
)
from vault.web.console.whatif import whatif_routes
from vault.web.security import CSRF_FIELD, Session

if TYPE_CHECKING:
    from vault.web.app import Web

Handler = Callable[[Request, Session], Awaitable[Response]]
SUBJECT_ID = re.compile(r"[a-z0-9_]{1,64}")
HISTORY_CAP = 5000
REPORT_PROOFS = 250
TIMELINE_SHOWN = 200
ACTIVITY_CAP = 5000
ACTIVITY_DAYS = (1, 7, 30)
NAV = (
    ("/console/", "Activity"),
    ("/console/audit", "Audit search"),
    ("/console/subjects", "Subject history"),
    ("/console/integrity", "Log integrity"),
    ("/console/requests", "Requests"),
    ("/console/retention", "Retention"),
    ("/console/policy", "Policy what-if"),
)


class VerifyRun:
    """The steps of a verification as the page renders them; then its result (or the
    error that ended it). Closes the client when the stream ends."""

    def __init__(
        self, first: VerifyStep | None, rest: Iterator[VerifyStep], client: ConsoleClient
    ) -> None:
        self._first = first
        self._rest = rest
        self._client = client
        self.result: VerifyInfo | None = None
        self.error = ""

    def __iter__(self) -> Iterator[VerifyStep]:
        try:
            step = self._first
            while step is not None:
                if step.result is not None:
                    self.result = step.result
                    return
                yield step
                step = next(self._rest, None)
        except VaultClientError as exc:
            self.error = f"{exc.code}: {exc.message}"
        finally:
            self._client.close()


@dataclass(frozen=True)
class History:
    entries: list[LoggedEntry]
    truncated: bool


def _collect(fetch: Callable[[str], Any], cap: int) -> tuple[list[LoggedEntry], bool]:
    """Follow a paged call until its end or `cap` entries."""
    found: list[LoggedEntry] = []
    token = ""
    while True:
        page = fetch(token)
        found.extend(page.entries)
        if page.next_page_token is None:
            return found, False
        if len(found) >= cap:
            return found[:cap], True
        token = page.next_page_token


def console_routes(web: Web) -> list[Route]:  # noqa: PLR0915 - one closure per page
    def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = web.session(request)
            if session is None:
                return web.signin_redirect(request)
            if session.person.subject:  # a customer's session: their pages are elsewhere
                return RedirectResponse("/privacy/", status_code=303)
            return await handler(request, session)

        return endpoint

    def render(
        request: Request, session: Session, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        context.setdefault("nav", NAV)
        return web.render(request, name, context, status=status, session=session)

    async def check_csrf(request: Request, session: Session) -> dict[str, str] | Response:
        form = await request.form()
        if not security.csrf_matches(session.csrf, form.get(CSRF_FIELD)):
            return render(request, session, "forbidden.html", {}, status=403)
        return {k: v for k, v in form.items() if isinstance(v, str)}

    # --- activity at a glance ---------------------------------------------------------

    async def activity(request: Request, session: Session) -> Response:
        try:
            days = int(request.query_params.get("days", "7"))
        except ValueError:
            days = 7
        if days not in ACTIVITY_DAYS:
            days = 7
        end = web.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = end - timedelta(days=days)
        try:
            entries, truncated = await web.call(
                session,
                lambda c: _collect(
                    lambda t: c.query(
                        EntryFilters(since=start, until=end), page_size=1000, page_token=t
                    ),
                    ACTIVITY_CAP,
                ),
            )
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="read the audit log")
        since, until = format_time(start), format_time(end)
        by_purpose = charts.stacked("Accesses by purpose", entries, start, end, key="purpose")
        by_decision = charts.stacked(
            "Decisions", entries, start, end, key="decision", colors=charts.DECISION_COLORS
        )
        decisions = Counter(e.entry.decision for e in entries)
        return render(
            request,
            session,
            "console/activity.html",
            {
                "days": days,
                "day_choices": ACTIVITY_DAYS,
                "start": start,
                "end": end,
                "total": len(entries),
                "allowed": decisions["allow"],
                "denied": decisions["deny"],
                "truncated": truncated,
                "cap": ACTIVITY_CAP,
                "by_purpose": by_purpose,
                "by_decision": by_decision,
                "denials": charts.denials_by_role(entries, since, until),
                "restricted": charts.restricted_readers(
                    entries, web.settings.restricted_fields, since, until
                ),
                "restricted_fields": sorted(web.settings.restricted_fields),
                "all_url": search_url(since=since, until=until),
                "denied_url": search_url(since=since, until=until, decision="deny"),
            },
        )

    # --- audit search -------------------------------------------------------------------

    async def run_search(
        request: Request, session: Session
    ) -> tuple[Search, Any] | Response | tuple[Search, SearchError]:
        try:
            search = Search.from_query(request.query_params)
        except SearchError as exc:
            return Search(), exc
        try:
            result = await web.call(
                session,
                lambda c: c.query(
                    search.filters(),
                    newest_first=search.newest_first,
                    page_size=search.size,
                    page_token=search.cursor,
                ),
            )
        except VaultClientError as exc:
            if exc.code == "INVALID_ARGUMENT":
                return search, SearchError(
                    "The vault refused this search: "
                    + "; ".join(f"{f}: {d}" for f, d in exc.violations or [("", exc.message)])
                )
            return web.refused(request, session, exc, what="search the audit log")
        return search, result

    async def audit_search(request: Request, session: Session) -> Response:
        outcome = await run_search(request, session)
        if isinstance(outcome, Response):
            return outcome
        search, result = outcome
        context: dict[str, Any] = {
            "search": search,
            "decisions": DECISIONS,
            "actions": sorted(language.ACTION_PHRASES),
            "results": RESULTS,
            "page_sizes": PAGE_SIZES,
            "json_url": search.url("/console/audit.json", cursor=search.cursor),
            "error": "",
            "rows": [],
            "next_url": "",
        }
        if isinstance(result, SearchError):
            context["error"] = str(result)
            return render(request, session, "console/audit.html", context, status=400)
        context["rows"] = [row(e) for e in result.entries]
        if result.next_page_token:
            context["next_url"] = search.url(cursor=result.next_page_token)
            context["json_url"] = search.url("/console/audit.json", cursor=search.cursor)
        return render(request, session, "console/audit.html", context)

    async def audit_json(request: Request, session: Session) -> Response:
        outcome = await run_search(request, session)
        if isinstance(outcome, Response):
            if outcome.status_code in (301, 302, 303, 307):
                return JSONResponse({"error": "UNAUTHENTICATED"}, status_code=401)
            return JSONResponse(
                {"error": "refused", "status": outcome.status_code}, outcome.status_code
            )
        search, result = outcome
        if isinstance(result, SearchError):
            return JSONResponse({"error": str(result)}, status_code=400)
        return JSONResponse(
            {
                "filters": dict(search.active),
                "order": search.order,
                "entries": [as_json(e) for e in result.entries],
                "next_cursor": result.next_page_token,
                "next": search.url("/console/audit.json", cursor=result.next_page_token)
                if result.next_page_token
                else None,
            }
        )

    async def entry_page(request: Request, session: Session) -> Response:
        index = int(request.path_params["index"])

        def load(c: ConsoleClient) -> tuple[LoggedEntry, CheckpointInfo | None, Any]:
            logged = c.entry(index)
            try:
                checkpoint = c.latest_checkpoint()
            except VaultClientError as exc:
                if exc.code != "NOT_FOUND":
                    raise
                return logged, None, None
            proof = None
            if index < checkpoint.tree_size:
                proof = c.inclusion_proof(index, checkpoint.tree_size)
            return logged, checkpoint, proof

        try:
            logged, checkpoint, proof = await web.call(session, load)
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="open this audit entry")
        e = logged.entry
        if checkpoint is None:
            inclusion = proofs.Verdict(None, "The log has no signed checkpoint yet.")
            signed = None
        elif proof is None:
            inclusion = proofs.Verdict(
                None,
                f"This entry is newer than the latest checkpoint ({checkpoint.tree_size} "
                "entries); reload in a moment to check it against the next one.",
            )
            signed = proofs.checkpoint_verdict(web.verifier, checkpoint)
        else:
            inclusion = proofs.inclusion_verdict(checkpoint, logged, proof)
            signed = proofs.checkpoint_verdict(web.verifier, checkpoint)
        return render(
            request,
            session,
            "console/entry.html",
            {
                "logged": logged,
                "e": e,
                "row": row(logged),
                "rule_words": language.rule_in_words(e.reason),
                "outcome": language.outcome(e),
                "checkpoint": checkpoint,
                "inclusion": inclusion,
                "signed": signed,
                "actor_url": search_url(actor=e.actor),
                "request_url": search_url(actor=e.actor, action=e.action),
            },
        )

    # --- subject history ----------------------------------------------------------------

    async def subjects(request: Request, session: Session) -> Response:
        subject = request.query_params.get("subject", "").strip()
        if subject:
            if SUBJECT_ID.fullmatch(subject):
                return RedirectResponse(f"/console/subjects/{subject}", status_code=303)
            return render(
                request,
                session,
                "console/subjects.html",
                {"error": "A subject id looks like sub_… (letters, digits, _)."},
                status=400,
            )
        return render(request, session, "console/subjects.html", {"error": ""})

    async def load_history(session: Session, subject_id: str, newest_first: bool) -> History:
        entries, truncated = await web.call(
            session,
            lambda c: _collect(
                lambda t: c.history(
                    subject_id, newest_first=newest_first, page_size=1000, page_token=t
                ),
                HISTORY_CAP,
            ),
        )
        return History(entries, truncated)

    def summary(entries: list[LoggedEntry]) -> dict[str, Any]:
        allowed = [e for e in entries if e.entry.decision == "allow"]
        times = [e.entry.time for e in entries]
        return {
            "total": len(entries),
            "allowed": len(allowed),
            "denied": len(entries) - len(allowed),
            "readers": sorted(
                {e.entry.actor for e in allowed if e.entry.action in language.DISCLOSURE_ACTIONS}
            ),
            "exports": sum(1 for e in entries if "Export" in e.entry.action),
            "changes": sum(
                1
                for e in allowed
                if e.entry.action
                in (
                    "CreateSubject",
                    "UpdateSubject",
                    "RectifySubjectData",
                    "EraseSubject",
                    "EraseSubjectData",
                    "AnonymizeSubject",
                )
            ),
            "purposes": Counter(e.entry.purpose for e in allowed if e.entry.purpose).most_common(),
            "first": min(times).strftime("%Y-%m-%d %H:%M UTC") if times else "",
            "last": max(times).strftime("%Y-%m-%d %H:%M UTC") if times else "",
        }

    def subject_id_of(request: Request) -> str | None:
        subject_id = str(request.path_params["subject_id"])
        return subject_id if SUBJECT_ID.fullmatch(subject_id) else None

    async def subject_page(request: Request, session: Session) -> Response:
        subject_id = subject_id_of(request)
        if subject_id is None:
            return render(request, session, "not_found.html", {}, status=404)
        try:
            history = await load_history(session, subject_id, newest_first=True)
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="read this subject's history")
        return render(
            request,
            session,
            "console/subject.html",
            {
                "subject_id": subject_id,
                "rows": [row(e) for e in history.entries[:TIMELINE_SHOWN]],
                "more": max(0, len(history.entries) - TIMELINE_SHOWN),
                "truncated": history.truncated,
                "summary": summary(history.entries),
                "search_url": search_url(subject=subject_id),
                "denied_url": search_url(subject=subject_id, decision="deny"),
            },
        )

    async def report_data(session: Session, subject_id: str) -> dict[str, Any]:
        def load(c: ConsoleClient) -> tuple[list[LoggedEntry], bool, VerifyInfo | None, str, Any]:
            entries, truncated = _collect(
                lambda t: c.history(subject_id, newest_first=False, page_size=1000, page_token=t),
                HISTORY_CAP,
            )
            verify: VerifyInfo | None = None
            verify_note = ""
            try:
                verify = c.verify_log()
            except VaultClientError as exc:
                if exc.code != "PERMISSION_DENIED":
                    raise
                verify_note = "Your roles may not run a verification (audit:verify)."
            try:
                checkpoint: CheckpointInfo | None = c.latest_checkpoint()
            except VaultClientError as exc:
                if exc.code != "NOT_FOUND":
                    raise
                checkpoint = None
            included: dict[int, proofs.Verdict] = {}
            if checkpoint is not None:
                provable = [
                    e for e in entries if e.index is not None and e.index < checkpoint.tree_size
                ]
                # One proof call per entry (each audited): the most recent REPORT_PROOFS;
                # older ones rest on the whole-log verification above.
                for logged in provable[-REPORT_PROOFS:]:
                    assert logged.index is not None
                    proof = c.inclusion_proof(logged.index, checkpoint.tree_size)
                    included[logged.index] = proofs.inclusion_verdict(checkpoint, logged, proof)
            return entries, truncated, verify, verify_note, (checkpoint, included)

        entries, truncated, verify, verify_note, (checkpoint, included) = await web.call(
            session, load
        )
        proven = sum(1 for v in included.values() if v.ok)
        broken = sum(1 for v in included.values() if v.ok is False)
        size = checkpoint.tree_size if checkpoint is not None else 0
        newer = sum(1 for e in entries if e.index is None or e.index >= size)
        return {
            "subject_id": subject_id,
            "entries": entries,
            "rows": [row(e) for e in entries],
            "truncated": truncated,
            "summary": summary(entries),
            "verify": verify,
            "verify_note": verify_note,
            "checkpoint": checkpoint,
            "signed": proofs.checkpoint_verdict(web.verifier, checkpoint) if checkpoint else None,
            "included": included,
            "proven": proven,
            "broken": broken,
            "newer": newer,
            "unproven": len(entries) - proven - broken - newer,
            "generated": web.now().strftime("%Y-%m-%d %H:%M:%S UTC"),
            "generated_by": session.person.principal,
        }

    async def subject_report(request: Request, session: Session) -> Response:
        subject_id = subject_id_of(request)
        if subject_id is None:
            return render(request, session, "not_found.html", {}, status=404)
        try:
            data = await report_data(session, subject_id)
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="build this subject's report")
        return render(request, session, "console/report.html", data)

    async def subject_report_pdf(request: Request, session: Session) -> Response:
        subject_id = subject_id_of(request)
        if subject_id is None:
            return render(request, session, "not_found.html", {}, status=404)
        try:
            data = await report_data(session, subject_id)
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="build this subject's report")
        body = report_pdf(data)
        return Response(
            body,
            media_type="application/pdf",
            headers={
                "content-disposition": f'attachment; filename="access-history-{subject_id}.pdf"'
            },
        )

    # --- log integrity ------------------------------------------------------------------

    async def integrity_context(
        session: Session, verify: VerifyInfo | None = None
    ) -> dict[str, Any]:
        def load(c: ConsoleClient) -> tuple[CheckpointInfo | None, str]:
            try:
                return c.latest_checkpoint(), ""
            except VaultClientError as exc:
                if exc.code == "NOT_FOUND":
                    return None, ""
                if exc.code == "PERMISSION_DENIED":
                    return None, (
                        "The vault's policy does not let your roles read the checkpoint "
                        "(audit:read); the refusal is in the audit log."
                    )
                raise

        checkpoint, denied = await web.call(session, load)
        lines = proofs.signature_lines(web.verifier, checkpoint) if checkpoint else []
        return {
            "checkpoint": checkpoint,
            "checkpoint_denied": denied,
            "signed": proofs.checkpoint_verdict(web.verifier, checkpoint) if checkpoint else None,
            "signatures": lines,
            "witnesses": proofs.witness_verdicts(checkpoint, web.witnesses) if checkpoint else [],
            "witness_keys": len(web.witnesses),
            "verify": verify,
        }

    async def integrity(request: Request, session: Session) -> Response:
        try:
            context = await integrity_context(session)
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="read the log's checkpoint")
        status = 403 if context["checkpoint_denied"] else 200
        return render(request, session, "console/integrity.html", context, status=status)

    async def integrity_verify(request: Request, session: Session) -> Response:
        form = await check_csrf(request, session)
        if isinstance(form, Response):
            return form
        client = web.client(session)
        steps = client.verify_log_with_progress()
        try:
            first = await run_in_threadpool(lambda: next(steps, None))
            context = await integrity_context(session)
        except VaultClientError as exc:
            client.close()
            return web.refused(request, session, exc, what="verify the audit log")
        context["progress"] = VerifyRun(first, steps, client)
        context.setdefault("nav", NAV)
        return web.stream(request, "console/integrity.html", context, session=session)

    # --- retention ----------------------------------------------------------------------

    async def retention_context(session: Session) -> dict[str, Any]:
        def section(fn: Callable[[], Any], permission: str) -> tuple[Any, str]:
            try:
                return fn(), ""
            except VaultClientError as exc:
                if exc.code == "PERMISSION_DENIED":
                    return None, (
                        f"The vault's policy does not let your roles see this ({permission}); "
                        "the refusal is in the audit log."
                    )
                if exc.code == "UNAUTHENTICATED":
                    raise
                return None, f"The vault answered {exc.code}."

        def load(c: ConsoleClient) -> dict[str, Any]:
            report, report_error = section(c.retention_report, "retention:admin")
            notices, notices_error = section(c.notices, "retention:admin")
            holds, holds_error = section(c.legal_holds, "retention:legal_hold")
            # The vault's stored run reports (retention:admin), with each run's
            # k-anonymity; else the runs as the audit log shows them (audit:read).
            past, _ = section(c.retention_runs, "retention:admin")
            runs, runs_error = (
                ([_past_run(r) for r in past], "")
                if past is not None
                else section(
                    lambda: _runs(
                        c.query(
                            EntryFilters(actor="retention-job"), newest_first=True, page_size=500
                        ).entries
                    ),
                    "audit:read",
                )
            )
            return {
                "report": report,
                "report_error": report_error,
                "notices": notices,
                "notices_error": notices_error,
                "holds": holds,
                "holds_error": holds_error,
                "runs": runs or [],
                "runs_error": runs_error,
            }

        return await web.call(session, load)

    async def retention(
        request: Request, session: Session, message: str = "", error: str = ""
    ) -> Response:
        try:
            context = await retention_context(session)
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="read retention")
        context.update(message=message, error=error)
        return render(
            request, session, "console/retention.html", context, status=400 if error else 200
        )

    async def retention_page(request: Request, session: Session) -> Response:
        return await retention(request, session)

    async def hold(request: Request, session: Session, lift: bool) -> Response:
        form = await check_csrf(request, session)
        if isinstance(form, Response):
            return form
        subject_id = form.get("subject_id", "").strip()
        reason = form.get("reason", "").strip()
        if not SUBJECT_ID.fullmatch(subject_id) or not reason:
            return await retention(
                request, session, error="A hold needs a subject id (sub_…) and a reason."
            )
        try:
            if lift:
                await web.call(session, lambda c: c.clear_legal_hold(subject_id, reason))
                message = f"The legal hold on {subject_id} is lifted."
            else:
                cancelled = await web.call(session, lambda c: c.set_legal_hold(subject_id, reason))
                message = f"{subject_id} is under legal hold." + (
                    " Its open dormancy notice was cancelled." if cancelled else ""
                )
        except VaultClientError as exc:
            if exc.code in ("INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"):
                detail = "; ".join(f"{f}: {d}" for f, d in exc.violations) or exc.message
                return await retention(request, session, error=f"The vault refused: {detail}")
            return web.refused(request, session, exc, what="change a legal hold")
        return await retention(request, session, message=message)

    async def hold_set(request: Request, session: Session) -> Response:
        return await hold(request, session, lift=False)

    async def hold_lift(request: Request, session: Session) -> Response:
        return await hold(request, session, lift=True)

    return [
        Route("/", page(activity)),
        Route("/audit", page(audit_search)),
        Route("/audit.json", page(audit_json)),
        Route("/audit/entries/{index:int}", page(entry_page)),
        Route("/subjects", page(subjects)),
        Route("/subjects/{subject_id}", page(subject_page)),
        Route("/subjects/{subject_id}/report", page(subject_report)),
        Route("/subjects/{subject_id}/report.pdf", page(subject_report_pdf)),
        Route("/integrity", page(integrity)),
        Route("/integrity/verify", page(integrity_verify), methods=["POST"]),
        Route("/retention", page(retention_page)),
        Route("/retention/holds", page(hold_set), methods=["POST"]),
        Route("/retention/holds/lift", page(hold_lift), methods=["POST"]),
        *request_routes(web, page, render, check_csrf),
        *whatif_routes(web, page, render),
    ]


def _past_run(r: RunInfo) -> dict[str, Any]:
    """A run as the vault reported it for this tenant (with its k-anonymity)."""
    return {
        "run_id": r.run_id,
        "when": r.finished_at.strftime("%Y-%m-%d %H:%M UTC") if r.finished_at else "—",
        "anonymized": r.anonymized if r.tenant_reported else "—",
        "notified": r.notified if r.tenant_reported else "—",
        "cancelled": r.cancelled if r.tenant_reported else "—",
        "k": r.k_anonymity if r.tenant_reported else None,
        "k_known": r.tenant_reported,
        "interrupted": r.interrupted,
        "url": search_url(actor="retention-job"),
    }


def _runs(entries: Sequence[LoggedEntry]) -> list[dict[str, Any]]:
    """The retention job's runs, from its audit entries (one request id per run)."""
    runs: dict[str, dict[str, Any]] = {}
    for logged in entries:
        e = logged.entry
        run = runs.setdefault(
            e.request_id or "(no run id)",
            {"run_id": e.request_id, "first": e.time, "last": e.time, "counts": Counter()},
        )
        run["first"] = min(run["first"], e.time)
        run["last"] = max(run["last"], e.time)
        run["counts"][e.action] += 1
    ordered = sorted(runs.values(), key=lambda r: r["last"], reverse=True)
    return [
        {
            "run_id": r["run_id"],
            "when": r["last"].strftime("%Y-%m-%d %H:%M UTC"),
            "anonymized": r["counts"]["AnonymizeSubject"],
            "notified": r["counts"]["NotifySubject"],
            "cancelled": r["counts"]["CancelNotice"],
            "url": search_url(actor="retention-job"),
        }
        for r in ordered[:10]
    ]
