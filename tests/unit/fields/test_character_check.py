"""The character check's fast path decides exactly as the per-character rule."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.fields.normalizers import InvalidValueError, _check_characters

_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn"}


def _rule(text: str, *, free_text: bool) -> bool:
    """True when the text passes: the rule as the per-character loop states it."""
    for char in text:
        category = unicodedata.category(char)
        if free_text:
            if category == "Cs" or (category == "Cc" and char not in "\n\r\t"):
                return False
        elif category in _HIDDEN:
            return False
    return True


_TRICKY = st.sampled_from(
    ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u200b", "\u2028", "\u00a0", "\ufeff",
     "\ud800", "\ue000", "\u0378", " ", "a", "\u00e9", "\u0663"]
)  # fmt: skip


@pytest.mark.parametrize("free_text", [False, True])
@given(text=st.lists(st.one_of(_TRICKY, st.characters()), max_size=12).map("".join))
def test_fast_path_agrees_with_the_rule(text: str, free_text: bool) -> None:
    try:
        _check_characters(text, free_text=free_text)
        passed = True
    except InvalidValueError:
        passed = False
    assert passed == _rule(text, free_text=free_text)
