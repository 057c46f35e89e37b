"""What a subject is, as the domain sees it (decrypted values never outlive a request)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SubjectState(StrEnum):
    """Lifecycle of a subject (DESIGN §1)."""

    ACTIVE = "active"
    RESTRICTED = "restricted"
    PENDING_ANONYMIZATION = "pending_anonymization"
    ANONYMIZED = "anonymized"
    ERASED = "erased"

    @property
    def is_terminal(self) -> bool:
        """Erased and anonymized subjects have no personal data left to read or change."""
        return self in (SubjectState.ANONYMIZED, SubjectState.ERASED)


@dataclass(frozen=True)
class SubjectMeta:
    """Everything about a subject that is not personal data."""

    id: str
    tenant: str
    version: int
    state: SubjectState
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    legal_hold: bool


@dataclass(frozen=True)
class StoredField:
    """One sealed field as stored, with its provenance (who wrote it, when)."""

    sealed: bytes
    written_by: str
    written_at: int  # microseconds since the epoch
    # The subject version the value was written in, bound into the sealed value; None
    # for a value sealed in format 1, before versions were bound.
    version: int | None = None


@dataclass(frozen=True)
class FieldValue:
    """One decrypted field with its provenance."""

    value: str
    written_by: str
    written_at: datetime


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item of a batch: a subject id, or the error that stopped it."""

    index: int
    subject_id: str = ""
    error: Exception | None = None
