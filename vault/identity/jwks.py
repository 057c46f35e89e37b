"""An issuer's signing keys, fetched from its JWKS URL with PyJWT's `PyJWKClient`.

Keys rotate without a restart: the key set is kept for `cache_seconds` (by the injected
clock), and a token naming a key id (`kid`) the set does not hold makes one refetch,
at most once every `min_refetch_seconds`, so a stream of made-up key ids cannot turn
the vault into a client hammering the identity provider. A key the provider removed
is refused once the set is fetched again (at the latest `cache_seconds` later). If a
fetch fails, the set in hand is kept (and the failure logged, without any token); with
no set at all every token of that issuer is refused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from vault.clock import Clock

log = logging.getLogger(__name__)

# Which JWK key type each accepted algorithm needs: a token's `alg` must fit the key it
# names, so an RSA or EC public key is never used with another family (or as an HMAC
# secret: HS* and "none" are never accepted at all).
KEY_TYPE_OF = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
ASYMMETRIC_ALGORITHMS = frozenset(KEY_TYPE_OF)


@dataclass(frozen=True)
class JwksPolicy:
    """How an issuer's key set is fetched and kept."""

    url: str
    cache_seconds: float = 300.0
    min_refetch_seconds: float = 30.0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class PublishedKey:
    """One signing key of the set, and the `alg` its JWK states (None if it states none)."""

    jwk: PyJWK
    declared_alg: str | None

    def fits(self, algorithm: str) -> bool:
        """Whether a token signed with `algorithm` may be checked with this key: an
        accepted asymmetric algorithm, of the key's type, and the JWK's own `alg` if any."""
        wanted = KEY_TYPE_OF.get(algorithm)
        if wanted is None or self.jwk.key_type != wanted:
            return False
        return self.declared_alg in (None, algorithm)


class JwksKeys:
    """The signing keys of one issuer, by key id; thread-safe."""

    def __init__(self, policy: JwksPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        # PyJWT fetches; its caches are off, the clock-driven one below is ours.
        self._client = PyJWKClient(
            policy.url, cache_keys=False, cache_jwk_set=False, timeout=policy.timeout_seconds
        )
        self._keys: dict[str, PublishedKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<JwksKeys url={self._policy.url!r} kids={sorted(self._keys)}>"

    def key(self, kid: str) -> PublishedKey | None:
        """The key `kid` names, after a refetch when the set is stale or lacks it
        (rate-limited); None when the issuer does not publish it."""
        with self._lock:
            now = self._clock.now().timestamp()
            stale = self._fetched_at is None or now - self._fetched_at >= self._policy.cache_seconds
            if stale and self._may_fetch(now):
                self._fetch(now)
            found = self._keys.get(kid)
            if found is None and self._may_fetch(now):
                self._fetch(now)
                found = self._keys.get(kid)
            if self._fetched_at is None:
                return None  # never fetched: nothing is trusted
            return found

    def _may_fetch(self, now: float) -> bool:
        last = self._attempted_at
        return last is None or now - last >= self._policy.min_refetch_seconds

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        try:
            data = self._client.fetch_data()
        except (jwt.PyJWKClientError, ValueError) as exc:
            # Unreachable, or not a JSON object: the set in hand is kept. The URL is
            # configuration, not a secret; the exception's text (it may quote the
            # response) is left out.
            log.warning("JWKS fetch from %s failed (%s)", self._policy.url, type(exc).__name__)
            return
        # A JSON object from the issuer is its current set: the usable keys in it, if
        # any, replace the old ones (an issuer withdrawing every key is obeyed).
        entries = data.get("keys") if isinstance(data, dict) else None
        try:
            published = PyJWKSet.from_dict(data).keys if entries else []
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError, TypeError):
            published = []
        declared = {k.get("kid"): k.get("alg") for k in entries or [] if isinstance(k, dict)}
        self._keys = {
            k.key_id: PublishedKey(k, declared.get(k.key_id)) for k in published if k.key_id
        }
        self._fetched_at = now
