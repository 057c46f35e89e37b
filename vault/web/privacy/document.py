"""The customer's data package as a person reads it: the HTML page and the PDF.

Both are made from the package the vault signed (RightsService.ExportSubjectData). The
PDF carries that signed JSON file as an attachment (`my-data-signed.json`) and prints
its SHA-256: the pages are a rendering for people, the attachment is what the vault's
signature covers, and the verify page explains how to check both (the web app holds
no signing key of its own, so it signs nothing itself).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vault.web.i18n import Language
from vault.web.pdf_document import Document
from vault.web.privacy.history import Happening, plain_package_history

ATTACHMENT = "my-data-signed.json"


@dataclass(frozen=True)
class ReadableCopy:
    """What the readable page and the PDF show of one downloaded package."""

    package: dict[str, Any]
    fields: list[tuple[str, dict[str, Any]]]
    history: list[Happening]
    signed: str
    signature: dict[str, Any] | None

    @classmethod
    def of(cls, package_json: str, signed: str, field_order: list[str]) -> ReadableCopy:
        package = json.loads(package_json)
        fields = sorted(
            package.get("fields", {}).items(),
            key=lambda f: field_order.index(f[0]) if f[0] in field_order else len(field_order),
        )
        return cls(
            package,
            fields,
            plain_package_history(package.get("access_history", [])),
            signed,
            json.loads(signed)["signature"] if signed else None,
        )

    @property
    def signed_sha256(self) -> str:
        return hashlib.sha256((self.signed + "\n").encode()).hexdigest()

    @property
    def attachment(self) -> bytes:
        """The signed JSON file, byte for byte as the JSON download gives it."""
        return (self.signed + "\n").encode()


def package_pdf(
    copy: ReadableCopy,
    _: Callable[[str], str],
    language: Language,
    field_names: Mapping[str, str],
    purpose_names: Mapping[str, str],
) -> bytes:
    """The package as a PDF in the customer's language, the signed JSON attached."""
    pdf = Document(
        title=_("Your data"),
        footer=_("Your data"),
        creator="Customer Vault privacy center",
        needs_cjk=language.code == "zh",
    )
    gap = language.word_gap
    package = copy.package
    pdf.paragraph(_("Your data"), 18, bold=True, height=9)
    generated = str(package.get("generated_at", ""))[:16].replace("T", " ")
    prepared, controller = _("Prepared on"), _("Data controller:")
    pdf.paragraph(f"{prepared} {generated} UTC · {controller} {package.get('controller', '')}", 9)
    if pdf.missing_glyphs:
        pdf.paragraph(
            "This computer has no font for Chinese characters: they are shown as '?'. "
            "The attached signed JSON file holds your data in full.",
            9,
            red=True,
        )

    pdf.heading(_("The data we hold about you"))
    if copy.fields:
        pdf.pairs(
            [(_(field_names.get(name, name)), str(f.get("value", ""))) for name, f in copy.fields]
        )
    else:
        pdf.paragraph(_("We hold no data about you."))

    pdf.heading(_("Your choices"))
    consent = package.get("consent", {})

    def names(purposes: list[str]) -> str:
        return ", ".join(_(purpose_names.get(p, p)) for p in purposes) or _("nothing")

    consented, opted_out = _("You consented to:"), _("You opted out of:")
    pdf.paragraph(f"{consented}{gap}{names(consent.get('consented_purposes', []))}")
    pdf.paragraph(f"{opted_out}{gap}{names(consent.get('opted_out', []))}")

    pdf.heading(_("Who has used your data"))
    for h in copy.history:
        sentence = gap.join(part for part in (_(h.team), _(h.deed), _(h.why)) if part)
        if h.refused:
            sentence += " — " + _("this was refused: nothing was shown or changed")
        pdf.paragraph(h.when.strftime("%Y-%m-%d %H:%M") + " UTC", 8.5, bold=True, height=4.5)
        pdf.paragraph(sentence + _("."), 9.5, height=5, red=h.refused)
        pdf.ln(1)

    pdf.heading(_("Signature"))
    if copy.signature is None:
        pdf.paragraph(_("This copy is not signed."))
        return pdf.to_bytes()
    pdf.paragraph(
        _(
            "This PDF carries the signed JSON file of your data as an attachment "
            "(my-data-signed.json). Our signature covers that file: check it as our "
            "page on checking the signature explains, then compare it with these pages."
        )
    )
    signed_with = _("Signed with our key")
    pdf.paragraph(f"{signed_with}{gap}{copy.signature.get('kid', '')}")
    pdf.paragraph(_("SHA-256 of the attached file:"), 9, bold=True)
    pdf.mono(copy.signed_sha256)
    pdf.paragraph(_("How to check the signature") + ": /privacy/verify", 9)
    pdf.attach(ATTACHMENT, copy.attachment, "The signed JSON package (Ed25519)")
    return pdf.to_bytes()
