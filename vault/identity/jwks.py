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
import time
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
        # The fetch under way, if any: set when it ends, and until when callers wait.
        self._running: tuple[threading.Event, float] | None = None

    def __repr__(self) -> str:
        return f"<JwksKeys url={self._policy.url!r} kids={sorted(self._keys)}>"

    def key(self, kid: str) -> PublishedKey | None:
        """The key `kid` names, after a refetch when the set is stale or lacks it
        (rate-limited); None when the issuer does not publish it.

        The fetch runs on a thread of its own, one at a time: a caller waits for it at
        most `timeout_seconds` from the fetch's start (a provider that answers a byte
        at a time would otherwise hold every caller of this issuer for as long as it
        likes, since the HTTP timeout bounds each read, not the whole answer). A fetch
        not done by then counts as failed: the set in hand is used."""
        with self._lock:
            now = self._clock.now().timestamp()
            stale = self._fetched_at is None or now - self._fetched_at >= self._policy.cache_seconds
            wanted = stale or kid not in self._keys
            if wanted and self._running is None and self._may_fetch(now):
                self._start_fetch(now)
            running = self._running if wanted else None
        if running is not None:
            done, deadline = running
            done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if self._fetched_at is None:
                return None  # never fetched: nothing is trusted
            return self._keys.get(kid)

    def _start_fetch(self, now: float) -> None:
        self._attempted_at = now
        done = threading.Event()
        self._running = (done, time.monotonic() + self._policy.timeout_seconds)
        worker = threading.Thread(
            target=self._fetch, args=(now, done), name="jwks-fetch", daemon=True
        )
        worker.start()

    def _may_fetch(self, now: float) -> bool:
        last = self._attempted_at
        return last is None or now - last >= self._policy.min_refetch_seconds

    def _fetch(self, now: float, done: threading.Event) -> None:
        try:
            keys = self._download()
            if keys is not None:
                with self._lock:
                    self._keys = keys
                    self._fetched_at = now
        finally:
            with self._lock:
                self._running = None
            done.set()

    def _download(self) -> dict[str, PublishedKey] | None:
        """The issuer's current usable keys; None when the fetch failed."""
        try:
            data = self._client.fetch_data()
        except (jwt.PyJWKClientError, ValueError) as exc:
            # Unreachable, or not a JSON object: the set in hand is kept. The URL is
            # configuration, not a secret; the exception's text (it may quote the
            # response) is left out.
            log.warning("JWKS fetch from %s failed (%s)", self._policy.url, type(exc).__name__)
            return None
        # A JSON object from the issuer is its current set: the usable keys in it, if
        # any, replace the old ones (an issuer withdrawing every key is obeyed).
        entries = data.get("keys") if isinstance(data, dict) else None
        try:
            published = PyJWKSet.from_dict(data).keys if entries else []
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError, TypeError):
            published = []
        declared = {k.get("kid"): k.get("alg") for k in entries or [] if isinstance(k, dict)}
        return {k.key_id: PublishedKey(k, declared.get(k.key_id)) for k in published if k.key_id}
