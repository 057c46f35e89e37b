"""The one table from domain errors to gRPC statuses, with rich details.

Callers get a fixed, PII-free message; `INVALID_ARGUMENT` carries every field violation
as google.rpc.BadRequest, `PERMISSION_DENIED` a google.rpc.ErrorInfo with the reason,
`ALREADY_EXISTS` an ErrorInfo with its reason, `ABORTED` (a version conflict) a
google.rpc.PreconditionFailure naming the subject and the versions, `UNAVAILABLE` (and
a rate limit's `RESOURCE_EXHAUSTED`) a google.rpc.RetryInfo with the delay to wait, also
sent as the `grpc-retry-pushback-ms` trailer gRPC's own retry policy honours. Every
error status carries a google.rpc.RequestInfo with the server's request id.
Anything unexpected becomes `INTERNAL` with the request id only; the server logs the
exception's type and location, never its message (driver errors can quote values).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from vault import errors
from vault.api.limits import CallCancelledError, CallTimeoutError

log = logging.getLogger(__name__)

_DOMAIN = "customervault.v1"

MAX_VIOLATIONS = 50
"""Field violations listed in one error by default (`Settings.max_error_violations`)."""
_BAD_REQUEST_BYTES = 4096
"""At most this much BadRequest in a status: the status travels base64-encoded in a
trailer, and gRPC clients refuse metadata over 8 KiB by default (16 KiB hard)."""

_TABLE: tuple[tuple[type[errors.VaultError], grpc.StatusCode], ...] = (
    (errors.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.VersionConflictError, grpc.StatusCode.ABORTED),
    (errors.FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DecryptionError, grpc.StatusCode.DATA_LOSS),
    (CallTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (CallCancelledError, grpc.StatusCode.CANCELLED),
)


def status_code_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC code an exception maps to."""
    for kind, code in _TABLE:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def bad_request(
    violations: Sequence[errors.FieldViolation], limit: int = MAX_VIOLATIONS
) -> error_details_pb2.BadRequest:
    """The first violations (at most `limit`, and at most 4 KiB of them); when some are
    left out, a last entry on `request` counts them, so the status always fits a trailer."""
    listed = error_details_pb2.BadRequest()
    size = 0
    for v in violations[:limit]:
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=v.field[:200], description=v.description[:200]
        )
        size += entry.ByteSize() + 3
        if size > _BAD_REQUEST_BYTES:
            break
        listed.field_violations.append(entry)
    rest = len(violations) - len(listed.field_violations)
    if rest:
        listed.field_violations.add(
            field="request", description=f"{rest} more violations not listed"
        )
    return listed


def rich_status(
    exc: BaseException, request_id: str, max_violations: int = MAX_VIOLATIONS
) -> status_pb2.Status:
    """The google.rpc.Status sent to the caller for `exc`."""
    code = status_code_for(exc)
    details = []
    if isinstance(exc, errors.InvalidArgumentError):
        details.append(_pack(bad_request(exc.violations, max_violations)))
    if isinstance(exc, errors.FailedPreconditionError) and exc.violations:
        details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=v.type, subject=v.subject[:200], description=v.description[:200]
                        )
                        for v in exc.violations[:max_violations]
                    ]
                )
            )
        )
    if isinstance(exc, errors.PermissionDeniedError):
        details.append(
            _pack(
                error_details_pb2.ErrorInfo(
                    reason="POLICY_DENIED", domain=_DOMAIN, metadata={"rule": exc.rule}
                )
            )
        )
    if isinstance(exc, errors.AlreadyExistsError):
        details.append(_pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=_DOMAIN)))
    if isinstance(exc, errors.VersionConflictError):
        details.append(_pack(precondition_failure(exc)))
    delay = _retry_after(exc)
    if delay is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.CopyFrom(_duration(delay))
        details.append(_pack(retry))
    if isinstance(exc, errors.VaultError) and code is not grpc.StatusCode.INTERNAL:
        message = exc.message
    else:
        message = f"internal error (request id {request_id})"
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        log.error(
            "unexpected %s at %s request_id=%s",
            type(exc).__name__,
            ", ".join(f"{f.filename}:{f.lineno}" for f in where) or "?",
            request_id,
        )
    if request_id:
        details.append(_pack(error_details_pb2.RequestInfo(request_id=request_id)))
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)


VERSION_MISMATCH = "SUBJECT_VERSION"
"""PreconditionFailure violation type of an optimistic-concurrency conflict."""
RETRY_PUSHBACK = "grpc-retry-pushback-ms"
"""The trailer gRPC's retry policy reads: wait this many milliseconds (gRFC A6)."""


def precondition_failure(exc: errors.VersionConflictError) -> error_details_pb2.PreconditionFailure:
    """Which version check failed: the subject, what the caller expected, what it is."""
    if exc.expected is None:
        description = "the subject changed while the call ran; retry"
    elif exc.current is None:
        description = f"expected version {exc.expected}; the subject changed: re-read it"
    else:
        description = (
            f"expected version {exc.expected}, the subject is at {exc.current}: re-read it"
        )
    violation = error_details_pb2.PreconditionFailure.Violation(
        type=VERSION_MISMATCH, subject=exc.subject_id, description=description
    )
    return error_details_pb2.PreconditionFailure(violations=[violation])


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, errors.UnavailableError | errors.ResourceExhaustedError):
        return exc.retry_after
    return None


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def call_status(status: status_pb2.Status) -> grpc.Status:
    """The status to end a call with: the rich status in its trailer and, when it says
    when to retry, that delay as the retry-pushback trailer too."""
    plain = rpc_status.to_status(status)
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            millis = retry.retry_delay.seconds * 1000 + retry.retry_delay.nanos // 1_000_000
            pushback = ((RETRY_PUSHBACK, str(max(1, millis))),)
            return plain._replace(trailing_metadata=(*plain.trailing_metadata, *pushback))
    return plain
