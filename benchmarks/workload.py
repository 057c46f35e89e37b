"""The records every benchmark uses, and the timing and statistics helpers.

Records are synthetic but valid against `policies/data_dictionary.yaml`: ten fields per
subject (names, email, phone, date of birth, postal code, country, national id, loyalty
tier, notes), deterministic for a seed so every section and every peer sees the same data.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

GIVEN = (
    "Jane", "John", "Maria", "Wei", "Aisha", "Lukas", "Sofia", "Kenji", "Olga", "Mateo",
    "Priya", "Noah", "Emma", "Omar", "Chloe", "Ivan", "Hana", "Diego", "Zoe", "Amir",
)  # fmt: skip
FAMILY = (
    "Doe", "Smith", "Garcia", "Chen", "Okafor", "Muller", "Rossi", "Tanaka", "Ivanova",
    "Lopez", "Patel", "Brown", "Martin", "Haddad", "Dubois", "Petrov", "Kim", "Silva",
    "O'Neil", "van der Berg",
)  # fmt: skip
AREA_CODES = ("212", "415", "617", "312", "206", "303", "512", "646", "718", "202")
COUNTRIES = ("US", "DE", "FR", "JP", "GB", "BR", "IN", "CA", "ES", "IT")
TIERS = ("bronze", "silver", "gold", "platinum")
NOTES = (
    "Called about a late delivery; refund issued.",
    "Prefers email contact. Asked to update the billing address.",
    "VIP customer since 2019; handle complaints with priority.",
    "Requested a copy of their data under GDPR article 15.",
)
FIELD_NAMES = (
    "given_name", "family_name", "email", "phone", "date_of_birth", "postal_code",
    "country", "national_id", "loyalty_tier", "notes",
)  # fmt: skip
_LETTERS = "abcdefghij"


def record(n: int, rng: random.Random) -> dict[str, str]:
    """Subject number `n`: ten fields, already in normalized form (email unique per n)."""
    tag = "".join(_LETTERS[int(c)] for c in str(n))
    return {
        "given_name": rng.choice(GIVEN),
        "family_name": f"{rng.choice(FAMILY)}-{tag.capitalize()}",
        "email": f"user.{n}@example.com",
        "phone": f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
        "date_of_birth": f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d}",
        "postal_code": f"{rng.randint(10000, 99999)}",
        "country": rng.choice(COUNTRIES),
        "national_id": f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "loyalty_tier": rng.choice(TIERS),
        "notes": rng.choice(NOTES),
    }


def records(count: int, *, start: int = 0, seed: int = 8) -> list[dict[str, str]]:
    """`count` records numbered from `start` (the same numbers give the same records)."""
    rng = random.Random(seed * 1_000_003 + start)
    return [record(n, rng) for n in range(start, start + count)]


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Rate:
    """A throughput measured over several repetitions: the median and the spread."""

    median: float
    low: float
    high: float
    repetitions: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": round(self.median, 1),
            "min": round(self.low, 1),
            "max": round(self.high, 1),
            "repetitions": self.repetitions,
        }


def rate_of(samples: Sequence[float]) -> Rate:
    """Median, min and max of per-repetition rates (operations per second)."""
    return Rate(statistics.median(samples), min(samples), max(samples), len(samples))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; `values` need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def repeat_rate(
    repetitions: int, operations: int, run: Callable[[int], None], *, warmup: bool = True
) -> Rate:
    """Call `run(rep)` `repetitions` times; each does `operations` operations."""
    if warmup:
        run(-1)
    samples = []
    for rep in range(repetitions):
        started = time.perf_counter()
        run(rep)
        samples.append(operations / (time.perf_counter() - started))
    return rate_of(samples)
