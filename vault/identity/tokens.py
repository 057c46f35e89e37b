"""Signed bearer tokens (JWT, EdDSA only) carrying principal, tenant, roles, attributes.

Only EdDSA is accepted: `none` and every HMAC algorithm are refused, so a public key
can never be abused as an HMAC secret. Time checks use the injected clock, not PyJWT's.
Every failure is the same `UnauthenticatedError`: the caller learns nothing about which
check failed.

A token may be bound to a client certificate (RFC 8705: claim `cnf` with `x5t#S256`, the
certificate's SHA-256 thumbprint). A bound token is accepted only over mutual TLS with
that certificate, so a copy replayed by anyone without its private key is refused.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import jwt

from vault.clock import Clock
from vault.crypto import constant_time_equals
from vault.errors import UnauthenticatedError
from vault.principal import Principal

ALGORITHM = "EdDSA"
MAX_TTL = timedelta(hours=24)
MAX_CACHED_TOKENS = 10_000
"""Verified tokens kept (cleared whole when full: a miss only costs one verification)."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_ATTR_VALUE = re.compile(r"^[A-Za-z0-9._:@/ -]{0,128}$")
_MAX_ROLES = 32
_MAX_ATTRS = 32
_INVALID = "invalid credentials"
CUSTOMER_ROLE = "customer"
"""The role of a token bound to one subject: a token carries claim `subject` if and only
if its roles are exactly this one."""
SUBJECT_CLAIM = "subject"


class TokenBindingError(UnauthenticatedError):
    """A certificate-bound token came without that certificate (a replayed copy)."""


def valid_name(value: object) -> bool:
    """A principal, tenant, role or attribute name: short, simple characters."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def valid_attributes(attrs: object) -> bool:
    """At most 32 attributes, simple names to short plain string values."""
    if not isinstance(attrs, dict) or len(attrs) > _MAX_ATTRS:
        return False
    return all(
        valid_name(key) and isinstance(value, str) and _ATTR_VALUE.fullmatch(value)
        for key, value in attrs.items()
    )


def check_times(claims: Mapping[str, Any], clock: Clock, leeway: int) -> None:
    """`UnauthenticatedError` unless exp, iat and nbf (iat if absent) are integers, the
    token is valid now on `clock` (with `leeway` seconds), and lived at most 24 hours."""
    now = clock.now().timestamp()
    raw = (claims.get("exp"), claims.get("iat"), claims.get("nbf", claims.get("iat")))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise UnauthenticatedError(_INVALID)
    exp, iat, nbf = (int(v) for v in raw if isinstance(v, int))
    if exp <= now - leeway or nbf > now + leeway or iat > now + leeway:
        raise UnauthenticatedError(_INVALID)
    if exp - iat > MAX_TTL.total_seconds():
        raise UnauthenticatedError(_INVALID)


class TokenIssuer:
    """Signs tokens with a locally generated Ed25519 key (`customer-vault token issue`)."""

    def __init__(self, private_key_pem: bytes, *, issuer: str, audience: str, clock: Clock) -> None:
        self._key = private_key_pem
        self._issuer = issuer
        self._audience = audience
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenIssuer(issuer={self._issuer!r})"

    def issue(self, principal: Principal, ttl: timedelta, *, bound_to: str | None = None) -> str:
        """A signed token for `principal`, valid for `ttl` (at most 24 hours); with
        `bound_to` (a certificate thumbprint, `vault.crypto.certificate_thumbprint`) only
        usable over mutual TLS with that certificate."""
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValueError("ttl must be positive and at most 24 hours")
        names = [principal.id, principal.tenant, *principal.roles, *principal.attributes]
        if not all(valid_name(n) for n in names):
            raise ValueError("principal, tenant, role and attribute names must be simple names")
        now = self._clock.now()
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": principal.id,
            "tenant": principal.tenant,
            "roles": sorted(principal.roles),
            "attrs": dict(principal.attributes),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if bound_to is not None:
            claims["cnf"] = {"x5t#S256": bound_to}
        if (principal.subject is not None) != (principal.roles == {CUSTOMER_ROLE}):
            raise ValueError("a customer token is bound to one subject, and only it")
        if principal.subject is not None:
            if not valid_name(principal.subject):
                raise ValueError("the subject must be a subject id")
            claims[SUBJECT_CLAIM] = principal.subject
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies tokens against the configured public key and turns them into a Principal."""

    def __init__(
        self,
        public_key_pem: bytes,
        *,
        issuer: str,
        audience: str,
        clock: Clock,
        leeway_seconds: int = 5,
    ) -> None:
        self._key = public_key_pem
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway_seconds
        # Verified tokens, by their exact text: a service sends the same token on every
        # call, and the signature check costs ~200 us. Only a token that verified in full
        # is cached (a forged one differs in its text), and its times are re-checked
        # against the clock on every hit.
        self._verified: dict[str, tuple[Principal, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str, *, certificate: str | None = None) -> Principal:
        """The principal the token names, or `UnauthenticatedError`.

        `certificate` is the thumbprint of the caller's verified client certificate (None
        without mutual TLS); a token bound to a certificate must come with that one, or
        `TokenBindingError`.
        """
        cached = self._verified.get(token)
        if cached is not None:
            principal, claims = cached
            self._check_times(claims)
            check_binding(claims, certificate)
            return principal
        principal, claims = self._verify_uncached(token)
        check_binding(claims, certificate)
        with self._lock:
            if len(self._verified) >= MAX_CACHED_TOKENS:
                self._verified.clear()
            self._verified[token] = (principal, claims)
        return principal

    def verify_with_id(self, token: str) -> tuple[Principal, str]:
        """The principal and the token's id (`jti`), for a token used once (a link code);
        never cached, and never bound to a certificate."""
        principal, claims = self._verify_uncached(token)
        check_binding(claims, None)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise UnauthenticatedError(_INVALID)
        return principal, jti

    def _verify_uncached(self, token: str) -> tuple[Principal, Mapping[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise UnauthenticatedError(_INVALID)
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["iss", "aud", "sub", "exp", "iat", "jti"],
                    # Times are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise UnauthenticatedError(_INVALID) from exc
        self._check_times(claims)
        return self._principal(claims), claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        check_times(claims, self._clock, self._leeway)

    @staticmethod
    def _principal(claims: Mapping[str, Any]) -> Principal:
        if "cnf" in claims and not _bound_thumbprint(claims):
            raise UnauthenticatedError(_INVALID)
        sub, tenant = claims.get("sub"), claims.get("tenant")
        roles, attrs = claims.get("roles", []), claims.get("attrs", {})
        if not (valid_name(sub) and valid_name(tenant)):
            raise UnauthenticatedError(_INVALID)
        if not isinstance(roles, list) or len(roles) > _MAX_ROLES:
            raise UnauthenticatedError(_INVALID)
        if not all(valid_name(r) for r in roles):
            raise UnauthenticatedError(_INVALID)
        if not valid_attributes(attrs):
            raise UnauthenticatedError(_INVALID)
        bound_subject = claims.get(SUBJECT_CLAIM)
        if bound_subject is not None and not valid_name(bound_subject):
            raise UnauthenticatedError(_INVALID)
        # A customer token names its subject and holds no other role; no other token
        # names a subject.
        if (bound_subject is not None) != (roles == [CUSTOMER_ROLE]):
            raise UnauthenticatedError(_INVALID)
        return Principal(
            id=str(sub),
            tenant=str(tenant),
            roles=frozenset(roles),
            attributes=MappingProxyType(dict(attrs)),
            subject=str(bound_subject) if bound_subject is not None else None,
        )


def _bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The certificate thumbprint a token is bound to; None if unbound or malformed."""
    confirmation = claims.get("cnf")
    if not isinstance(confirmation, dict) or set(confirmation) != {"x5t#S256"}:
        return None
    thumbprint = confirmation["x5t#S256"]
    return thumbprint if isinstance(thumbprint, str) and thumbprint else None


def check_binding(claims: Mapping[str, Any], certificate: str | None) -> None:
    """`TokenBindingError` if the token is bound to a certificate other than `certificate`."""
    if "cnf" not in claims:
        return
    bound = _bound_thumbprint(claims)
    if bound is None or certificate is None:
        raise TokenBindingError(_INVALID)
    if not constant_time_equals(bound.encode(), certificate.encode()):
        raise TokenBindingError(_INVALID)
