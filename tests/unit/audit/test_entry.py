"""Audit entries: validation, canonical bytes, parsing back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.entry import AuditEntry, format_time, parse_time
from audit.errors import InvalidEntryError

WHEN = datetime(2025, 3, 4, 5, 6, 7, 890, tzinfo=UTC)


def _entry(**changes: object) -> AuditEntry:
    fields: dict[str, object] = {
        "time": WHEN,
        "actor": "svc-support",
        "actor_roles": ("agent", "tier2"),
        "tenant": "acme",
        "action": "customervault.v1.Vault/GetSubject",
        "subject_ids": ("sub_1", "sub_2"),
        "field_names": ("email",),
        "purpose": "support",
        "justification": "ticket 123",
        "decision": "allow",
        "reason": "p, support, read",
        "result_code": "OK",
        "request_id": "req-1",
        "extra": {"view": "support", "count": "2"},
    }
    fields.update(changes)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def test_canonical_bytes_are_compact_sorted_json_with_a_version() -> None:
    data = _entry().canonical_bytes()
    document = json.loads(data)
    assert document["v"] == 1
    assert document["time"] == "2025-03-04T05:06:07.000890Z"
    assert list(document) == sorted(document)
    assert b" " not in data.replace(b"ticket 123", b"").replace(b"p, support, read", b"")
    assert json.dumps(document, sort_keys=True, separators=(",", ":")).encode() == data


def test_canonical_bytes_are_deterministic_across_equivalent_inputs() -> None:
    eastern = timezone(timedelta(hours=-5))
    a = _entry(extra={"a": "1", "b": "2"}, subject_ids=["sub_1", "sub_2"])
    b = _entry(extra={"b": "2", "a": "1"}, time=WHEN.astimezone(eastern))
    assert a == b
    assert a.canonical_bytes() == b.canonical_bytes()
    assert b.time.tzinfo is UTC


def test_round_trip_through_canonical_bytes_and_dict() -> None:
    entry = _entry(justification="Zoë's ticket ✓")
    assert AuditEntry.from_canonical(entry.canonical_bytes()) == entry
    assert AuditEntry.from_dict(entry.to_dict()) == entry


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"v":2}',
        b"\xff",
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidEntryError):
        AuditEntry.from_canonical(data)


def test_non_canonical_spellings_are_refused() -> None:
    document = json.loads(_entry().canonical_bytes())
    spaced = json.dumps(document, sort_keys=True).encode()
    with pytest.raises(InvalidEntryError):
        AuditEntry.from_canonical(spaced)
    document["unknown"] = "x"
    with pytest.raises(InvalidEntryError):
        AuditEntry.from_canonical(
            json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        )


@pytest.mark.parametrize(
    "changes",
    [
        {"time": datetime(2025, 1, 1)},
        {"decision": "maybe"},
        {"action": ""},
        {"tenant": 7},
        {"subject_ids": "sub_1"},
        {"subject_ids": ("x" * 300,)},
        {"justification": "secret-value " * 400},
        {"extra": {"k": 1}},
        {"extra": {str(i): "v" for i in range(100)}},
        {"purpose": "\ud800"},
    ],
)
def test_invalid_entries_are_refused_without_echoing_values(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidEntryError) as caught:
        _entry(**changes).canonical_bytes()
    assert "secret-value" not in str(caught.value)
    assert "xxxxxxxx" not in str(caught.value)


def test_an_unauthenticated_call_is_recorded_without_actor_or_tenant() -> None:
    entry = _entry(actor="", tenant="", actor_roles=(), decision="deny")
    assert AuditEntry.from_canonical(entry.canonical_bytes()) == entry


def test_entries_are_immutable() -> None:
    entry = _entry()
    with pytest.raises(AttributeError):
        entry.actor = "someone else"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.extra["view"] = "other"  # type: ignore[index]


def test_time_format_round_trip_and_strictness() -> None:
    assert parse_time(format_time(WHEN)) == WHEN
    for bad in (
        "2025-03-04T05:06:07Z",
        "2025-03-04 05:06:07.000890Z",
        "2025-03-04T05:06:07.000890+00:00",
    ):
        with pytest.raises(InvalidEntryError):
            parse_time(bad)
