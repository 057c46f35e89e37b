"""The privacy center's "Your requests" page: ask for rectification, restriction or
erasure, confirm a request with the code we send, see its state, deadline and the data
protection officer's reason. Every call is the customer's own (CustomerAccessService)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from vault.api.console_client import CustomerClient, RequestInfo, VaultClientError
from vault.web.security import Session

Handler = Callable[[Request, Session], Awaitable[Response]]
Show = Callable[..., Response]


def N_(text: str) -> str:  # noqa: N802 - the gettext marker name
    """Marks a message for the catalogs; translated where it is shown."""
    return text


KIND_NAME = {
    "rectification": N_("Correct my data"),
    "restriction": N_("Restrict the use of my data"),
    "erasure": N_("Erase my data"),
}
KIND_TEXT = {
    "rectification": N_("We change the values you give us once we have checked them."),
    "restriction": N_(
        "We keep your data but stop using it, except to store it and to answer legal claims."
    ),
    "erasure": N_(
        "We delete your personal data for good. Your consent records and receipts stay, "
        "without your data, as proof of what you chose."
    ),
}
STATE_NAME = {
    "awaiting_verification": N_("Waiting for you to confirm"),
    "pending_decision": N_("Being reviewed"),
    "fulfilled": N_("Fulfilled"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Withdrawn"),
    "expired": N_("Expired"),
}
CODE_PROBLEMS = {
    "INVALID_ARGUMENT": N_("That code is not right, or it has expired. Check it and try again."),
    "FAILED_PRECONDITION": N_(
        "This request cannot be confirmed any more. If you tried a wrong code too often, "
        "ask us for a new one."
    ),
}
MAX_VALUE = 200


def request_routes(
    show: Show,
    page: Callable[[Handler], Callable[[Request], Awaitable[Response]]],
    client: Callable[[Session], CustomerClient],
    field_names: dict[str, str],
    now: Callable[[], datetime],
) -> list[Route]:
    async def requests_page(
        request: Request, session: Session, error: str = "", status: int = 200
    ) -> Response:
        def load() -> list[RequestInfo]:
            with client(session) as c:
                return c.requests.list()

        mine = await run_in_threadpool(load)
        return show(
            request,
            "privacy/requests.html",
            {
                "requests": mine,
                "now": now(),
                "kind_name": KIND_NAME,
                "kind_text": KIND_TEXT,
                "state_name": STATE_NAME,
                "field_names": field_names,
                "correctable": {k: v for k, v in field_names.items() if k != "notes"},
                "asked": request.query_params.get("asked", ""),
                "confirmed": request.query_params.get("confirmed", ""),
                "withdrawn": request.query_params.get("withdrawn", ""),
                "gone": request.query_params.get("gone", "") == "1",
                "erased": any(r.kind == "erasure" and r.state == "fulfilled" for r in mine),
                "error": error,
            },
            status=status,
            session=session,
        )

    async def listing(request: Request, session: Session) -> Response:
        return await requests_page(request, session)

    async def ask(request: Request, session: Session) -> Response:
        form = await request.form()
        kind = str(form.get("kind", ""))
        proposed: dict[str, str] = {}
        if kind == "rectification":
            name = str(form.get("field", ""))
            value = str(form.get("value", "")).strip()
            if name not in field_names or not value or len(value) > MAX_VALUE:
                return await requests_page(
                    request, session, N_("Choose what to correct and give the new value."), 400
                )
            proposed = {name: value}
        elif kind not in KIND_NAME:
            return await requests_page(request, session, N_("Choose what you ask for."), 400)

        def create() -> RequestInfo:
            with client(session) as c:
                return c.requests.ask(kind, proposed)

        try:
            made = await run_in_threadpool(create)
        except VaultClientError as exc:
            if exc.code != "INVALID_ARGUMENT":
                raise
            return await requests_page(
                request, session, N_("We could not accept that value. Check it and try again."), 400
            )
        return RedirectResponse(
            f"/privacy/requests?asked={made.request_id}#{made.request_id}", status_code=303
        )

    async def verify(request: Request, session: Session) -> Response:
        request_id = request.path_params["request_id"]
        form = await request.form()
        code = str(form.get("code", ""))[:40]

        def confirm() -> RequestInfo:
            with client(session) as c:
                return c.requests.verify(request_id, code)

        try:
            await run_in_threadpool(confirm)
        except VaultClientError as exc:
            problem = CODE_PROBLEMS.get(exc.code)
            if problem is None:
                raise
            return await requests_page(request, session, problem, 400)
        return RedirectResponse(
            f"/privacy/requests?confirmed={request_id}#{request_id}", status_code=303
        )

    async def cancel(request: Request, session: Session) -> Response:
        request_id = request.path_params["request_id"]

        def withdraw() -> RequestInfo:
            with client(session) as c:
                return c.requests.cancel(request_id)

        await run_in_threadpool(withdraw)
        return RedirectResponse(
            f"/privacy/requests?withdrawn={request_id}#{request_id}", status_code=303
        )

    return [
        Route("/requests", page(listing), methods=["GET"]),
        Route("/requests", page(ask), methods=["POST"]),
        Route("/requests/{request_id}/verify", page(verify), methods=["POST"]),
        Route("/requests/{request_id}/cancel", page(cancel), methods=["POST"]),
    ]
