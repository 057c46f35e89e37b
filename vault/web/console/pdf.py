"""A subject's access-history report as a PDF (`vault.web.pdf_document`).

The same content as the printable HTML report: summary, verification verdict, the
entries in plain language and the signed checkpoint note.
"""

from __future__ import annotations

from typing import Any

from vault.web.pdf_document import Document


def report_pdf(data: dict[str, Any]) -> bytes:
    pdf = Document(
        title=f"Access history of {data['subject_id']}",
        footer=f"Access history of {data['subject_id']}",
        creator="Customer Vault compliance console",
        # A justification or an actor may be any text.
        needs_cjk=True,
    )
    line = pdf.paragraph

    line(f"Access history of subject {data['subject_id']}", 16, bold=True, height=8)
    line(f"Generated {data['generated']} by {data['generated_by']} from the vault's audit log.", 9)
    pdf.ln(2)
    s = data["summary"]
    line(
        f"{s['total']} entries: {s['allowed']} allowed, {s['denied']} denied; "
        f"{len(s['readers'])} people or systems saw data; exports: {s['exports']}; "
        f"changes: {s['changes']}.",
        11,
        bold=True,
    )
    if s["total"]:
        line(f"From {s['first']} to {s['last']}.")
    if s["readers"]:
        line("Seen by " + ", ".join(s["readers"]) + ".")
    pdf.ln(2)
    verify = data["verify"]
    if verify is None:
        line(data["verify_note"], 10, bold=True)
    elif verify.ok:
        line(f"The whole log verified: {verify.entries_checked} entries checked.", 10, bold=True)
    else:
        line(
            f"The log FAILED verification: first bad position {verify.first_bad_index}: "
            f"{verify.problem}",
            10,
            bold=True,
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
    pdf.heading("Entries, oldest first")
    for r in data["rows"]:
        verdict = data["included"].get(r["index"])
        proof = "included" if verdict and verdict.ok else ("MISMATCH" if verdict else "pending")
        index = "-" if r["index"] is None else str(r["index"])
        denied = r["decision"] == "deny"
        label = "DENIED" if denied else "allowed"
        line(
            f"#{index}  {r['time']} UTC  [{label}, {proof}]", 8.5, bold=True, height=4.5, red=denied
        )
        text = r["sentence"] + (f' ("{r["justification"]}")' if r["justification"] else "")
        line(text, 9, height=4.8)
        pdf.ln(1)
    if data["checkpoint"] is not None:
        pdf.heading("Signed checkpoint")
        if pdf.unicode:
            line(
                "The log's state this report was checked against; check the note with "
                "`customer-vault audit verify --checkpoint FILE`.",
                9,
            )
        else:
            line(
                "The log's state this report was checked against. Its signature line "
                "starts with an em dash (U+2014), printed here as '-': restore it before "
                "checking the note with `customer-vault audit verify --checkpoint FILE`.",
                9,
            )
        pdf.mono(data["checkpoint"].note)
    return pdf.to_bytes()
