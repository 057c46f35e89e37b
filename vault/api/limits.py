"""What one caller may take of the server: request sizes, map sizes, open streams and
how long a call may wait on its caller.

Every limit comes from `Settings` (docs/operations.md, "Limits"). The stream counts are
kept on the server's event loop only, so they need no lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

from vault.errors import FieldViolation, ResourceExhaustedError, VaultError
from vault.principal import Principal


class CallTimeoutError(VaultError):
    """The caller kept the call waiting too long (a request that did not come, a stream
    it did not read), or the stream reached its maximum age: DEADLINE_EXCEEDED."""


class CallCancelledError(VaultError):
    """The caller went away before the call did anything: CANCELLED."""


@dataclass(frozen=True)
class CallLimits:
    """The limits `VaultInterceptor` enforces; see `Settings` for each default."""

    max_request_bytes: int = 1024 * 1024
    request_bytes_by_method: Mapping[str, int] = field(default_factory=dict)
    max_map_entries: int = 256
    max_violations: int = 50
    max_calls_per_principal: int = 64
    max_streams: int = 64
    max_streams_per_principal: int = 4
    max_public_streams: int = 16
    max_public_calls: int = 16
    max_public_request_bytes: int = 4096
    public_request_timeout_seconds: float = 2.0
    idle_timeout_seconds: float = 30.0
    max_age_seconds: float = 3600.0

    def request_bytes(self, method: str) -> int:
        return self.request_bytes_by_method.get(method, self.max_request_bytes)

    @property
    def largest_request_bytes(self) -> int:
        """The server-wide receive limit: the largest any method allows."""
        return max([self.max_request_bytes, *self.request_bytes_by_method.values()])


class StreamSlots:
    """Counts open streams, all together, per principal and unauthenticated; and each
    principal's calls in flight (a call counts until its transport has ended it, so
    calls cut while their caller stalls cannot pile up)."""

    def __init__(self, limits: CallLimits) -> None:
        self._limits = limits
        self._open = 0
        self._public = 0
        self._by_principal: Counter[tuple[str, str]] = Counter()
        self._calls: Counter[tuple[str, str]] = Counter()
        self._public_calls = 0

    def take_public_call(self) -> ResourceExhaustedError | None:
        """A slot for an unauthenticated unary call (a health check) while it runs:
        its request is read before anyone is known, so only so many at once."""
        if self._public_calls >= self._limits.max_public_calls:
            return ResourceExhaustedError("too many unauthenticated calls; retry later")
        self._public_calls += 1
        return None

    def give_back_public_call(self) -> None:
        self._public_calls -= 1

    def take_call(self, principal: Principal) -> ResourceExhaustedError | None:
        key = (principal.tenant, principal.id)
        if self._calls[key] >= self._limits.max_calls_per_principal:
            return ResourceExhaustedError(
                f"at most {self._limits.max_calls_per_principal} calls in flight per caller"
            )
        self._calls[key] += 1
        return None

    def give_back_call(self, principal: Principal) -> None:
        key = (principal.tenant, principal.id)
        self._calls[key] -= 1
        if self._calls[key] <= 0:
            del self._calls[key]

    def take(self, principal: Principal | None) -> ResourceExhaustedError | None:
        """Take a slot for a stream of `principal` (None: unauthenticated), or say why not."""
        limits = self._limits
        if self._open >= limits.max_streams:
            return ResourceExhaustedError("too many open streams on this server; retry later")
        if principal is None:
            if self._public >= limits.max_public_streams:
                return ResourceExhaustedError(
                    "too many unauthenticated streams on this server; retry later"
                )
            self._public += 1
        else:
            key = (principal.tenant, principal.id)
            if self._by_principal[key] >= limits.max_streams_per_principal:
                return ResourceExhaustedError(
                    f"at most {limits.max_streams_per_principal} open streams per caller; "
                    "close one first"
                )
            self._by_principal[key] += 1
        self._open += 1
        return None

    def give_back(self, principal: Principal | None) -> None:
        self._open -= 1
        if principal is None:
            self._public -= 1
            return
        key = (principal.tenant, principal.id)
        self._by_principal[key] -= 1
        if self._by_principal[key] <= 0:
            del self._by_principal[key]

    @property
    def open(self) -> int:
        return self._open


def oversized_maps(message: Message, limit: int, path: str = "", depth: int = 0) -> list[str]:
    """Paths of the maps in `message` (nested messages too) with more than `limit`
    entries. Sizes are read from the parsed message without building Python objects."""
    found: list[str] = []
    if depth > 8:
        return found
    for descriptor, value in message.ListFields():
        where = f"{path}{descriptor.name}"
        entry = descriptor.message_type
        if entry is None:
            continue
        if entry.GetOptions().map_entry:
            if len(value) > limit:
                found.append(where)
            if entry.fields_by_name["value"].message_type is not None:
                for key in value:
                    found += oversized_maps(value[key], limit, f"{where}.", depth + 1)
        elif descriptor.is_repeated:
            for index, item in enumerate(value):
                found += oversized_maps(item, limit, f"{where}[{index}].", depth + 1)
        else:
            found += oversized_maps(value, limit, f"{where}.", depth + 1)
    return found


def map_violations(message: Message, limit: int) -> list[FieldViolation]:
    return [
        FieldViolation(where, f"more than {limit} entries")
        for where in oversized_maps(message, limit)
    ]
