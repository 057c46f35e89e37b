"""Exports: JSONL, CSV and the self-contained HTML report."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

from audit.entry import AuditEntry
from audit.export import CSV_COLUMNS, write_csv, write_html, write_jsonl
from audit.query import LoggedEntry

WHEN = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert(\"x\")</script> & 'quotes'"


def _entries() -> list[AuditEntry | LoggedEntry]:
    plain = AuditEntry(
        time=WHEN,
        actor="agent-7",
        tenant="acme",
        action="GetSubject",
        decision="deny",
        subject_ids=("sub_1", "sub_2"),
        justification=HOSTILE,
        reason="no consent",
        result_code="PERMISSION_DENIED",
        extra={"note": HOSTILE},
    )
    logged = LoggedEntry(
        id=12,
        leaf_index=3,
        entry=AuditEntry(
            time=WHEN, actor="=cmd|' /C calc'!A0", tenant="acme", action="Export", decision="allow"
        ),
    )
    return [plain, logged]


def test_jsonl_round_trips() -> None:
    out = io.StringIO()
    assert write_jsonl(_entries(), out) == 2
    lines = out.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[1]["id"] == 12
    assert records[1]["leaf_index"] == 3
    for record, original in zip(records, _entries(), strict=True):
        entry = original.entry if isinstance(original, LoggedEntry) else original
        del record["id"], record["leaf_index"], record["mac"]
        assert AuditEntry.from_dict(record) == entry


def test_csv_has_a_header_and_neutralizes_formulas() -> None:
    out = io.StringIO()
    assert write_csv(_entries(), out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert json.loads(rows[0]["subject_ids"]) == ["sub_1", "sub_2"]
    assert rows[0]["justification"] == HOSTILE
    assert rows[0]["id"] == ""
    assert rows[1]["actor"].startswith("'=")


def test_html_escapes_every_value_and_loads_nothing() -> None:
    out = io.StringIO()
    assert write_html(_entries(), out, title="Access <report>", generated_at=WHEN) == 2
    page = out.getvalue()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert "Access &lt;report&gt;" in page
    assert "default-src 'none'" in page
    assert not re.search(r"(src|href)\s*=", page, re.IGNORECASE)
    assert "@import" not in page
    assert "url(" not in page
    assert page.count("<tr>") == 3  # header and two entries
