"""The per-principal token buckets behind the search and erasure budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vault.context import CallContext
from vault.errors import ResourceExhaustedError
from vault.principal import Principal
from vault.records.limits import RateLimiter


class _Clock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


ANA = Principal("ana", "acme", frozenset({"support_agent"}))
ANA_ELSEWHERE = Principal("ana", "globex", frozenset({"support_agent"}))
BEN = Principal("ben", "acme", frozenset({"support_agent"}))


def test_a_burst_then_the_rate_per_principal_and_tenant() -> None:
    clock = _Clock()
    limit = RateLimiter("search", per_minute=6, burst=3, clock=clock)
    assert [limit.take(ANA) for _ in range(4)] == [True, True, True, False]
    assert limit.take(BEN) and limit.take(ANA_ELSEWHERE)  # budgets of their own
    clock.moment += timedelta(seconds=9)
    assert not limit.take(ANA)  # 6 a minute: one call every 10 s
    clock.moment += timedelta(seconds=1)
    assert limit.take(ANA) and not limit.take(ANA)
    clock.moment += timedelta(hours=1)  # refills only up to the burst
    assert [limit.take(ANA) for _ in range(4)] == [True, True, True, False]
    clock.moment -= timedelta(minutes=5)  # a clock stepping back refills nothing
    assert not limit.take(ANA)


def test_zero_switches_the_limit_off() -> None:
    limit = RateLimiter("erasure", per_minute=0, burst=1, clock=_Clock())
    assert all(limit.take(ANA) for _ in range(1000))


def test_a_refusal_is_recorded_on_the_call() -> None:
    limit = RateLimiter("erasure", per_minute=1, burst=1, clock=_Clock())
    call = CallContext(method="/customervault.v1.VaultService/EraseSubject", request_id="r")
    limit.charge(call, ANA)
    with pytest.raises(ResourceExhaustedError, match="1 per minute per principal"):
        limit.charge(call, ANA)
    assert (call.decision, call.reason) == ("deny", "rate-limit:erasure")


@pytest.mark.parametrize(("per_minute", "burst"), [(-1, 1), (1, 0)])
def test_nonsense_limits_are_refused(per_minute: int, burst: int) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter("search", per_minute=per_minute, burst=burst, clock=_Clock())
