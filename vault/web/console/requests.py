"""The console's Requests page: customers' data-subject requests and the DPO's decision.

The queue (open requests, the nearest deadline first, overdue ones marked), one request
with what it proposes, and approve or reject with a reason the customer is shown. Every
call is the signed-in person's own (RightsService: requests:read, requests:decide).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from vault.api.console_client import ConsoleClient, RequestInfo, VaultClientError
from vault.rights.request_states import is_request_id
from vault.web.security import Session

if TYPE_CHECKING:
    from vault.web.app import Web

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Session], Awaitable[Response]]
Render = Callable[..., Response]
CheckCsrf = Callable[[Request, Session], Awaitable[dict[str, str] | Response]]

FILTERS = {
    "open": ("awaiting_verification", "pending_decision"),
    "decided": ("fulfilled", "rejected"),
    "closed": ("cancelled", "expired"),
}
KIND_WORDS = {
    "rectification": "Rectification",
    "restriction": "Restriction of processing",
    "erasure": "Erasure",
}
STATE_WORDS = {
    "awaiting_verification": "Awaiting the customer's re-verification",
    "pending_decision": "Waiting for a decision",
    "fulfilled": "Fulfilled",
    "rejected": "Rejected",
    "cancelled": "Withdrawn by the customer",
    "expired": "Expired (never re-verified)",
}
MAX_REASON = 400


def row(info: RequestInfo, now: datetime) -> dict[str, Any]:
    """One request as the templates show it."""
    left = (info.deadline - now).days if info.deadline else 0
    return {
        "info": info,
        "kind": KIND_WORDS.get(info.kind, info.kind),
        "state": STATE_WORDS.get(info.state, info.state),
        "received": info.created_at.strftime("%Y-%m-%d") if info.created_at else "—",
        "deadline": info.deadline.strftime("%Y-%m-%d") if info.deadline else "—",
        "overdue": info.overdue(now),
        "left": ("overdue" if info.overdue(now) else (f"{left} days left" if info.is_open else "")),
        "decidable": info.state == "pending_decision",
    }


def request_routes(
    web: Web, page: Callable[[Handler], Endpoint], render: Render, check_csrf: CheckCsrf
) -> list[Route]:
    async def queue(request: Request, session: Session) -> Response:
        shown = request.query_params.get("show", "open")
        decided = request.query_params.get("decided", "")
        states = FILTERS.get(shown, FILTERS["open"])
        token = request.query_params.get("page", "")[:200]
        try:
            found, following = await web.call(
                session, lambda c: c.requests.page(states, page_size=50, page_token=token)
            )
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="read the request queue")
        now = web.now()
        return render(
            request,
            session,
            "console/requests.html",
            {
                "rows": [row(r, now) for r in found],
                "shown": shown if shown in FILTERS else "open",
                "filters": FILTERS,
                "next_page": following,
                # Only a request id is echoed from a URL, never free text someone put in a link.
                "decided": decided if is_request_id(decided) else "",
            },
        )

    async def one(request: Request, session: Session, error: str = "") -> Response:
        request_id = request.path_params["request_id"]
        try:
            found = await web.call(session, lambda c: c.requests.get(request_id))
        except VaultClientError as exc:
            return web.refused(request, session, exc, what="read this request")
        return render(
            request,
            session,
            "console/request.html",
            {"r": row(found, web.now()), "error": error, "max_reason": MAX_REASON},
            status=400 if error else 200,
        )

    async def show(request: Request, session: Session) -> Response:
        return await one(request, session)

    async def decide(request: Request, session: Session) -> Response:
        form = await check_csrf(request, session)
        if isinstance(form, Response):
            return form
        request_id = request.path_params["request_id"]
        reason = form.get("reason", "").strip()
        decision = form.get("decision", "")
        if decision not in ("approve", "reject") or not reason:
            return await one(request, session, "Choose approve or reject and give a reason.")
        if len(reason) > MAX_REASON:
            return await one(request, session, f"The reason is at most {MAX_REASON} characters.")

        def run(c: ConsoleClient) -> RequestInfo:
            return c.requests.decide(request_id, approve=decision == "approve", reason=reason)

        try:
            decided = await web.call(session, run)
        except VaultClientError as exc:
            if exc.code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                detail = "; ".join(f"{f}: {d}" for f, d in exc.violations) or exc.message
                return await one(request, session, f"The vault refused: {detail}")
            return web.refused(request, session, exc, what="decide this request")
        query = urlencode({"decided": decided.request_id, "show": "decided"})
        return RedirectResponse(f"/console/requests?{query}", status_code=303)

    return [
        Route("/requests", page(queue)),
        Route("/requests/{request_id}", page(show)),
        Route("/requests/{request_id}/decision", page(decide), methods=["POST"]),
    ]
