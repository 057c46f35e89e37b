"""The web application: shared pages (sign-in, sign-out, errors) and the sections."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import audit
from vault.api.console_client import ConsoleClient, VaultClientError
from vault.web import security
from vault.web.console.routes import NAV, console_routes
from vault.web.privacy.routes import privacy_routes
from vault.web.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Session,
    SessionStore,
    TokenShapeError,
)
from vault.web.settings import WebSettings

log = logging.getLogger("vault.web")
HERE = Path(__file__).parent
T = TypeVar("T")


def silence_server_access_log() -> None:
    """Drop the ASGI server's own access log (uvicorn's logs the query string, where a
    filter may hold whatever someone typed); `AccessLog` below replaces it. A filter on
    the logger holds whatever handlers and propagation logging is later configured with."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _DropAll) for f in access.filters):
        access.addFilter(_DropAll())


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class AccessLog:
    """One log line per request: method, path (never the query string, which holds
    whatever was typed into a filter), status and time taken. No cookies, no bodies."""

    def __init__(self, app: security.ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: security.Scope, receive: security.Receive, send: security.Send
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def recording(message: security.Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            log.info(
                "%s %s %d %.0fms",
                scope.get("method", "?"),
                quote(str(scope.get("path", "")), safe="/._-~"),
                status,
                (time.monotonic() - started) * 1000,
            )


class Web:
    """What every page handler shares: settings, templates, sessions, vault calls."""

    def __init__(self, settings: WebSettings, now: Callable[[], datetime]) -> None:
        self.settings = settings
        self.now = now
        self.sessions = SessionStore(settings.session_lifetime, now)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.verifier: audit.CheckpointVerifier | None = None
        if settings.audit_public_key is not None and settings.audit_public_key.exists():
            self.verifier = audit.CheckpointVerifier.from_pem(
                settings.audit_public_key.read_bytes()
            )
        # A malformed witness key stops the console at start, not on the page.
        self.witnesses = [
            audit.CosignatureVerifier.from_verifier_key(k) for k in settings.witness_keys
        ]

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        session: Session | None = None,
    ) -> HTMLResponse:
        template = self.templates.get_template(name)
        body = template.render(
            request=request,
            session=session,
            person=session.person if session else None,
            csrf_field=CSRF_FIELD,
            csrf=session.csrf if session else "",
            path=request.url.path,
            **context,
        )
        return HTMLResponse(body, status_code=status)

    def stream(
        self, request: Request, name: str, context: dict[str, Any], *, session: Session
    ) -> StreamingResponse:
        """A page sent as it renders (a long verification shows its progress): the
        template's output goes out piece by piece, each value escaped as in `render`."""
        template = self.templates.get_template(name)
        pieces = template.generate(
            request=request,
            session=session,
            person=session.person,
            csrf_field=CSRF_FIELD,
            csrf=session.csrf,
            path=request.url.path,
            **context,
        )
        return StreamingResponse(pieces, media_type="text/html; charset=utf-8")

    def client(self, session: Session) -> ConsoleClient:
        return ConsoleClient(
            self.settings.vault_address, session.token, ca_file=self.settings.vault_ca_file
        )

    async def call(self, session: Session, fn: Callable[[ConsoleClient], T]) -> T:
        """Run one or more vault calls as the session's person, off the event loop."""

        def run() -> T:
            with self.client(session) as client:
                return fn(client)

        return await run_in_threadpool(run)

    def start_session(
        self,
        request: Request,
        token: str,
        person: security.Person,
        *,
        to: str,
        spent_cookie: tuple[str, str],
    ) -> RedirectResponse:
        """A new session for `token` and a redirect to `to` carrying its cookie; the
        one-use cookie of the form that led here (name, path) is dropped."""
        session_id, session = self.sessions.create(token, person)
        response = RedirectResponse(to, status_code=303)
        security.set_session_cookie(
            response,
            request,
            session_id,
            session,
            now=self.now(),
            force_secure=self.settings.secure_cookies,
        )
        response.delete_cookie(spent_cookie[0], path=spent_cookie[1])
        return response

    def signin_redirect(self, request: Request, reason: str = "") -> RedirectResponse:
        target = "/signin" + (f"?reason={reason}" if reason else "")
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def refused(
        self, request: Request, session: Session, exc: VaultClientError, *, what: str
    ) -> Response:
        """A page the vault refused: sign out on UNAUTHENTICATED, else say what happened."""
        if exc.code == "UNAUTHENTICATED":
            self.sessions.drop(request.cookies.get(SESSION_COOKIE))
            return self.signin_redirect(request, "expired")
        status = {
            "PERMISSION_DENIED": 403,
            "NOT_FOUND": 404,
            "INVALID_ARGUMENT": 400,
            "FAILED_PRECONDITION": 409,
        }.get(exc.code, 502)
        return self.render(
            request,
            "error.html",
            {"what": what, "code": exc.code, "message": exc.message, "violations": exc.violations},
            status=status,
            session=session,
        )


def _signin_page(web: Web, request: Request, *, error: str = "", status: int = 200) -> Response:
    existing = request.cookies.get(SIGNIN_COOKIE, "")
    value = existing if 20 <= len(existing) <= 128 else secrets.token_urlsafe(32)
    reason = request.query_params.get("reason", "")
    notice = {
        "expired": "Your session ended: the vault no longer accepts its token. Sign in again.",
        "signed-out": "You are signed out.",
    }.get(reason, "")
    response = web.render(
        request,
        "signin.html",
        {"signin_csrf": value, "error": error, "notice": notice},
        status=status,
    )
    security.set_signin_cookie(response, request, value, force_secure=web.settings.secure_cookies)
    return response


def _routes(web: Web) -> list[Route | Mount]:
    async def home(request: Request) -> Response:
        session = web.session(request)
        if session is None:
            return RedirectResponse("/signin", status_code=303)
        return RedirectResponse(
            "/privacy/" if session.person.subject else "/console/", status_code=303
        )

    async def signin_form(request: Request) -> Response:
        if web.session(request) is not None:
            return RedirectResponse("/console/", status_code=303)
        return _signin_page(web, request)

    async def signin(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        if not security.csrf_matches(cookie, form.get(CSRF_FIELD)):
            return _signin_page(
                web, request, error="The form expired. Please try again.", status=403
            )
        token = str(form.get("token", "")).strip()
        try:
            person = security.read_claims(token, web.now())
        except TokenShapeError as exc:
            message = (
                "This token has expired. Issue a new one."
                if str(exc) == "expired"
                else "This is not a vault token."
            )
            return _signin_page(web, request, error=message, status=401)

        def probe() -> str:
            with ConsoleClient(
                web.settings.vault_address, token, ca_file=web.settings.vault_ca_file
            ) as client:
                try:
                    client.latest_checkpoint()
                except VaultClientError as exc:
                    return exc.code
                return "OK"

        code = await run_in_threadpool(probe)
        if code == "UNAUTHENTICATED":
            return _signin_page(
                web,
                request,
                error="The vault did not accept this token (bad signature, expired, or issued "
                "for another vault).",
                status=401,
            )
        if code == "UNAVAILABLE":
            return _signin_page(web, request, error="The vault is not answering.", status=503)
        if code not in {"OK", "NOT_FOUND", "PERMISSION_DENIED"}:
            # Only an answer that shows the vault checked the token opens a session: an
            # overloaded or failing vault (RESOURCE_EXHAUSTED, INTERNAL, a deadline) has
            # not, and the token's claims are unverified here.
            return _signin_page(
                web, request, error="The vault could not check this token now.", status=503
            )
        # OK, NOT_FOUND (no checkpoint yet) or PERMISSION_DENIED: the token is the vault's;
        # what this person may see, each page asks the vault.
        log.info("console sign-in by %s (%s)", person.principal, ",".join(person.roles))
        return web.start_session(
            request, token, person, to="/console/", spent_cookie=(SIGNIN_COOKIE, "/signin")
        )

    async def signout(request: Request) -> Response:
        session = web.session(request)
        if session is None:
            return web.signin_redirect(request)
        form = await request.form()
        if not security.csrf_matches(session.csrf, form.get(CSRF_FIELD)):
            return web.render(request, "forbidden.html", {}, status=403, session=session)
        web.sessions.drop(request.cookies.get(SESSION_COOKIE))
        return web.signin_redirect(request, "signed-out")

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return [
        Route("/", home),
        Route("/favicon.ico", favicon),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Mount("/console", routes=console_routes(web)),
        Mount("/privacy", routes=privacy_routes(web)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(settings: WebSettings, *, now: Callable[[], datetime] | None = None) -> Starlette:
    """The web application for `settings` (`now` for tests; UTC wall clock otherwise)."""
    silence_server_access_log()
    web = Web(settings, now or (lambda: datetime.now(UTC)))
    web.templates.globals["console_nav"] = NAV
    web.templates.globals["_"] = lambda text: text
    app = Starlette(
        routes=_routes(web),
        middleware=[Middleware(AccessLog), Middleware(security.SecurityHeaders)],
    )

    async def not_found(request: Request, exc: Exception) -> Response:
        return web.render(request, "not_found.html", {}, status=404, session=web.session(request))

    app.add_exception_handler(404, not_found)
    app.state.web = web
    return app
