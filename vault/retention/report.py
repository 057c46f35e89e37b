"""What a retention run did (or, dry, would do): counts by outcome, holds, k-anonymity.

Counts and subject ids only; a report never holds a personal data value, so it can be
logged, stored in `retention_runs` and printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum

K_THRESHOLD = 5
"""Groups of anonymized records smaller than this are reported (k-anonymity)."""
MAX_LISTED_HOLDS = 100


class Outcome(StrEnum):
    """What happened to a subject in a run."""

    NOTIFIED = "notified"
    ANONYMIZED = "anonymized"
    CANCELLED = "cancelled"
    HELD = "held"


@dataclass(frozen=True)
class KAnonymity:
    """k-anonymity of the retained generalized attributes.

    A group is the set of anonymized records of one tenant sharing the same combination
    of every generalized attribute (the quasi-identifiers). The records are k-anonymous
    for k = `min_group_size`; groups below `k` could single a person out.
    """

    k: int = K_THRESHOLD
    records: int = 0
    groups: int = 0
    min_group_size: int = 0
    groups_below_k: int = 0
    records_below_k: int = 0

    @classmethod
    def from_group_sizes(cls, sizes: Iterable[int], k: int = K_THRESHOLD) -> KAnonymity:
        records = groups = below = records_below = 0
        smallest: int | None = None
        for size in sizes:
            records += size
            groups += 1
            smallest = size if smallest is None else min(smallest, size)
            if size < k:
                below += 1
                records_below += size
        return cls(k, records, groups, smallest or 0, below, records_below)


@dataclass
class TenantReport:
    """One tenant's part of a run: what was done to its subjects, and the k-anonymity of
    its anonymized records when the run ended (stored with the run, per tenant, so a
    tenant's console sees its own past runs and nobody else's)."""

    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    k_anonymity: KAnonymity = field(default_factory=KAnonymity)

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> TenantReport:
        counts = doc.get("counts")
        k = doc.get("k_anonymity")
        return cls(
            {str(n): int(v) for n, v in counts.items()} if isinstance(counts, dict) else {},
            KAnonymity(**{str(n): int(v) for n, v in k.items()})
            if isinstance(k, dict)
            else KAnonymity(),
        )


@dataclass
class RetentionReport:
    """One run's report; a dry run's counts say what a run would do now."""

    run_id: str
    started_at: datetime
    dry_run: bool = False
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    # Anonymized although the generalized attributes could not be read (no usable key).
    without_attributes: int = 0
    held_subjects: list[str] = field(default_factory=list)
    k_anonymity: KAnonymity = field(default_factory=KAnonymity)
    # Per tenant (real runs only): its counts and k-anonymity.
    tenants: dict[str, TenantReport] = field(default_factory=dict)
    skipped: str = ""
    interrupted: bool = False

    def add(self, outcome: Outcome, count: int = 1, tenant: str | None = None) -> None:
        self.counts[outcome.value] += count
        if tenant is not None:
            self.tenant(tenant).counts[outcome.value] += count

    def tenant(self, name: str) -> TenantReport:
        return self.tenants.setdefault(name, TenantReport())

    def count(self, outcome: Outcome) -> int:
        return self.counts[outcome.value]

    def note_held(self, subject_ids: Iterable[str]) -> None:
        room = MAX_LISTED_HOLDS - len(self.held_subjects)
        self.held_subjects.extend(list(subject_ids)[: max(room, 0)])

    @property
    def duration_seconds(self) -> float:
        if self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, object]:
        doc = asdict(self)
        doc["started_at"] = self.started_at.isoformat()
        doc["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        doc["duration_seconds"] = round(self.duration_seconds, 3)
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def summary(self) -> str:
        """One log line."""
        if self.skipped:
            return f"retention run {self.run_id} skipped: {self.skipped}"
        counts = " ".join(f"{name}={n}" for name, n in self.counts.items())
        k = self.k_anonymity
        return (
            f"retention run {self.run_id}{' (dry run)' if self.dry_run else ''}: {counts} "
            f"in {self.duration_seconds:.1f}s; k-anonymity min group {k.min_group_size}, "
            f"{k.groups_below_k} of {k.groups} groups below k={k.k}"
            f"{'; interrupted' if self.interrupted else ''}"
        )
