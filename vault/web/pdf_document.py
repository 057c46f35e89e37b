"""PDF documents of the web app (fpdf2, pure Python): the one place that chooses fonts
and writes text, for the console's access-history report and the privacy center's data
package.

Fonts are found at run time among the system's (`FONT_PATHS`): DejaVu Sans for Latin,
Greek and Cyrillic, with a CJK font (WenQuanYi Micro Hei, Noto Sans CJK, ...) as the
fallback for the glyphs it lacks, so Simplified Chinese prints. Without a CJK font a
Chinese document is still made, with DejaVu or the PDF's built-in Helvetica (Latin-1),
every character they cannot show replaced with "?", and `Document.missing_glyphs` set
so the document says so on its first page; the vault logs it once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

log = logging.getLogger(__name__)

FONTS_ROOT = Path("/usr/share/fonts")
FONT_PATHS = {
    "sans": ("truetype/dejavu/DejaVuSans.ttf",),
    "sans-bold": ("truetype/dejavu/DejaVuSans-Bold.ttf",),
    "mono": ("truetype/dejavu/DejaVuSansMono.ttf",),
    "cjk": (
        "truetype/wqy/wqy-microhei.ttc",
        "truetype/wqy/wqy-zenhei.ttc",
        "opentype/noto/NotoSansCJK-Regular.ttc",
        "opentype/noto-cjk/NotoSansCJK-Regular.ttc",
        "truetype/arphic/uming.ttc",
    ),
}
"""Where each kind of font is looked for, under `FONTS_ROOT`, first found wins."""

_LATIN1_SUBSTITUTES = {
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
_warned: set[str] = set()


@dataclass(frozen=True)
class Fonts:
    """The font files this machine offers (None: not installed)."""

    sans: Path | None
    sans_bold: Path | None
    mono: Path | None
    cjk: Path | None

    @classmethod
    def find(cls, root: Path = FONTS_ROOT) -> Fonts:
        def first(kind: str) -> Path | None:
            return next((root / p for p in FONT_PATHS[kind] if (root / p).is_file()), None)

        return cls(first("sans"), first("sans-bold"), first("mono"), first("cjk"))


def latin1(text: str) -> str:
    """Text the built-in PDF fonts can show: common punctuation spelled out, the rest
    of what is not Latin-1 replaced with "?"."""
    for old, new in _LATIN1_SUBSTITUTES.items():
        text = text.replace(old, new)
    return text.encode("latin-1", "replace").decode("latin-1")


class Document(FPDF):
    """An A4 document with a footer, headings, paragraphs and monospace blocks.

    `needs_cjk`: the text is Chinese (or may be); without a CJK font `missing_glyphs`
    is set. `fonts`: for tests, the fonts to use instead of the system's."""

    def __init__(
        self,
        *,
        title: str,
        footer: str,
        creator: str,
        needs_cjk: bool = False,
        fonts: Fonts | None = None,
    ) -> None:
        super().__init__(format="A4")
        self._footer = footer
        self.unicode = False
        self.missing_glyphs = False
        self._sans = "Helvetica"
        self._mono = "Courier"
        self._choose_fonts(fonts or Fonts.find(), needs_cjk=needs_cjk)
        self.set_title(self.printable(title))
        self.set_creator(creator)
        self.set_auto_page_break(auto=True, margin=16)
        self.add_page()

    def _choose_fonts(self, fonts: Fonts, *, needs_cjk: bool) -> None:
        regular = fonts.sans or fonts.cjk
        if regular is not None:
            self.unicode = True
            self.add_font("body", "", regular)
            self.add_font("body", "B", fonts.sans_bold or regular)
            self._sans = "body"
            if fonts.cjk is not None and regular != fonts.cjk:
                self.add_font("cjk", "", fonts.cjk)
                self.add_font("cjk", "B", fonts.cjk)
                self.set_fallback_fonts(["cjk"], exact_match=False)
            if fonts.mono is not None:
                self.add_font("mono", "", fonts.mono)
                self._mono = "mono"
        if needs_cjk and fonts.cjk is None:
            self.missing_glyphs = True
            if "cjk" not in _warned:
                _warned.add("cjk")
                log.warning(
                    "no CJK font under %s (install fonts-wqy-microhei): Chinese text in "
                    "PDF documents is replaced with '?'",
                    FONTS_ROOT,
                )

    def printable(self, value: str) -> str:
        """`value` as this document's fonts can print it."""
        if not self.unicode:
            return latin1(value)
        if self.missing_glyphs:
            return "".join(c if ord(c) < 0x2E80 else "?" for c in value)
        return value

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self._sans, size=8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 8, self.printable(f"{self._footer} - {self.page_no()}/{{nb}}"), align="C")

    def paragraph(
        self,
        value: str,
        size: float = 10,
        *,
        bold: bool = False,
        height: float = 5.5,
        red: bool = False,
    ) -> None:
        """A paragraph, wrapped to the page width."""
        self.set_font(self._sans, style="B" if bold else "", size=size)
        self.set_text_color(160, 30, 25) if red else self.set_text_color(20, 20, 20)
        self.multi_cell(
            self.epw, height, self.printable(value), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )

    def heading(self, value: str, size: float = 12) -> None:
        """A section heading, also a bookmark in the document's outline."""
        self.ln(2)
        self.start_section(self.printable(value), strict=False)
        self.paragraph(value, size, bold=True, height=size * 0.6)

    def pairs(self, rows: Sequence[tuple[str, str]], size: float = 10) -> None:
        """Label and value rows, the label in bold."""
        for label, value in rows:
            self.paragraph(label, size - 1, bold=True, height=5)
            self.paragraph(value or "-", size, height=5.5)
            self.ln(1)

    def mono(self, value: str, size: float = 8) -> None:
        """A preformatted block (a checkpoint note, a signature)."""
        self.set_font(self._mono, size=size)
        self.set_text_color(20, 20, 20)
        shown = value if self._mono == "mono" else latin1(value)
        self.multi_cell(self.epw, 4, shown, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def attach(self, name: str, data: bytes, description: str) -> None:
        """A file embedded in the document (readers list it as an attachment)."""
        self.embed_file(bytes=data, basename=name, desc=description, compress=False)

    def to_bytes(self) -> bytes:
        return bytes(self.output())
