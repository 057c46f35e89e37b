"""The console's policy what-if and as-of pages.

/console/policy: a draft policy against the recorded log and the decision matrix
(PolicyAdminService.SimulatePolicy). The draft is a version this vault kept, chosen
from a list, or uploaded files. Uploads are decided safely: at most the three data
files (vault_policy.csv, purposes.yaml, views.yaml; never the model, whose matcher is
code-like), 256 KiB each, UTF-8, held in memory for the one call and never written,
kept or put in force; the form is POSTed with the session's CSRF token; the vault
authorizes (`policy:simulate`) and audits the run with the draft's version, never its
text. /console/audit/entries/N/explain: one entry as of its moment (ExplainEntry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.api.console_client import ConsoleClient, VaultClientError
from vault.web import security
from vault.web.security import CSRF_FIELD, Session

if TYPE_CHECKING:
    from vault.web.app import Web

Handler = Callable[[Request, Session], Awaitable[Response]]
Page = Callable[[Handler], Callable[[Request], Awaitable[Response]]]
Render = Callable[..., Response]

UPLOADS = ("vault_policy.csv", "purposes.yaml", "views.yaml")
MAX_UPLOAD = 256 * 1024
WINDOWS = (1, 7, 30, 90)
GATES = ("widen-restricted", "widen-confidential")
KINDS = {
    "CHANGE_KIND_ALLOW_TO_DENY": ("allowed → denied", "narrow"),
    "CHANGE_KIND_DENY_TO_ALLOW": ("denied → allowed", "widen"),
    "CHANGE_KIND_WIDENED": ("shown more", "widen"),
    "CHANGE_KIND_NARROWED": ("shown less", "narrow"),
    "CHANGE_KIND_CHANGED": ("shown differently", "change"),
}


def whatif_routes(web: Web, page: Page, render: Render) -> list[Route]:
    """The routes of both pages, mounted under /console."""

    async def form_context(session: Session) -> dict[str, Any]:
        try:
            versions = await web.call(session, lambda c: c.policy_versions())
        except VaultClientError as exc:
            return {"versions": [], "versions_error": exc.message, "refused": exc}
        return {"versions": versions, "versions_error": ""}

    async def show(
        request: Request,
        session: Session,
        *,
        result: dict[str, Any] | None = None,
        error: str = "",
        chosen: dict[str, str] | None = None,
    ) -> Response:
        context = await form_context(session)
        refused = context.pop("refused", None)
        if refused is not None and refused.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return web.refused(request, session, refused, what="simulate a policy")
        context |= {
            "uploads": UPLOADS,
            "windows": WINDOWS,
            "max_upload_kib": MAX_UPLOAD // 1024,
            "result": _readable(result) if result else None,
            "error": error,
            "chosen": chosen or {"source": "version", "days": "30"},
        }
        return render(
            request, session, "console/policy.html", context, status=400 if error else 200
        )

    async def policy_page(request: Request, session: Session) -> Response:
        return await show(request, session)

    async def simulate(request: Request, session: Session) -> Response:
        async with request.form(
            max_files=len(UPLOADS), max_fields=8, max_part_size=MAX_UPLOAD
        ) as form:
            if not security.csrf_matches(session.csrf, form.get(CSRF_FIELD)):
                return render(request, session, "forbidden.html", {}, status=403)
            chosen = {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
            files, error = await _uploads(form) if chosen.get("source") == "upload" else ({}, "")
        days = int(chosen["days"]) if chosen.get("days", "").isdigit() else 30
        version = chosen.get("version", "") if chosen.get("source") != "upload" else ""
        if not error and days not in WINDOWS:
            error = "Choose one of the offered windows."
        if not error and not (files or version):
            error = "Choose a kept version or upload at least one policy file."
        if error:
            return await show(request, session, error=error, chosen=chosen)
        since = web.now() - timedelta(days=days)

        def run(c: ConsoleClient) -> dict[str, Any]:
            return c.simulate(files, draft_version=version, since=since, fail_on=GATES)

        try:
            result = await web.call(session, run)
        except VaultClientError as exc:
            if exc.code in ("INVALID_ARGUMENT", "NOT_FOUND"):
                detail = "; ".join(d for _, d in exc.violations) or exc.message
                return await show(
                    request, session, error=f"The vault refused the draft: {detail}", chosen=chosen
                )
            return web.refused(request, session, exc, what="simulate a policy")
        return await show(request, session, result=result, chosen=chosen)

    async def explain(request: Request, session: Session) -> Response:
        index = int(request.path_params["index"])
        try:
            found = await web.call(session, lambda c: c.explain(index))
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="explain this audit entry")
        return render(request, session, "console/explain.html", {"x": found, "index": index})

    return [
        Route("/policy", page(policy_page)),
        Route("/policy/simulate", page(simulate), methods=["POST"]),
        Route("/audit/entries/{index:int}/explain", page(explain)),
    ]


async def _uploads(form: Any) -> tuple[dict[str, str], str]:
    """The uploaded draft files by name, or an error; only `UPLOADS` are read."""
    files: dict[str, str] = {}
    for name in UPLOADS:
        upload = form.get(name)
        if not isinstance(upload, UploadFile) or not upload.filename:
            continue
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            return {}, f"{name} is larger than {MAX_UPLOAD // 1024} KiB."
        try:
            files[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            return {}, f"{name} is not UTF-8 text."
    if not files:
        return {}, "Upload at least one of " + ", ".join(UPLOADS) + "."
    return files, ""


def _readable(result: dict[str, Any]) -> dict[str, Any]:
    """The report with each change kind in words and a tone for its badge."""
    for item in (*result.get("groups", []), *result.get("matrix_changes", [])):
        item["kind_words"], item["tone"] = KINDS.get(item.get("kind", ""), ("changed", "change"))
    return result
