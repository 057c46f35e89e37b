"""A phone number already in E.164 skips the general parse: both paths must give the
same answer (the value, or the same violation) for every input the fast one takes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from vault.fields.dictionary import DataDictionary
from vault.fields.normalizers import (
    Context,
    InvalidValueError,
    normalize_value,
    phone_by_parsing,
)

CONTEXT = Context(date(2026, 1, 1), "US")
PHONE = DataDictionary.from_file(REPO_ROOT / "policies" / "data_dictionary.yaml").fields["phone"]


def _outcome(run: Callable[[str], str], text: str) -> str:
    try:
        return "ok:" + run(text)
    except InvalidValueError as exc:
        return "error:" + exc.description


def _both(text: str) -> tuple[str, str]:
    fast = _outcome(lambda t: normalize_value(PHONE, t, CONTEXT), text)
    general = _outcome(lambda t: phone_by_parsing(t, CONTEXT.phone_region), text)
    return fast, general


def _e164_examples() -> list[str]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                found.append(e164)
    return found


@pytest.mark.parametrize("text", _e164_examples())
def test_every_regions_example_numbers_agree(text: str) -> None:
    fast, general = _both(text)
    assert fast == general
    assert fast == "ok:" + text


@pytest.mark.parametrize(
    "text",
    ["+12125550123", "+11125550123", "+442079460019", "+4402079460019", "+390612345678",
     "+80012345678", "+12", "+999123456", "+1", "+0123456789", "+112345678901234"],
)  # fmt: skip
def test_edge_cases_agree(text: str) -> None:
    fast, general = _both(text)
    assert fast == general


@settings(max_examples=3000)
@given(
    code=st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
    rest=st.text(alphabet="0123456789", min_size=0, max_size=14),
)
def test_any_plus_and_digits_agree(code: int, rest: str) -> None:
    text = f"+{code}{rest}"[:16]
    fast, general = _both(text)
    assert fast == general
