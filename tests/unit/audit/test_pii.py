"""Audit entries never carry personal data: the model refuses what looks like it, and
exports hold nothing but an entry's own fields, escaped for their format."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from audit import AuditEntry, InvalidEntryError, LoggedEntry, is_opaque_id
from audit.export import CSV_COLUMNS, write_csv, write_html, write_jsonl

WHEN = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
# Values a careless caller might put where an identifier belongs.
PII_LIKE = [
    "alice@example.com",  # e-mail address
    "+14155550123",  # E.164 phone number
    "4155550123",  # national phone number
    "4111111111111111",  # card number
    "4111-1111-1111-1111",
    "123-45-6789",  # US SSN
    "Alice Smith",  # a name (space)
    "Zoë O'Brien",
    "1 Infinite Loop, Cupertino",
    "",
]


def _entry(**changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "time": WHEN,
        "actor": "agent-7",
        "actor_roles": ("support_agent",),
        "tenant": "acme",
        "action": "GetSubject",
        "decision": "allow",
        "subject_ids": ("sub_2x7kq4m9vd3p8wz5hnc6jt1ra0",),
        "field_names": ("email", "phone"),
        "purpose": "support",
        "justification": "ticket 4711",
        "reason": "p, support_agent, *, subjects:read, view:support",
        "policy_version": "sha256:5d41402a",
        "consent_version": "v3",
        "result_code": "OK",
        "request_id": "req_0f8a2b",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "caller_address": "ipv4:10.0.0.7:51234",
        "extra": {"view": "support"},
    }
    fields.update(changes)
    return AuditEntry(**fields)


@pytest.mark.parametrize("value", PII_LIKE)
def test_subject_ids_must_be_opaque_ids(value: str) -> None:
    assert not is_opaque_id(value)
    with pytest.raises(InvalidEntryError) as caught:
        _entry(subject_ids=("sub_ok1", value))
    assert "subject_ids" in str(caught.value)
    if value:
        assert value not in str(caught.value)


@pytest.mark.parametrize(
    "value", ["sub_2x7kq4m9vd3p8wz5hnc6jt1ra0", "sub-1", "9f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"]
)
def test_opaque_ids_pass(value: str) -> None:
    assert is_opaque_id(value)
    assert _entry(subject_ids=(value,)).subject_ids == (value,)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("field_names", ("email", "alice@example.com")),
        ("field_names", ("Email Address",)),
        ("field_names", ("email=alice",)),
        ("actor_roles", ("support agent",)),
        ("purpose", "call alice at 555-0100"),
        ("purpose", "Support"),
        ("tenant", "Acme Corp"),
        ("action", "GetSubject alice@example.com"),
        ("result_code", "denied: alice@example.com"),
        ("request_id", "req 1"),
        ("trace_id", 'a"b'),
        ("caller_address", "alice's laptop"),
        ("actor", 'agent "7"'),
        ("actor", "agent\n7"),
        ("reason", "line one\nline two"),
        ("extra", {"email": "alice@example.com\n"}),
        ("extra", {"Customer Email": "x"}),
        ("justification", "ticket \x00 4711"),
    ],
)
def test_fields_refuse_values_outside_their_shape(name: str, value: object) -> None:
    with pytest.raises(InvalidEntryError) as caught:
        _entry(**{name: value})
    message = str(caught.value)
    assert name.split("_", maxsplit=1)[0] in message
    assert "alice" not in message


def test_a_dotted_lower_case_field_name_is_a_name() -> None:
    assert _entry(field_names=("address.postal_code",)).field_names == ("address.postal_code",)


def _records() -> list[AuditEntry | LoggedEntry]:
    hostile = '<img src=x onerror=alert(1)> & "quotes" \'single\' =HYPERLINK("http://x")'
    plain = _entry(justification=hostile, reason=hostile, extra={"note": hostile})
    logged = LoggedEntry(id=7, leaf_index=3, entry=_entry(actor="=cmd|' /C calc'!A0"))
    return [plain, logged]


EXPECTED_KEYS = {spec.name for spec in dataclasses.fields(AuditEntry)} | {"id", "leaf_index", "mac"}


def test_jsonl_holds_exactly_the_entry_fields() -> None:
    out = io.StringIO()
    write_jsonl(_records(), out)
    for line, original in zip(out.getvalue().splitlines(), _records(), strict=True):
        record = json.loads(line)
        assert set(record) == EXPECTED_KEYS
        entry = original.entry if isinstance(original, LoggedEntry) else original
        assert AuditEntry.from_dict({k: v for k, v in record.items() if k in entry.to_dict()}) == (
            entry
        )


def test_csv_holds_exactly_the_entry_fields_and_defuses_formulas() -> None:
    out = io.StringIO()
    write_csv(_records(), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert set(CSV_COLUMNS) == EXPECTED_KEYS - {"mac"}  # the MAC is for JSONL journals
    assert [set(row) for row in rows] == [EXPECTED_KEYS - {"mac"}] * 2
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    assert rows[1]["actor"] == "'=cmd|' /C calc'!A0"


def test_html_escapes_every_value_and_adds_nothing() -> None:
    out = io.StringIO()
    write_html(_records(), out, title="Report <for> 'regulator'", summary={"Subject <x>": "sub_&1"})
    page = out.getvalue()
    assert "<img" not in page
    assert "onerror=alert(1)>" not in page
    assert html.escape("<img src=x onerror=alert(1)>") in page
    assert "Report &lt;for&gt; &#x27;regulator&#x27;" in page
    assert "<dt>Subject &lt;x&gt;</dt><dd>sub_&amp;1</dd>" in page
    # Self-contained: only the report's own tags, no resource loads, no scripts.
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "p"} | {
        "dl",
        "dt",
        "dd",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
    assert parser.attributes <= {"lang", "charset", "http-equiv", "content", "name", "class"}
    assert "url(" not in page
    assert "@import" not in page


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _value in attrs)
