"""Typed errors built from the vault's google.rpc.Status details.

The vault answers a refused call with a gRPC status whose trailing metadata carries a
serialized `google.rpc.Status` (`grpc-status-details-bin`): `BadRequest` field
violations, an `ErrorInfo` reason, `RetryInfo`, `PreconditionFailure`, `RequestInfo`.
`VaultClientError.from_rpc_error` decodes it (no grpcio-status needed) into one exception
per status code, each holding those details as plain attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"

_DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.RequestInfo,
    error_details_pb2.ResourceInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
    error_details_pb2.DebugInfo,
)


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition (`google.rpc.PreconditionFailure.Violation`)."""

    type: str
    subject: str
    description: str


class VaultClientError(Exception):
    """A call the vault refused (or that never reached it).

    `code` is the gRPC status code's name (`"NOT_FOUND"`), `message` its text; the rest
    come from the status details and are empty when the vault sent none.
    """

    def __init__(
        self,
        code: str,
        message: str,
        violations: list[tuple[str, str]] | None = None,
        *,
        reason: str = "",
        domain: str = "",
        error_metadata: dict[str, str] | None = None,
        retry_delay: float | None = None,
        preconditions: list[PreconditionViolation] | None = None,
        request_id: str = "",
        details: list[Message] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.violations = violations or []
        """`BadRequest` field violations as (field, description) pairs."""
        self.reason = reason
        """`ErrorInfo.reason`: a stable UPPER_SNAKE_CASE cause to branch on."""
        self.domain = domain
        self.error_metadata = error_metadata or {}
        self.retry_delay = retry_delay
        """`RetryInfo.retry_delay` in seconds: wait at least this long before retrying."""
        self.preconditions = preconditions or []
        self.request_id = request_id
        """`RequestInfo.request_id`: quote it to the vault's operators (it is in their logs)."""
        self.details = details or []
        """Every decoded detail message, for the kinds not named above."""

    @staticmethod
    def from_rpc_error(exc: grpc.RpcError) -> VaultClientError:
        """The typed error for a failed call (`exc` is also a `grpc.Call`)."""
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        message = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
        trailers = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
        fields = _decode(trailers or ())
        kind = _BY_CODE.get(code, VaultClientError)
        return kind(code.name, message, **fields)


def _decode(trailers: Any) -> dict[str, Any]:
    raw = next((value for key, value in trailers if key == STATUS_DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return {}
    status = status_pb2.Status()
    try:
        status.ParseFromString(raw)
    except DecodeError:
        return {}
    details: list[Message] = []
    for packed in status.details:
        for kind in _DETAIL_TYPES:
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                details.append(detail)
    fields: dict[str, Any] = {"details": details, "violations": []}
    for detail in details:
        if isinstance(detail, error_details_pb2.BadRequest):
            fields["violations"] += [(v.field, v.description) for v in detail.field_violations]
        elif isinstance(detail, error_details_pb2.ErrorInfo):
            fields.update(
                reason=detail.reason, domain=detail.domain, error_metadata=dict(detail.metadata)
            )
        elif isinstance(detail, error_details_pb2.RetryInfo):
            fields["retry_delay"] = detail.retry_delay.ToTimedelta().total_seconds()
        elif isinstance(detail, error_details_pb2.PreconditionFailure):
            fields["preconditions"] = [
                PreconditionViolation(v.type, v.subject, v.description) for v in detail.violations
            ]
        elif isinstance(detail, error_details_pb2.RequestInfo):
            fields["request_id"] = detail.request_id
    return fields


class InvalidArgument(VaultClientError):
    """INVALID_ARGUMENT: the request is wrong; `violations` names the fields."""


class NotFound(VaultClientError):
    """NOT_FOUND (also what the vault answers for another tenant's subject)."""


class AlreadyExists(VaultClientError):
    """ALREADY_EXISTS."""


class PermissionDenied(VaultClientError):
    """PERMISSION_DENIED: the policy refused (audited); `reason` says which rule kind."""


class Unauthenticated(VaultClientError):
    """UNAUTHENTICATED: no token, or one the vault does not trust (expired, wrong issuer)."""


class FailedPrecondition(VaultClientError):
    """FAILED_PRECONDITION: e.g. a version conflict; `preconditions` says which."""


class Aborted(VaultClientError):
    """ABORTED: a concurrent change won; read again and retry."""


class ResourceExhausted(VaultClientError):
    """RESOURCE_EXHAUSTED: a budget or limit; `retry_delay` says when to try again."""


class Unavailable(VaultClientError):
    """UNAVAILABLE: the vault could not serve now (idempotent calls were already retried)."""


class DeadlineExceeded(VaultClientError):
    """DEADLINE_EXCEEDED: the call's deadline passed (pass a longer `timeout`)."""


class Internal(VaultClientError):
    """INTERNAL: quote `request_id` to the vault's operators."""


_BY_CODE: dict[grpc.StatusCode, type[VaultClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: Internal,
}
