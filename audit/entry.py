"""The audit entry and its canonical byte form.

An entry records one access decision or one change. It holds identifiers, names and
codes only: never a personal data value. `audit.entry_rules` enforces that where a
rule can (field names are names, subject ids are opaque ids, and so on).

The canonical form is compact UTF-8 JSON with sorted keys, every field present, a
version marker `v`, and the time as RFC 3339 in UTC with microseconds and `Z`. It is
what the Merkle leaf hash covers, so it must never change for a given version: a new
layout gets a new `v`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Literal

from audit.entry_rules import LIST_RULES, SCALAR_RULES, checked_tuple, frozen_extra
from audit.errors import InvalidEntryError

FORMAT_VERSION: Final = 1
ALLOW: Final = "allow"
DENY: Final = "deny"
Decision = Literal["allow", "deny"]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and `Z`, as used in the canonical form."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # An f-string is several times faster than strftime, and entries are hashed often.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`; raises `InvalidEntryError` for any other shape."""
    try:
        parsed = datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidEntryError("entry time is not RFC 3339 UTC with microseconds") from None
    if format_time(parsed) != text:
        raise InvalidEntryError("entry time is not in canonical form")
    return parsed


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One audit record: who did what to which subjects, why, and what was decided.

    Only `time`, `action` and `decision` must be set: an unauthenticated call has no
    actor or tenant yet, and its denial is recorded all the same. Every field is checked
    against the rules in the module docstring; sequences are normalized to tuples and
    `extra` to a read-only mapping; `time` must be timezone-aware and is stored in UTC.
    Raises `InvalidEntryError` naming the offending field (never its value).
    """

    time: datetime
    actor: str
    tenant: str
    action: str
    decision: Decision
    actor_roles: tuple[str, ...] = ()
    subject_ids: tuple[str, ...] = ()
    field_names: tuple[str, ...] = ()
    purpose: str = ""
    justification: str = ""
    reason: str = ""
    policy_version: str = ""
    consent_version: str = ""
    result_code: str = ""
    request_id: str = ""
    trace_id: str = ""
    caller_address: str = ""
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise InvalidEntryError("entry time must be a timezone-aware datetime")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        if self.decision not in (ALLOW, DENY):
            raise InvalidEntryError("entry decision must be 'allow' or 'deny'")
        for name, check in SCALAR_RULES.items():
            check(name, getattr(self, name))
        if not self.action:
            raise InvalidEntryError("entry action must not be empty")
        for name, check in LIST_RULES.items():
            object.__setattr__(self, name, checked_tuple(name, getattr(self, name), check))
        object.__setattr__(self, "extra", frozen_extra(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (the canonical form without `v`)."""
        return {
            "time": format_time(self.time),
            "actor": self.actor,
            "actor_roles": list(self.actor_roles),
            "tenant": self.tenant,
            "action": self.action,
            "subject_ids": list(self.subject_ids),
            "field_names": list(self.field_names),
            "purpose": self.purpose,
            "justification": self.justification,
            "decision": self.decision,
            "reason": self.reason,
            "policy_version": self.policy_version,
            "consent_version": self.consent_version,
            "result_code": self.result_code,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "caller_address": self.caller_address,
            "extra": dict(self.extra),
        }

    def canonical_bytes(self) -> bytes:
        """The deterministic serialization the Merkle leaf hash is computed over."""
        # Keys written in sorted order (and `extra` sorted on construction), so the
        # encoder need not sort: the same bytes as sort_keys=True, in less time.
        return _dump(
            {
                "action": self.action,
                "actor": self.actor,
                "actor_roles": self.actor_roles,
                "caller_address": self.caller_address,
                "consent_version": self.consent_version,
                "decision": self.decision,
                "extra": dict(self.extra),
                "field_names": self.field_names,
                "justification": self.justification,
                "policy_version": self.policy_version,
                "purpose": self.purpose,
                "reason": self.reason,
                "request_id": self.request_id,
                "result_code": self.result_code,
                "subject_ids": self.subject_ids,
                "tenant": self.tenant,
                "time": format_time(self.time),
                "trace_id": self.trace_id,
                "v": FORMAT_VERSION,
            }
        )

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> AuditEntry:
        """Build an entry from `to_dict` output (strict: no missing or unknown keys)."""
        expected = {spec.name for spec in fields(cls)}
        if set(document) != expected:
            raise InvalidEntryError("entry document has missing or unknown keys")
        values = dict(document)
        if not isinstance(values["time"], str):
            raise InvalidEntryError("entry time must be a string")
        values["time"] = parse_time(values["time"])
        for name in LIST_RULES:
            if not isinstance(values[name], list):
                raise InvalidEntryError(f"entry {name} must be a list")
        if not isinstance(values["extra"], dict):
            raise InvalidEntryError("entry extra must be an object")
        return cls(**values)

    @classmethod
    def from_canonical(cls, data: bytes) -> AuditEntry:
        """Parse canonical bytes; refuses anything that is not exactly canonical."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidEntryError("entry bytes are not UTF-8 JSON") from None
        if not isinstance(document, dict) or document.pop("v", None) != FORMAT_VERSION:
            raise InvalidEntryError("entry bytes have an unknown format version")
        entry = cls.from_dict(document)
        if entry.canonical_bytes() != data:
            raise InvalidEntryError("entry bytes are not in canonical form")
        return entry


def _dump(document: Mapping[str, Any]) -> bytes:
    text = _ENCODER.encode(document)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Only lone surrogates get here; they have no UTF-8 form.
        raise InvalidEntryError("entry text is not valid Unicode") from None
