"""The domain's error hierarchy.

Domain code raises these and never imports grpc; `vault.api.errors` maps each class to
a gRPC status exactly once. Messages are fixed, caller-safe strings: they must never
contain a PII value, a key, SQL or a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class VaultError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path and why (never the value itself)."""

    field: str
    description: str


class InvalidArgumentError(VaultError):
    """Bad input; carries every violation found, so a caller can fix them all at once."""

    def __init__(
        self, violations: Iterable[FieldViolation], message: str = "invalid request"
    ) -> None:
        super().__init__(message)
        self.violations: tuple[FieldViolation, ...] = tuple(violations)


class UnauthenticatedError(VaultError):
    """No credentials, or credentials that do not verify."""


class PermissionDeniedError(VaultError):
    """Policy refused the request. `reason` names the rule or cause, never the data."""

    def __init__(self, reason: str, rule: str = "") -> None:
        super().__init__(f"permission denied: {reason}")
        self.reason = reason
        self.rule = rule


class NotFoundError(VaultError):
    """The thing does not exist (or belongs to another tenant: indistinguishable)."""


class VersionConflictError(VaultError):
    """Optimistic concurrency: the expected version is not the current one. `subject_id`,
    `expected` and `current` say which check failed (google.rpc.PreconditionFailure);
    `expected` is None when the caller stated no version (a concurrent change)."""

    def __init__(
        self,
        message: str,
        *,
        subject_id: str = "",
        expected: int | None = None,
        current: int | None = None,
    ) -> None:
        super().__init__(message)
        self.subject_id = subject_id
        self.expected = expected
        self.current = current


class AlreadyExistsError(VaultError):
    """What the request would create exists already. `reason` (UPPER_SNAKE) tells a
    client program which case it is (google.rpc.ErrorInfo)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition (google.rpc.PreconditionFailure): a `type` such as
    ``VERIFICATION``, the `subject` it is about (an id, never a value) and why."""

    type: str
    subject: str
    description: str


class FailedPreconditionError(VaultError):
    """The subject's state forbids the operation (erased, anonymized, restricted), or a
    request is not in a state that allows it; `violations` say which precondition."""

    def __init__(self, message: str, violations: Iterable[PreconditionViolation] = ()) -> None:
        super().__init__(message)
        self.violations: tuple[PreconditionViolation, ...] = tuple(violations)


DEFAULT_RETRY_AFTER = 1.0
"""Seconds a caller should wait before retrying an UNAVAILABLE call (google.rpc.RetryInfo)."""


class UnavailableError(VaultError):
    """A dependency (database, audit log, key provider) cannot be reached or written.
    The call may be retried after `retry_after` seconds (google.rpc.RetryInfo)."""

    def __init__(self, message: str, *, retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ResourceExhaustedError(VaultError):
    """A limit was hit (disk full, quota). `retry_after`: seconds until the caller's
    budget allows the call again, when that is known (a rate limit)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DecryptionError(VaultError):
    """One opaque error for every failure to unseal: never says which check failed."""

    def __init__(self) -> None:
        super().__init__("decryption failed")
