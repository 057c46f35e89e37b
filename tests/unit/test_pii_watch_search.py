"""The PII watch's search finds exactly what `value in text` finds, also when it indexes
a large text first (tests/pii_watch.py, `_present`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import pii_watch

ALPHABET = "abc .@-"


@given(
    values=st.sets(st.text(ALPHABET, min_size=1, max_size=9), max_size=30),
    text=st.text(ALPHABET, max_size=300),
)
def test_the_indexed_search_finds_exactly_what_a_scan_finds(values: set[str], text: str) -> None:
    expected = sorted(value for value in values if value in text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pii_watch, "_MANY", 0)  # always index
        assert sorted(pii_watch._present(values, text)) == expected
    assert sorted(pii_watch._present(values, text)) == expected


def test_a_value_at_the_very_end_or_start_is_found_in_a_large_text() -> None:
    values = {f"customer-{n:05d}" for n in range(5000)}
    text = "customer-00000 " + "x" * 20_000 + " customer-04999"
    assert len(values) * len(text) >= pii_watch._MANY  # the indexed path
    assert sorted(pii_watch._present(values, text)) == ["customer-00000", "customer-04999"]
