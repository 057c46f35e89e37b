"""What one caller may take of the server: request sizes, map sizes, open streams and
how long a call may wait on its caller.

Every limit comes from `Settings` (docs/operations.md, "Limits"). The stream counts are
kept on the server's event loop only, so they need no lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.descriptor import Descriptor

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
    max_request_map_entries: int = 200_000
    max_large_requests: int = 2
    # Methods whose one step is CPU-bound work on many items (BatchCreateSubjects): at
    # most `max_bulk_calls` of them run at once in a process, the rest queue without
    # holding a thread. Several at once share one core (the GIL) and spend the
    # difference handing it back and forth: four at once cost 1.2-2.1x the CPU per
    # subject of one at a time, for no more subjects/s (docs/performance.md).
    # Each principal has at most `max_bulk_calls_per_principal` of them in flight,
    # running or waiting, so no caller can queue everyone else's batches far behind its
    # own; more are refused before their request is read.
    bulk_methods: frozenset[str] = frozenset()
    max_bulk_calls: int = 1
    max_bulk_calls_per_principal: int = 4
    # How long a call waits for its turn at either gate (a bulk call, a large request)
    # before it is refused UNAVAILABLE: a caller that set no deadline holds its request,
    # read and kept, no longer than this.
    max_queue_seconds: float = 120.0
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
    # How long a read served on the loop waits for its audit entry to be committed
    # before it fails closed (`Settings.audit_timeout_seconds`).
    audit_timeout_seconds: float = 10.0

    def request_bytes(self, method: str) -> int:
        return self.request_bytes_by_method.get(method, self.max_request_bytes)

    @property
    def largest_request_bytes(self) -> int:
        """The server-wide receive limit: the largest any method allows."""
        return max([self.max_request_bytes, *self.request_bytes_by_method.values()])


def _take(
    counts: Counter[tuple[str, str]], principal: Principal, most: int, why: str
) -> ResourceExhaustedError | None:
    """One more of `principal`'s in `counts`, unless it has `most` already (then why not)."""
    key = (principal.tenant, principal.id)
    if counts[key] >= most:
        return ResourceExhaustedError(why)
    counts[key] += 1
    return None


def _give_back(counts: Counter[tuple[str, str]], principal: Principal) -> None:
    key = (principal.tenant, principal.id)
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


class StreamSlots:
    """Counts open streams, all together, per principal and unauthenticated; each
    principal's calls in flight (a call counts until its transport has ended it, so
    calls cut while their caller stalls cannot pile up), and its bulk calls."""

    def __init__(self, limits: CallLimits) -> None:
        self._limits = limits
        self._open = 0
        self._public = 0
        self._by_principal: Counter[tuple[str, str]] = Counter()
        self._calls: Counter[tuple[str, str]] = Counter()
        self._bulk: Counter[tuple[str, str]] = Counter()
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
        most = self._limits.max_calls_per_principal
        return _take(self._calls, principal, most, f"at most {most} calls in flight per caller")

    def give_back_call(self, principal: Principal) -> None:
        _give_back(self._calls, principal)

    def take_bulk(self, principal: Principal) -> ResourceExhaustedError | None:
        """A slot for one of `principal`'s bulk calls (`CallLimits.bulk_methods`), running
        or waiting its turn, or why not."""
        most = self._limits.max_bulk_calls_per_principal
        why = f"at most {most} batch calls in flight per caller; wait for one to finish"
        return _take(self._bulk, principal, most, why)

    def give_back_bulk(self, principal: Principal) -> None:
        _give_back(self._bulk, principal)

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
            most = limits.max_streams_per_principal
            why = f"at most {most} open streams per caller; close one first"
            if (refusal := _take(self._by_principal, principal, most, why)) is not None:
                return refusal
        self._open += 1
        return None

    def give_back(self, principal: Principal | None) -> None:
        self._open -= 1
        if principal is None:
            self._public -= 1
            return
        _give_back(self._by_principal, principal)

    @property
    def open(self) -> int:
        """Streams open."""
        return self._open

    @property
    def calls(self) -> int:
        """Calls of authenticated principals in flight."""
        return sum(self._calls.values())


class _Tally:
    """Map entries counted so far in one request."""

    def __init__(self, per_map: int, total: int) -> None:
        self.per_map = per_map
        self.total = total
        self.seen = 0


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise MalformedWireError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


_FIXED = {1: 8, 5: 4}


_HAS_MAPS: dict[str, bool] = {}


def _has_maps(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message of this type can hold a map, at any depth."""
    known = _HAS_MAPS.get(descriptor.full_name)
    if known is not None:
        return known
    if descriptor.full_name in seen:
        return False
    found = any(
        fd.message_type is not None
        and (
            fd.message_type.GetOptions().map_entry
            or _has_maps(fd.message_type, seen | {descriptor.full_name})
        )
        for fd in descriptor.fields
    )
    if not seen:
        _HAS_MAPS[descriptor.full_name] = found
    return found


class MalformedWireError(ValueError):
    """The request's bytes are not wire format this walk can read (a group, a truncated
    varint or field): refused before parsing, never handed to the parser, which would
    accept a group as an unknown field and skip the map count."""


_SKIP, _MAP, _NESTED = 0, 1, 2
_Kind = tuple[int, str, bool, Descriptor | None]
_KINDS: dict[tuple[Descriptor, int], _Kind] = {}


def _kind(descriptor: Descriptor, number: int) -> _Kind:
    """What the walk does with field `number` (skip it, count it as a map entry or walk
    into it), the field's name, whether it repeats and its message type: worked out once
    per message type and field."""
    key = (descriptor, number)
    known = _KINDS.get(key)
    if known is None:
        fd = descriptor.fields_by_number.get(number)
        entry = fd.message_type if fd is not None else None
        if fd is None or entry is None:
            known = (_SKIP, "", False, None)
        elif entry.GetOptions().map_entry:
            known = (_MAP, fd.name, fd.is_repeated, entry)
        else:
            known = (_NESTED if _has_maps(entry) else _SKIP, fd.name, fd.is_repeated, entry)
        _KINDS[key] = known
    return known


def _walk(data: memoryview, descriptor: Descriptor, tally: _Tally, path: str) -> str | None:
    """The first map (by path) over the per-map limit, "request" when all maps together
    are over the total, or None. Walks the wire format without parsing: cheap, and it
    stops at the first excess. Bytes it cannot read raise `MalformedWireError`."""
    counts: dict[int, int] = {}
    at = 0
    end = len(data)
    while at < end:
        # One-byte varints (every tag and length below 128) are read inline: the walk
        # runs over every item and map entry of a batch.
        key = data[at]
        if key < 0x80:
            at += 1
        else:
            key, at = _varint(data, at)
        if key & 7 != 2:
            at = _past_scalar(data, at, key & 7)
            continue
        if at < end and data[at] < 0x80:
            size, at = data[at], at + 1
        else:
            size, at = _varint(data, at)
        start, at = at, at + size
        kind = _kind(descriptor, key >> 3)
        if kind[0] != _SKIP:
            index = counts.get(key, 0)
            counts[key] = index + 1
            found = _counted(data[start:at], kind, index, tally, path)
            if found is not None:
                return found
    if at > end:
        raise MalformedWireError("truncated field")
    return None


def _past_scalar(data: memoryview, at: int, wire: int) -> int:
    """Where a field of wire type `wire` (not length-delimited) that starts at `at` ends."""
    if wire == 0:
        return _varint(data, at)[1]
    if wire in _FIXED:
        return at + _FIXED[wire]
    # Groups (3, 4) and the reserved types: no proto3 message of ours has them.
    raise MalformedWireError("unsupported wire type")


def _counted(body: memoryview, kind: _Kind, index: int, tally: _Tally, path: str) -> str | None:
    """The `index`-th occurrence of a field: a map entry counted, or a message that can
    hold maps walked; the first excess."""
    what, name, repeated, entry = kind
    if what == _MAP:
        tally.seen += 1
        if index + 1 > tally.per_map:
            return f"{path}{name}"
        return "request" if tally.seen > tally.total else None
    assert entry is not None  # a message type: only those are walked into
    where = f"{path}{name}[{index}]." if repeated else f"{path}{name}."
    return _walk(body, entry, tally, where)


def map_violations(
    data: bytes, descriptor: Descriptor, per_map: int, total: int
) -> list[FieldViolation]:
    """A violation if any map in the serialized request has more than `per_map`
    entries, or all maps together more than `total`: found before the request is
    parsed (a parsed map entry costs over 100 bytes of memory, on the wire 2).

    Raises `MalformedWireError` for bytes the walk cannot read: the caller refuses the
    request as malformed rather than parse what was not counted."""
    found = _walk(memoryview(data), descriptor, _Tally(per_map, total), "")
    if found is None:
        return []
    if found == "request":
        return [FieldViolation("request", f"more than {total} map entries in all")]
    return [FieldViolation(found, f"more than {per_map} entries")]
