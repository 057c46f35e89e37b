"""The privacy center's catalogs: every message in its code and templates has a Chinese
translation, and the language comes from the cookie, else Accept-Language."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from vault.web import i18n

ROOT = Path(__file__).resolve().parents[3]
METHODS = [
    ("vault/web/privacy/**.py", "python"),
    ("vault/web/templates/privacy/**.html", "jinja2"),
]


def _extracted() -> set[str]:
    found = extract_from_dir(
        str(ROOT),
        METHODS,
        keywords={"_": None, "N_": None, "gettext": None},
        options_map={"vault/web/templates/privacy/**.html": {"trim_blocks": "true"}},
    )
    return {str(message) for _, _, message, _, _ in found if message}


def test_every_privacy_center_message_has_a_chinese_translation() -> None:
    messages = _extracted()
    assert "Your data and your choices" in messages and "Marketing" in messages
    with (i18n.LOCALE_DIR / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id: m.string for m in catalog if m.id and not m.fuzzy}
    missing = sorted(m for m in messages if not translated.get(m))
    assert missing == [], f"run `make catalogs` and translate: {missing}"


def test_the_catalog_compiles_and_translates() -> None:
    catalogs = i18n.Catalogs()
    assert catalogs.available == ("en", "zh")
    assert catalogs.gettext("zh")("Withdraw consent") == "撤回同意"
    assert catalogs.gettext("en")("Withdraw consent") == "Withdraw consent"
    assert catalogs.gettext("zh")("") == ""  # never the catalog's header


def test_the_language_is_the_cookie_else_the_best_accept_language() -> None:
    available = ("en", "zh")
    assert i18n.choose(None, "zh-CN,zh;q=0.9,en;q=0.8", available) == "zh"
    assert i18n.choose(None, "en-GB,en;q=0.9,zh;q=0.8", available) == "en"
    assert i18n.choose(None, "fr-FR,zh;q=0.5", available) == "zh"
    assert i18n.choose(None, "fr-FR", available) == "en"
    assert i18n.choose(None, "zh;q=0, en;q=0.1", available) == "en"
    assert i18n.choose(None, "zh;q=abc", available) == "en"
    assert i18n.choose("zh", "en", available) == "zh"
    assert i18n.choose("xx", "zh", available) == "zh"
