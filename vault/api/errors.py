"""The one table from domain errors to gRPC statuses, with rich details.

Callers get a fixed, PII-free message; `INVALID_ARGUMENT` carries every field violation
as google.rpc.BadRequest, `PERMISSION_DENIED` a google.rpc.ErrorInfo with the reason.
Anything unexpected becomes `INTERNAL` with the request id only; the server logs the
exception's type and location, never its message (driver errors can quote values).
"""

from __future__ import annotations

import logging
import traceback

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from vault import errors

log = logging.getLogger(__name__)

_DOMAIN = "customervault.v1"

_TABLE: tuple[tuple[type[errors.VaultError], grpc.StatusCode], ...] = (
    (errors.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.VersionConflictError, grpc.StatusCode.ABORTED),
    (errors.FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DecryptionError, grpc.StatusCode.DATA_LOSS),
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


def rich_status(exc: BaseException, request_id: str) -> status_pb2.Status:
    """The google.rpc.Status sent to the caller for `exc`."""
    code = status_code_for(exc)
    details = []
    if isinstance(exc, errors.InvalidArgumentError):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in exc.violations
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
