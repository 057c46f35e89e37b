"""The audit package's error hierarchy.

Messages are fixed, caller-safe strings: they name fields, positions and sizes, never the
contents of an entry.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error the audit package raises on purpose."""


class InvalidEntryError(AuditError, ValueError):
    """An audit entry (or its canonical bytes) breaks the entry rules."""


class ProofError(AuditError):
    """A Merkle proof does not verify, or cannot be built for the sizes asked."""


class CheckpointError(AuditError):
    """A checkpoint note is malformed or its signature does not verify."""


class KeyFormatError(AuditError, ValueError):
    """A signing or verifier key cannot be loaded."""


class AuditUnavailableError(AuditError):
    """The audit entry could not be committed; the caller must fail closed."""


class VerifyError(AuditError):
    """The stored log is not intact, or a proof cannot be built from it.

    `position` is the first leaf position found bad, when there is one.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class PageTokenError(AuditError, ValueError):
    """A page token is malformed or was issued for a different query."""


class TreeConflictError(AuditError):
    """The stored tree is not one the integrator may extend: it is not consistent with the
    last checkpoint this integrator signed (kept outside the database), or a pending
    entry's MAC or leaf hash is wrong. The integrator refuses until restarted."""
