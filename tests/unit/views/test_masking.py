"""Masking and generalization strategies: what each shows, and that none shows more."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.views.masking import GENERALIZERS, MASKS, REDACTED, UNREADABLE

TODAY = date(2025, 6, 15)


@pytest.mark.parametrize(
    ("strategy", "value", "shown"),
    [
        ("email", "jane@example.com", "j***@example.com"),
        ("email", "ab@example.com", "a***@example.com"),
        ("email", "j@example.com", "***@example.com"),  # one letter would be the whole local part
        ("email", "not-an-email", "***"),
        ("phone_last4", "+14155552671", "*******2671"),
        ("phone_last4", "+442079460018", "********0018"),
        ("phone_last4", "(415) 555-2671", "******2671"),
        ("phone_last4", "+12345", "*****"),  # too short: last four would be most of it
        ("name_initial", "jane", "J."),
        ("name_initial", "  Émile ", "É."),
        ("name_initial", "ßabine", "ß."),  # upper-cases to two letters: keep as written
        ("name_initial", "", ""),
        ("national_id_last4", "123-45-6789", "*****6789"),
        ("national_id_last4", "AB123456C", "*****456C"),
        ("national_id_last4", "12-34", "****"),
        ("date_year", "1984-06-15", "1984"),
        ("date_year", "15/06/1984", UNREADABLE),
        ("postal_prefix", "94107", "941**"),
        ("postal_prefix", "SW1A 1AA", "SW1*****"),
        ("postal_prefix", "941", "***"),
        ("redact", "called about a refund; card ends 4242", REDACTED),
    ],
)
def test_masks(strategy: str, value: str, shown: str) -> None:
    assert MASKS[strategy](value, TODAY) == shown


@pytest.mark.parametrize(
    ("born", "band"),
    [
        ("1990-06-15", "30-39"),  # 35th birthday today
        ("1990-06-16", "30-39"),  # 34 until tomorrow
        ("1995-06-16", "20-29"),  # 29, turns 30 tomorrow
        ("2025-01-01", "0-9"),
        ("1920-01-01", "100+"),
        ("2030-01-01", UNREADABLE),  # not born yet
        ("someday", UNREADABLE),
    ],
)
def test_age_band_uses_the_injected_today(born: str, band: str) -> None:
    assert MASKS["age_band"](born, TODAY) == band
    assert GENERALIZERS["age_band"](born, TODAY) == band


def test_age_band_moves_with_today() -> None:
    assert MASKS["age_band"]("1995-06-16", date(2025, 6, 16)) == "30-39"


@pytest.mark.parametrize(
    ("strategy", "value", "shown"),
    [
        ("decade_band", "1984-06-15", "1980-1989"),
        ("decade_band", "2000-01-01", "2000-2009"),
        ("decade_band", "June 1984", UNREADABLE),
        ("postal_prefix", "94107", "941"),
        ("postal_prefix", "941", "***"),
        ("country", " FR ", "FR"),
    ],
)
def test_generalizers(strategy: str, value: str, shown: str) -> None:
    assert GENERALIZERS[strategy](value, TODAY) == shown


@given(local=st.text(min_size=2, max_size=30).filter(lambda s: "@" not in s))
def test_email_mask_shows_one_character_of_the_local_part(local: str) -> None:
    masked = MASKS["email"](local + "@example.com", TODAY)
    assert masked == local[0] + "***@example.com"


@given(digits=st.text(alphabet="0123456789", min_size=7, max_size=15))
def test_phone_mask_shows_exactly_the_last_four_digits(digits: str) -> None:
    masked = MASKS["phone_last4"]("+" + digits, TODAY)
    assert masked.endswith(digits[-4:])
    assert masked[:-4] == "*" * (len(digits) - 4)


@given(value=st.text(max_size=40))
def test_no_strategy_raises_or_returns_the_value_of_a_long_secret(value: str) -> None:
    for name, strategy in {**MASKS, **GENERALIZERS}.items():
        shown = strategy(value, TODAY)
        assert isinstance(shown, str)
        if name not in ("country", "name_initial") and len(value.strip()) > 8:
            assert shown != value.strip()


@given(st.text(alphabet=st.sampled_from("12ab- ./_\u00e9\u0663\u00b2"), max_size=16))
def test_national_id_mask_keeps_exactly_the_letters_and_digits(value: str) -> None:
    chars = "".join(c for c in value if c.isalnum())
    shown = MASKS["national_id_last4"](value, date(2025, 1, 1))
    assert shown == ("*" * len(chars) if len(chars) < 8 else "*" * (len(chars) - 4) + chars[-4:])
