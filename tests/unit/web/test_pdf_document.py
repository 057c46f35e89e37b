"""The web app's PDF documents: fonts found at run time, CJK printed when a CJK font is
installed, and a clear fallback when none is."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from vault.web.pdf_document import Document, Fonts

CHINESE = "您的数据"


def _text(document: Document) -> str:
    reader = PdfReader(io.BytesIO(document.to_bytes()))
    return "\n".join(p.extract_text() for p in reader.pages)


def _fonts(document: Document) -> set[str]:
    reader = PdfReader(io.BytesIO(document.to_bytes()))
    found = reader.pages[0]["/Resources"]["/Font"]
    return {str(f.get_object()["/BaseFont"]) for f in found.values()}


def test_chinese_prints_with_the_system_cjk_font() -> None:
    fonts = Fonts.find()
    if fonts.cjk is None:
        pytest.skip("no CJK font installed (fonts-wqy-microhei)")
    document = Document(title="t", footer="f", creator="test", needs_cjk=True)
    document.heading(f"{CHINESE}: Your data")
    document.paragraph("Ada Lovelace — “Zürich” ✔")
    assert not document.missing_glyphs and document.unicode
    text = _text(document)
    assert CHINESE in text and "Zürich" in text and "—" in text
    assert any("WenQuanYi" in f or "CJK" in f or "Hei" in f for f in _fonts(document))


def test_without_fonts_the_document_says_what_it_replaced(tmp_path: Path) -> None:
    empty = Fonts.find(tmp_path)
    assert empty == Fonts(None, None, None, None)
    document = Document(title="t", footer="f", creator="test", needs_cjk=True, fonts=empty)
    assert document.missing_glyphs and not document.unicode
    document.paragraph(f"{CHINESE} — Zürich")
    text = _text(document)
    assert CHINESE not in text and "???? - Zürich" in text
    assert "Helvetica" in " ".join(_fonts(document))
