"""Tokens from the organization's identity provider: trusted issuers, each configured by
its `iss`, JWKS URL, audience and accepted algorithms, beside the vault's own static
token key (development, `customer-vault token issue`).

`IssuerVerifiers` routes a token by its (unverified) `iss` claim: the static issuer's
tokens go to `TokenVerifier`, a trusted issuer's to its `JwksVerifier`, any other
issuer is refused. A trusted issuer's token must name, in its header, an algorithm the
issuer is configured with (asymmetric only: `none` and HS* are refused whatever the
configuration, so a public key can never serve as an HMAC secret) and a key id (`kid`)
the issuer publishes, of the type that algorithm needs. Claims are mapped to a
principal by configuration: the principal from `principal_claim` (default `sub`), the
tenant fixed per issuer or from `tenant_claim`, roles from `roles_claim` (a list or a
space-separated string; dotted paths reach nested claims, e.g. `realm_access.roles`),
attributes from `attribute_claims`. Customer tokens (role `customer`, bound to one
subject) are only the vault's own.

Every failure is the same `UnauthenticatedError("invalid credentials")`; nothing of a
token is logged.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import jwt

from vault.clock import Clock
from vault.config import TrustedIssuerSettings
from vault.errors import UnauthenticatedError
from vault.identity.jwks import ASYMMETRIC_ALGORITHMS, JwksKeys, JwksPolicy
from vault.identity.tokens import (
    CUSTOMER_ROLE,
    MAX_CACHED_TOKENS,
    TokenVerifier,
    check_binding,
    check_times,
    valid_attributes,
    valid_name,
)
from vault.principal import Principal

_INVALID = "invalid credentials"


class BearerVerifier(Protocol):
    """What authentication needs of a verifier: a token in, a principal out."""

    def verify(self, token: str, *, certificate: str | None = None) -> Principal: ...


@dataclass(frozen=True)
class TrustedIssuer:
    """One identity provider whose tokens the vault accepts (docs/operations.md)."""

    issuer: str
    jwks: JwksPolicy
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    tenant: str | None = None
    tenant_claim: str | None = None
    principal_claim: str = "sub"
    roles_claim: str = "roles"
    attribute_claims: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        refused = set(self.algorithms) - ASYMMETRIC_ALGORITHMS
        if refused or not self.algorithms:
            raise ValueError(
                f"issuer {self.issuer!r}: algorithms must be asymmetric ones of "
                f"{sorted(ASYMMETRIC_ALGORITHMS)} (refused: {sorted(refused)})"
            )
        if (self.tenant is None) == (self.tenant_claim is None):
            raise ValueError(f"issuer {self.issuer!r} needs exactly one of tenant, tenant_claim")


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted `path` (`realm_access.roles`), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class JwksVerifier:
    """Verifies one trusted issuer's tokens against its published keys."""

    def __init__(self, issuer: TrustedIssuer, clock: Clock, leeway_seconds: int = 5) -> None:
        self.issuer = issuer
        self._keys = JwksKeys(issuer.jwks, clock)
        self._clock = clock
        self._leeway = leeway_seconds
        # Verified tokens by their text, with the key id that verified them: a hit is
        # accepted only while that key is still published and the times still hold.
        self._verified: dict[str, tuple[Principal, Mapping[str, Any], str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JwksVerifier(issuer={self.issuer.issuer!r})"

    def verify(self, token: str, *, certificate: str | None = None) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, claims, kid = cached
            if self._keys.key(kid) is None:
                raise UnauthenticatedError(_INVALID)
            check_times(claims, self._clock, self._leeway)
            check_binding(claims, certificate)
            return principal
        principal, claims, kid = self._verify_uncached(token)
        check_binding(claims, certificate)
        with self._lock:
            if len(self._verified) >= MAX_CACHED_TOKENS:
                self._verified.clear()
            self._verified[token] = (principal, claims, kid)
        return principal

    def _verify_uncached(self, token: str) -> tuple[Principal, Mapping[str, Any], str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError(_INVALID) from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.issuer.algorithms or not isinstance(kid, str) or not kid:
            raise UnauthenticatedError(_INVALID)
        published = self._keys.key(kid)
        if published is None or not published.fits(algorithm):
            raise UnauthenticatedError(_INVALID)
        try:
            claims = jwt.decode(
                token,
                published.jwk.key,
                algorithms=[algorithm],
                audience=self.issuer.audience,
                issuer=self.issuer.issuer,
                options={
                    "require": ["iss", "aud", "exp", "iat"],
                    # Times are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise UnauthenticatedError(_INVALID) from exc
        check_times(claims, self._clock, self._leeway)
        return self._principal(claims), claims, kid

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        issuer = self.issuer
        principal = claim_at(claims, issuer.principal_claim)
        tenant = issuer.tenant or claim_at(claims, issuer.tenant_claim or "")
        roles = claim_at(claims, issuer.roles_claim)
        if isinstance(roles, str):
            roles = roles.split()
        roles = [] if roles is None else roles
        if not (valid_name(principal) and valid_name(tenant) and isinstance(roles, list)):
            raise UnauthenticatedError(_INVALID)
        if not all(valid_name(r) for r in roles) or CUSTOMER_ROLE in roles or len(roles) > 32:
            raise UnauthenticatedError(_INVALID)
        attributes = {}
        for name, path in issuer.attribute_claims.items():
            value = claim_at(claims, path)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if value is not None:
                attributes[name] = value
        if not valid_attributes(attributes):
            raise UnauthenticatedError(_INVALID)
        return Principal(
            id=str(principal),
            tenant=str(tenant),
            roles=frozenset(roles),
            attributes=MappingProxyType(attributes),
        )


class IssuerVerifiers:
    """Routes a bearer token to the verifier of the issuer it names; refuses the rest."""

    def __init__(
        self, static: TokenVerifier | None, static_issuer: str, trusted: list[JwksVerifier]
    ) -> None:
        self._by_issuer: dict[str, BearerVerifier] = {v.issuer.issuer: v for v in trusted}
        if static is not None:
            self._by_issuer.setdefault(static_issuer, static)

    def __repr__(self) -> str:
        return f"IssuerVerifiers(issuers={sorted(self._by_issuer)})"

    def verify(self, token: str, *, certificate: str | None = None) -> Principal:
        try:
            # Only to choose the verifier: nothing here is trusted before it verifies.
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise UnauthenticatedError(_INVALID) from exc
        issuer = unverified.get("iss")
        verifier = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if verifier is None:
            raise UnauthenticatedError(_INVALID)
        return verifier.verify(token, certificate=certificate)


def trusted_issuer(entry: TrustedIssuerSettings) -> TrustedIssuer:
    """The `TrustedIssuer` a `token_issuers` entry of the settings describes."""
    return TrustedIssuer(
        issuer=entry.issuer,
        jwks=JwksPolicy(
            entry.jwks_url,
            cache_seconds=entry.jwks_cache_seconds,
            min_refetch_seconds=entry.jwks_min_refetch_seconds,
            timeout_seconds=entry.jwks_timeout_seconds,
        ),
        audience=entry.audience,
        algorithms=tuple(entry.algorithms),
        tenant=entry.tenant,
        tenant_claim=entry.tenant_claim,
        principal_claim=entry.principal_claim,
        roles_claim=entry.roles_claim,
        attribute_claims=MappingProxyType(dict(entry.attribute_claims)),
    )
