"""Sessions, CSRF tokens and security headers, shared by every section of the web app.

Sessions are kept server-side: the cookie holds only a random 256-bit session id
(HttpOnly, SameSite=Strict, Secure over TLS, Path=/); the bearer token lives in this
process's memory, keyed by the SHA-256 of that id, and never reaches a URL or a page.
A session ends when the person signs out, when the token expires, after
`session_lifetime`, or when the vault answers UNAUTHENTICATED. A restart signs everyone
out (the store is in memory by design: nothing to steal on disk).

Every form carries the session's CSRF token (the sign-in form, before a session exists,
a double-submit token bound to a SameSite=Strict cookie); a POST without the right one is
refused with 403 before anything is done.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "cv_session"
SIGNIN_COOKIE = "cv_signin"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


@dataclass(frozen=True)
class Person:
    """Who a token says it is (shown on pages; the vault decides what it may do)."""

    principal: str
    tenant: str
    roles: tuple[str, ...]
    expires_at: datetime
    subject: str = ""
    """For a customer (privacy center), the subject their token is bound to."""


class TokenShapeError(ValueError):
    """Not something the vault could accept: not a JWT with the vault's claims."""


def read_claims(token: str, now: datetime) -> Person:
    """The principal, tenant, roles and expiry a vault token names, WITHOUT checking its
    signature: only for display and for ending the session when the token expires. The
    vault checks the signature on every call the console makes."""
    if not token or len(token) > 8192 or any(c.isspace() for c in token):
        raise TokenShapeError("not a token")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenShapeError("not a token") from None
    principal, tenant = claims.get("sub"), claims.get("tenant")
    roles, exp = claims.get("roles"), claims.get("exp")
    if not (isinstance(principal, str) and isinstance(tenant, str) and isinstance(roles, list)):
        raise TokenShapeError("not a vault token")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise TokenShapeError("not a vault token")
    expires_at = datetime.fromtimestamp(exp, UTC)
    if expires_at <= now:
        raise TokenShapeError("expired")
    subject = claims.get("subject", "")
    if not isinstance(subject, str):
        raise TokenShapeError("not a vault token")
    return Person(principal, tenant, tuple(str(r) for r in roles), expires_at, subject)


@dataclass
class Session:
    token: str
    person: Person
    csrf: str
    expires_at: datetime


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions in memory, by the hash of their id (so a dump of the store holds no
    cookie that would work)."""

    def __init__(self, lifetime: timedelta, now: Callable[[], datetime]) -> None:
        self._lifetime = lifetime
        self._now = now
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token: str, person: Person) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        expires = min(person.expires_at, self._now() + self._lifetime)
        session = Session(token, person, secrets.token_urlsafe(32), expires)
        with self._lock:
            self._prune()
            self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        with self._lock:
            session = self._sessions.get(_key(session_id))
            if session is not None and session.expires_at <= self._now():
                del self._sessions[_key(session_id)]
                return None
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def _prune(self) -> None:
        now = self._now()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


def csrf_matches(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected, given)


def is_secure(request: Request, force: bool) -> bool:
    return force or request.url.scheme == "https"


def set_session_cookie(
    response: Response,
    request: Request,
    session_id: str,
    session: Session,
    *,
    now: datetime,
    force_secure: bool,
) -> None:
    max_age = max(1, int((session.expires_at - now).total_seconds()))
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_secure(request, force_secure),
    )


def set_signin_cookie(
    response: Response, request: Request, value: str, *, force_secure: bool
) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        value,
        max_age=3600,
        path="/signin",
        httponly=True,
        samesite="strict",
        secure=is_secure(request, force_secure),
    )


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """Adds the CSP and friends to every HTTP response; pages are never cached (they
    show audit data), the stylesheet may be."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in SECURITY_HEADERS}
                ]
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
