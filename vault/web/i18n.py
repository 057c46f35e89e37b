"""The privacy center's languages: English (the messages themselves) and Simplified
Chinese, from gettext catalogs under vault/web/locale.

The `.po` files are the only source: they are compiled in memory when the app starts
(Babel's `read_po` -> `write_mo`), so no binary `.mo` is committed or built, and a
catalog can never be stale against its `.po`. `make catalogs` re-extracts the messages
from the privacy center's code and templates and merges them into each `.po`.

The language is the `cv_lang` cookie (set by the switch on the page), else the best
match of the browser's Accept-Language, else English.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANG_COOKIE = "cv_lang"
DEFAULT = "en"


@dataclass(frozen=True)
class Language:
    code: str
    """The catalog and cookie name."""
    html: str
    """The BCP 47 tag for `<html lang>`."""
    label: str
    """The language's own name, for the switch."""
    word_gap: str
    """What separates the parts of a composed sentence (none in Chinese)."""


LANGUAGES = {
    "en": Language("en", "en", "English", " "),
    "zh": Language("zh", "zh-Hans", "简体中文", ""),
}


class Catalogs:
    """One translation per language, compiled from its `.po` at start-up."""

    def __init__(self, locale_dir: Path = LOCALE_DIR) -> None:
        self._translations: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
        for code in LANGUAGES:
            po = locale_dir / code / "LC_MESSAGES" / "messages.po"
            if code == "en" or not po.exists():
                continue
            with po.open("rb") as source:
                catalog = read_po(source, locale=None)
            compiled = io.BytesIO()
            write_mo(compiled, catalog, use_fuzzy=False)
            compiled.seek(0)
            self._translations[code] = gettext.GNUTranslations(compiled)

    @property
    def available(self) -> tuple[str, ...]:
        return tuple(self._translations)

    def gettext(self, code: str) -> Callable[[str], str]:
        translations = self._translations.get(code, self._translations[DEFAULT])

        def translate(message: str) -> str:
            return translations.gettext(message) if message else ""

        return translate


def choose(cookie: str | None, accept_language: str, available: tuple[str, ...]) -> str:
    """The cookie's language if available, else the best Accept-Language match."""
    if cookie in available:
        return cookie
    best, best_q = DEFAULT, -1.0
    for position, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        code = tag.strip().lower().split("-")[0]
        # Earlier entries win ties (the header's order is the browser's preference).
        score = q - position * 1e-6
        if code in available and q > 0 and score > best_q:
            best, best_q = code, score
    return best
