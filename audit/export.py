"""Exports of audit entries: JSON Lines, CSV, and a self-contained HTML report.

Every exporter streams to a text file object and returns the number of entries written.
Each record holds the entry's own fields plus its database id and leaf index, nothing
else. The HTML report is one file a compliance officer can attach to an answer to a
regulator or a data subject: inline CSS only, no scripts, no external resources, every
value HTML-escaped, and a Content-Security-Policy that forbids scripts if one slipped in.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TextIO

from audit.entry import AuditEntry, format_time
from audit.query import LoggedEntry

Exportable = AuditEntry | LoggedEntry

CSV_COLUMNS = (
    "id",
    "leaf_index",
    "time",
    "actor",
    "actor_roles",
    "tenant",
    "action",
    "subject_ids",
    "field_names",
    "purpose",
    "justification",
    "decision",
    "reason",
    "policy_version",
    "consent_version",
    "result_code",
    "request_id",
    "trace_id",
    "caller_address",
    "extra",
)
# Spreadsheets run cells that start like a formula; a leading quote keeps them text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _records(entries: Iterable[Exportable]) -> Iterator[dict[str, Any]]:
    for item in entries:
        if isinstance(item, LoggedEntry):
            yield {"id": item.id, "leaf_index": item.leaf_index, **item.entry.to_dict()}
        else:
            yield {"id": None, "leaf_index": None, **item.to_dict()}


def write_jsonl(entries: Iterable[Exportable], out: TextIO) -> int:
    """One JSON object per line, with `id` and `leaf_index` when known, and the entry's
    MAC (`mac`, hex, null for an entry without one): with them an exported journal can be
    checked against a witnessed checkpoint (`audit erasures`)."""
    count = 0
    for item in entries:
        (record,) = _records([item])
        mac = item.mac if isinstance(item, LoggedEntry) else None
        record["mac"] = None if mac is None else mac.hex()
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def write_csv(entries: Iterable[Exportable], out: TextIO) -> int:
    """CSV with a header row; list and map fields as JSON; formula-like cells quoted."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in _records(entries):
        writer.writerow([_csv_cell(record[column]) for column in CSV_COLUMNS])
        count += 1
    return count


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1b1b}
h1{font-size:1.4em;margin:0 0 .2em}
p.meta{color:#555;margin:0 0 1.2em}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
tr:nth-child(even) td{background:#fafafa}
td.deny{color:#a00;font-weight:600}
td.allow{color:#060}
td.list{max-width:24em;word-break:break-all}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:0 0 1.2em}
dt{font-weight:600}
dd{margin:0;word-break:break-all}
"""

_HTML_COLUMNS = (
    ("Leaf", "leaf_index"),
    ("Time (UTC)", "time"),
    ("Actor", "actor"),
    ("Roles", "actor_roles"),
    ("Tenant", "tenant"),
    ("Action", "action"),
    ("Subjects", "subject_ids"),
    ("Fields", "field_names"),
    ("Purpose", "purpose"),
    ("Justification", "justification"),
    ("Decision", "decision"),
    ("Rule or reason", "reason"),
    ("Policy", "policy_version"),
    ("Consent", "consent_version"),
    ("Result", "result_code"),
    ("Request", "request_id"),
    ("Trace", "trace_id"),
    ("Caller", "caller_address"),
    ("Details", "extra"),
)


def write_html(
    entries: Iterable[Exportable],
    out: TextIO,
    *,
    title: str,
    generated_at: datetime | None = None,
    summary: Mapping[str, str] | None = None,
) -> int:
    """A standalone HTML report (a table of entries) titled `title`.

    `summary` is shown above the table as label/value pairs: what the report covers
    (the subject, the period, the filters) and the checkpoint its entries verify under.
    """
    esc = html.escape
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n"
    )
    if generated_at is not None:
        out.write(f'<p class="meta">Generated {esc(format_time(generated_at))}</p>\n')
    if summary:
        rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in summary.items())
        out.write(f"<dl>{rows}</dl>\n")
    header = "".join(f"<th>{esc(label)}</th>" for label, _ in _HTML_COLUMNS)
    out.write(f"<table><thead><tr>{header}</tr></thead><tbody>\n")
    count = 0
    for record in _records(entries):
        out.write("<tr>" + "".join(_html_cell(key, record[key]) for _, key in _HTML_COLUMNS))
        out.write("</tr>\n")
        count += 1
    out.write(f'</tbody></table>\n<p class="meta">{count} entries</p>\n</body></html>\n')
    return count


def _html_cell(key: str, value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, list):
        return f'<td class="list">{html.escape(", ".join(value))}</td>'
    if isinstance(value, dict):
        text = "; ".join(f"{name}={item}" for name, item in value.items())
        return f"<td>{html.escape(text)}</td>"
    css = f' class="{value}"' if key == "decision" and value in ("allow", "deny") else ""
    return f"<td{css}>{html.escape(str(value))}</td>"
