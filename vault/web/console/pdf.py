"""A subject's access-history report as a PDF (fpdf2, pure Python, built-in fonts).

The same content as the printable HTML report: summary, verification verdict, the
entries in plain language and the signed checkpoint note. Built-in PDF fonts cover
Latin-1 only; any other character (a justification may hold any text) is replaced.
"""

from __future__ import annotations

from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos


def _latin1(text: str) -> str:
    replacements = {
        "\u2026": "...",
        "\u201c": '"',
        "\u201d": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u2014": "-",
        "\u2013": "-",
        "\u2714": "OK",
        "\u2718": "X",
    }
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text.encode("latin-1", "replace").decode("latin-1")


class _Report(FPDF):
    subject_id = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(90, 90, 90)
        self.cell(
            0,
            8,
            _latin1(f"Access history of {self.subject_id} - page {self.page_no()}/{{nb}}"),
            align="C",
        )


def report_pdf(data: dict[str, Any]) -> bytes:
    pdf = _Report(format="A4")
    pdf.subject_id = data["subject_id"]
    pdf.set_title(_latin1(f"Access history of {data['subject_id']}"))
    pdf.set_creator("Customer Vault compliance console")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    width = pdf.epw

    def line(
        text: str, size: float = 10, style: str = "", height: float = 5.5, red: bool = False
    ) -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.set_text_color(160, 30, 25) if red else pdf.set_text_color(20, 20, 20)
        pdf.multi_cell(width, height, _latin1(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    line(f"Access history of subject {data['subject_id']}", 16, "B", 8)
    line(f"Generated {data['generated']} by {data['generated_by']} from the vault's audit log.", 9)
    pdf.ln(2)
    s = data["summary"]
    line(
        f"{s['total']} entries: {s['allowed']} allowed, {s['denied']} denied; "
        f"{len(s['readers'])} people or systems saw data; exports: {s['exports']}; "
        f"changes: {s['changes']}.",
        11,
        "B",
    )
    if s["total"]:
        line(f"From {s['first']} to {s['last']}.")
    if s["readers"]:
        line("Seen by " + ", ".join(s["readers"]) + ".")
    pdf.ln(2)
    verify = data["verify"]
    if verify is None:
        line(data["verify_note"], 10, "B")
    elif verify.ok:
        line(f"The whole log verified: {verify.entries_checked} entries checked.", 10, "B")
    else:
        line(
            f"The log FAILED verification: first bad position {verify.first_bad_index}: "
            f"{verify.problem}",
            10,
            "B",
        )
    line(
        f"{data['proven']} of {len(data['rows'])} entries proved included in the signed "
        f"checkpoint; {data['broken']} mismatched; {data['newer']} newer than it; "
        f"{data['unproven']} older ones not proved one by one (covered by the whole-log "
        "verification)."
    )
    if data["signed"] is not None:
        line(data["signed"].summary)
    pdf.ln(3)
    line("Entries, oldest first", 12, "B", 7)
    for r in data["rows"]:
        verdict = data["included"].get(r["index"])
        proof = "included" if verdict and verdict.ok else ("MISMATCH" if verdict else "pending")
        index = "-" if r["index"] is None else str(r["index"])
        denied = r["decision"] == "deny"
        label = "DENIED" if denied else "allowed"
        line(f"#{index}  {r['time']} UTC  [{label}, {proof}]", 8.5, "B", 4.5, red=denied)
        text = r["sentence"] + (f' ("{r["justification"]}")' if r["justification"] else "")
        line(text, 9, "", 4.8)
        pdf.ln(1)
    if data["checkpoint"] is not None:
        pdf.ln(2)
        line("Signed checkpoint", 12, "B", 7)
        line(
            "The log's state this report was checked against. Its signature line starts "
            "with an em dash (U+2014), printed here as '-': restore it before checking the "
            "note with `customer-vault audit verify --checkpoint FILE`.",
            9,
        )
        pdf.set_font("Courier", size=8)
        pdf.multi_cell(
            width,
            4,
            _latin1(data["checkpoint"].note),
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    return bytes(pdf.output())
