"""The privacy center's pages. Every page calls the vault as the signed-in customer, with
a token bound to their own subject: the vault's policy decides, its audit log records."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from vault.api.console_client import (
    CustomerClient,
    PurposeChoice,
    Receipt,
    VaultClientError,
    redeem_link,
)
from vault.web import i18n, security
from vault.web.privacy.document import ReadableCopy, package_pdf
from vault.web.privacy.history import Happening, plain
from vault.web.privacy.requests import request_routes
from vault.web.security import CSRF_FIELD, SESSION_COOKIE, Session, TokenShapeError

if TYPE_CHECKING:
    from vault.web.app import Web

LINK_COOKIE = "cv_link"
RECEIPT_ID = re.compile(r"[A-Za-z0-9_:.-]{1,80}")
MARKERS = ("all_marketing", "all_sharing")
Handler = Callable[[Request, Session], Awaitable[Response]]
Overview = tuple[
    list[tuple[str, str]],
    list[PurposeChoice],
    tuple[str, ...],
    Receipt | None,
    list[Happening],
    datetime | None,
]


def N_(text: str) -> str:  # noqa: N802 - the gettext marker name
    """Marks a message for the catalogs; translated where it is shown."""
    return text


PURPOSE_TEXT = {
    "marketing": N_("Sending you offers and news about our products."),
    "personalization": N_("Tailoring what you see in our product to you."),
    "sharing": N_("Passing your details to partners, for example advertising networks."),
    "analytics": N_(
        "Counting and measuring how our service is used, on data that no longer names you."
    ),
    "all_marketing": N_("Every kind of marketing, now and in future."),
    "all_sharing": N_("Every kind of sharing or sale of your data to others."),
}
PURPOSE_NAME = {
    "marketing": N_("Marketing"),
    "personalization": N_("Personalization"),
    "sharing": N_("Sharing with partners"),
    "analytics": N_("Statistics"),
    "all_marketing": N_("All marketing"),
    "all_sharing": N_("All sharing"),
}
BASIS_TEXT = {
    "consent": N_("Only with your consent. You can give or withdraw it at any time."),
    "legitimate_interest": N_("Our legitimate interest. It stops as soon as you object."),
}
FIELD_NAME = {
    "given_name": N_("Given name"),
    "family_name": N_("Family name"),
    "email": N_("Email"),
    "phone": N_("Phone"),
    "date_of_birth": N_("Date of birth"),
    "street_address": N_("Street address"),
    "city": N_("City"),
    "postal_code": N_("Postal code"),
    "country": N_("Country"),
    "national_id": N_("National ID"),
    "loyalty_tier": N_("Loyalty tier"),
    "notes": N_("Notes from our staff"),
}


def privacy_routes(web: Web) -> list[Route]:  # noqa: PLR0915 - one closure per page
    """The pages under /privacy."""

    catalogs = i18n.Catalogs()

    def language_of(request: Request) -> str:
        return i18n.choose(
            request.cookies.get(i18n.LANG_COOKIE),
            request.headers.get("accept-language", ""),
            catalogs.available,
        )

    def show(
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        session: Session | None = None,
    ) -> Response:
        """A privacy page in the customer's language."""
        code = language_of(request)
        language = i18n.LANGUAGES[code]
        return web.render(
            request,
            name,
            {
                **context,
                "_": catalogs.gettext(code),
                "lang": language.html,
                "language": language,
                "languages": [i18n.LANGUAGES[c] for c in catalogs.available],
                "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            },
            status=status,
            session=session,
        )

    def customer_session(request: Request) -> Session | None:
        session = web.session(request)
        if session is None or not session.person.subject:
            return None
        return session

    def client(session: Session) -> CustomerClient:
        return CustomerClient(
            web.settings.vault_address,
            session.token,
            session.person.subject,
            notice_version=web.settings.privacy_notice_version,
            ca_file=web.settings.vault_ca_file,
        )

    def signed_out(request: Request, reason: str = "") -> Response:
        response = show(request, "privacy/signed_out.html", {"reason": reason}, status=401)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            session = customer_session(request)
            if session is None:
                return signed_out(request)
            if request.method == "POST":
                form = await request.form()
                if not security.csrf_matches(session.csrf, form.get(CSRF_FIELD)):
                    return web.render(request, "forbidden.html", {}, status=403, session=session)
            try:
                return await handler(request, session)
            except VaultClientError as exc:
                if exc.code == "UNAUTHENTICATED":
                    web.sessions.drop(request.cookies.get(SESSION_COOKIE))
                    return signed_out(request, "expired")
                return show(
                    request,
                    "privacy/problem.html",
                    {"code": exc.code},
                    status=502 if exc.code == "UNAVAILABLE" else 400,
                    session=session,
                )

        return run

    async def link_form(request: Request) -> Response:
        code = request.query_params.get("code", "")
        value = secrets.token_urlsafe(32)
        response = show(
            request, "privacy/link.html", {"code": code, "link_csrf": value, "error": ""}
        )
        response.set_cookie(
            LINK_COOKIE,
            value,
            max_age=3600,
            path="/privacy/link",
            httponly=True,
            samesite="strict",
            secure=security.is_secure(request, web.settings.secure_cookies),
        )
        return response

    async def link_redeem(request: Request) -> Response:
        form = await request.form()
        code = str(form.get("code", "")).strip()
        if not security.csrf_matches(request.cookies.get(LINK_COOKIE, ""), form.get(CSRF_FIELD)):
            return show(
                request,
                "privacy/link.html",
                {"code": code, "link_csrf": "", "error": "expired-form"},
                status=403,
            )

        def redeem() -> str:
            try:
                signed_in = redeem_link(
                    web.settings.vault_address, code, ca_file=web.settings.vault_ca_file
                )
            except VaultClientError as exc:
                return exc.code
            return signed_in.token

        result = await run_in_threadpool(redeem)
        try:
            person = security.read_claims(result, web.now())
        except TokenShapeError:
            return show(
                request,
                "privacy/link.html",
                {"code": "", "link_csrf": "", "error": "used-or-expired"},
                status=401,
            )
        return web.start_session(
            request, result, person, to="/privacy/", spent_cookie=(LINK_COOKIE, "/privacy/link")
        )

    async def overview(request: Request, session: Session) -> Response:
        gpc = request.headers.get("sec-gpc", "").strip() == "1"

        def load() -> Overview:
            with client(session) as c:
                _, markers = c.choices()
                gpc_receipt = None
                if gpc and "all_sharing" not in markers:
                    # A browser's Global Privacy Control signal is an opt-out of all
                    # sharing (CCPA "do not sell or share"), recorded as such.
                    gpc_receipt = c.opt_out(["all_sharing"], gpc=True)
                purposes, markers = c.choices()
                shown = [(f.name, f.value) for f in c.my_data()]
                history = plain(c.history())
                deadline = c.dormancy_deadline()
            return shown, purposes, markers, gpc_receipt, history, deadline

        try:
            shown, purposes, markers, gpc_receipt, history, deadline = await run_in_threadpool(load)
        except VaultClientError as exc:
            if exc.code != "FAILED_PRECONDITION":
                raise
            # Erased (or anonymized): no data left to show; the requests page says why.
            return RedirectResponse("/privacy/requests?gone=1", status_code=303)
        order = list(FIELD_NAME)
        shown.sort(key=lambda f: order.index(f[0]) if f[0] in order else len(order))
        history = [
            replace(
                h,
                fields=tuple(
                    sorted(h.fields, key=lambda n: order.index(n) if n in order else len(order))
                ),
            )
            for h in history
        ]
        receipt_id = request.query_params.get("receipt", "")
        return show(
            request,
            "privacy/overview.html",
            {
                "fields": shown,
                "field_names": FIELD_NAME,
                "purposes": [p for p in purposes if p.purpose not in MARKERS],
                "markers": [p for p in purposes if p.purpose in MARKERS],
                "opted_out": markers,
                "purpose_text": PURPOSE_TEXT,
                "purpose_name": PURPOSE_NAME,
                "basis_text": BASIS_TEXT,
                "gpc_receipt": gpc_receipt,
                "receipt_id": receipt_id if RECEIPT_ID.fullmatch(receipt_id) else "",
                "changed": request.query_params.get("changed", ""),
                "history": history,
                "deadline": deadline,
                "kept": request.query_params.get("kept", "") == "1",
            },
            session=session,
        )

    async def change_consent(request: Request, session: Session) -> Response:
        form = await request.form()
        purpose = str(form.get("purpose", ""))
        action = str(form.get("action", ""))
        if purpose not in PURPOSE_TEXT or action not in ("grant", "withdraw"):
            return show(
                request,
                "privacy/problem.html",
                {"code": "INVALID_ARGUMENT"},
                status=400,
                session=session,
            )

        def change() -> Receipt:
            with client(session) as c:
                if purpose in MARKERS:
                    return c.opt_out([purpose])
                return c.grant(purpose) if action == "grant" else c.withdraw(purpose)

        receipt = await run_in_threadpool(change)
        return RedirectResponse(
            f"/privacy/?changed={purpose}&receipt={receipt.receipt_id}#choices", status_code=303
        )

    async def receipt(request: Request, session: Session) -> Response:
        receipt_id = request.path_params["receipt_id"]
        if not RECEIPT_ID.fullmatch(receipt_id):
            return web.render(request, "not_found.html", {}, status=404, session=session)

        def load() -> Receipt:
            with client(session) as c:
                return c.receipt(receipt_id)

        found = await run_in_threadpool(load)
        return Response(
            found.document,
            media_type="application/json",
            headers={
                "content-disposition": f'attachment; filename="consent-receipt-{receipt_id}.json"'
            },
        )

    async def choose_language(request: Request) -> Response:
        code = request.query_params.get("to", "")
        target = request.query_params.get("next", "/privacy/")
        if not target.startswith("/privacy/") or "//" in target or "\\" in target:
            target = "/privacy/"
        response = RedirectResponse(target, status_code=303)
        if code in catalogs.available:
            response.set_cookie(
                i18n.LANG_COOKIE,
                code,
                max_age=365 * 24 * 3600,
                path="/privacy",
                httponly=True,
                samesite="lax",
                secure=security.is_secure(request, web.settings.secure_cookies),
            )
        return response

    async def keep_account(request: Request, session: Session) -> Response:
        def keep() -> None:
            with client(session) as c:
                c.keep_account()

        await run_in_threadpool(keep)
        return RedirectResponse("/privacy/?kept=1", status_code=303)

    async def download_page(request: Request, session: Session) -> Response:
        return show(request, "privacy/download.html", {}, session=session)

    async def download_json(request: Request, session: Session) -> Response:
        def load() -> tuple[str, str]:
            with client(session) as c:
                return c.download()

        _, signed = await run_in_threadpool(load)
        if not signed:
            return show(
                request, "privacy/problem.html", {"code": "UNSIGNED"}, status=503, session=session
            )
        return Response(
            signed + "\n",
            media_type="application/json",
            headers={"content-disposition": 'attachment; filename="my-data-signed.json"'},
        )

    async def readable_copy(session: Session) -> ReadableCopy:
        def load() -> tuple[str, str]:
            with client(session) as c:
                return c.download()

        package_json, signed = await run_in_threadpool(load)
        return ReadableCopy.of(package_json, signed, list(FIELD_NAME))

    async def download_readable(request: Request, session: Session) -> Response:
        copy = await readable_copy(session)
        return show(
            request,
            "privacy/readable.html",
            {
                "package": copy.package,
                "fields": copy.fields,
                "field_names": FIELD_NAME,
                "purpose_name": PURPOSE_NAME,
                "history": copy.history,
                "signature": copy.signature,
            },
            session=session,
        )

    async def download_pdf(request: Request, session: Session) -> Response:
        copy = await readable_copy(session)
        if not copy.signed:
            return show(
                request, "privacy/problem.html", {"code": "UNSIGNED"}, status=503, session=session
            )
        code = language_of(request)
        document = await run_in_threadpool(
            package_pdf,
            copy,
            catalogs.gettext(code),
            i18n.LANGUAGES[code],
            FIELD_NAME,
            PURPOSE_NAME,
        )
        return Response(
            document,
            media_type="application/pdf",
            headers={"content-disposition": 'attachment; filename="my-data.pdf"'},
        )

    async def verify_page(request: Request) -> Response:
        key = web.settings.receipt_public_key
        pem = key.read_text() if key is not None and key.exists() else ""
        return show(
            request, "privacy/verify.html", {"public_key": pem}, session=customer_session(request)
        )

    async def signout(request: Request, session: Session) -> Response:
        web.sessions.drop(request.cookies.get(SESSION_COOKIE))
        return signed_out(request, "signed-out")

    return [
        Route("/link", link_form, methods=["GET"]),
        Route("/language", choose_language, methods=["GET"]),
        Route("/link", link_redeem, methods=["POST"]),
        Route("/", page(overview), methods=["GET"]),
        Route("/consent", page(change_consent), methods=["POST"]),
        Route("/receipts/{receipt_id}", page(receipt), methods=["GET"]),
        Route("/keep", page(keep_account), methods=["POST"]),
        Route("/download", page(download_page), methods=["GET"]),
        Route("/download/my-data-signed.json", page(download_json), methods=["GET"]),
        Route("/download/my-data.html", page(download_readable), methods=["GET"]),
        Route("/download/my-data.pdf", page(download_pdf), methods=["GET"]),
        Route("/verify", verify_page, methods=["GET"]),
        Route("/signout", page(signout), methods=["POST"]),
        *request_routes(show, page, client, FIELD_NAME, web.now),
    ]
