"""Random identifiers and constant-time comparison."""

from __future__ import annotations

import re

import pytest

from vault.crypto import constant_time_equals, is_subject_id, new_random_id, new_subject_id


def test_subject_ids() -> None:
    ids = {new_subject_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"sub_[a-z2-7]{26}", i) for i in ids)


def test_random_ids_with_prefix() -> None:
    assert re.fullmatch(r"req_[a-z2-7]{26}", new_random_id("req"))
    assert new_random_id("req") != new_random_id("req")


@pytest.mark.parametrize("prefix", ["", "req_", "Req", "1abc", "a-b", "x" * 17])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        new_random_id(prefix)


def test_constant_time_equals() -> None:
    assert constant_time_equals(b"abc", b"abc")
    assert not constant_time_equals(b"abc", b"abd")
    assert not constant_time_equals(b"abc", b"abcd")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sub_",
        "ada@example.com",
        "sub_" + "a" * 25,
        "sub_" + "a" * 27,
        "SUB_" + "a" * 26,
        "sub_" + "1" * 26,
        "tkr_" + "a" * 26,
        " sub_" + "a" * 26,
    ],
)
def test_only_subject_shaped_text_is_a_subject_id(text: str) -> None:
    assert not is_subject_id(text)


def test_fresh_subject_ids_are_subject_ids() -> None:
    assert all(is_subject_id(new_subject_id()) for _ in range(100))
