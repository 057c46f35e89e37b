"""Per-principal rate limits (token buckets) for calls that can be abused in bulk.

A search confirms or denies a guessed value, and an erasure destroys data for good:
each principal gets a budget of so many per minute, with a burst allowance. The buckets
live in this process (a replica enforces its own budget; docs/security.md says so),
are keyed by tenant and principal id, and are bounded in number.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from vault.clock import Clock
from vault.context import CallContext
from vault.errors import ResourceExhaustedError
from vault.principal import Principal

MAX_BUCKETS = 100_000
"""Beyond this many principals the buckets are dropped and start full again (rare)."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`per_minute` calls per principal on average, at most `burst` at once.

    `per_minute` of 0 switches the limit off (documented as such in the settings).
    """

    def __init__(self, name: str, per_minute: int, burst: int, clock: Clock) -> None:
        if per_minute < 0 or burst < 1:
            raise ValueError("a rate limit needs per_minute >= 0 and burst >= 1")
        self.name = name
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, principal: Principal) -> bool:
        """Spend one call of `principal`'s budget; False when it is used up."""
        return self.wait(principal) == 0.0

    def wait(self, principal: Principal) -> float:
        """Spend one call of `principal`'s budget (0.0), or, when it is used up, the
        seconds until it allows one again (nothing spent)."""
        if self.per_minute == 0:
            return 0.0
        now = self._clock.now().timestamp()
        key = (principal.tenant, principal.id)
        rate = self.per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * rate)
            bucket.updated = max(bucket.updated, now)  # a clock stepping back gains nothing
            if bucket.tokens < 1.0:
                return (1.0 - bucket.tokens) / rate
            bucket.tokens -= 1.0
            return 0.0

    def charge(self, call: CallContext, principal: Principal) -> None:
        """`take`, or refuse the call: RESOURCE_EXHAUSTED, recorded as denied on the call
        (the audit interceptor writes its entry)."""
        wait = self.wait(principal)
        if wait > 0.0:
            call.deny(f"rate-limit:{self.name}")
            raise ResourceExhaustedError(
                f"{self.name} budget used up: {self.per_minute} per minute per principal",
                retry_after=wait,
            )
