"""Compliance queries: filters, keyset paging, page tokens, subject history."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from audit import (
    CheckpointSigner,
    PageTokenError,
    append_in,
    iter_query,
    query,
    subject_history,
)
from tests.integration.audit import helpers

SIZE = 60


@pytest.fixture
def logged(sqlite_or_pg_engine: Engine, audit_signer: CheckpointSigner) -> Engine:
    helpers.build_log(sqlite_or_pg_engine, audit_signer, SIZE, checkpoint_interval=16)
    return sqlite_or_pg_engine


def _numbers(entries: object) -> list[int]:
    return [int(logged.entry.request_id.removeprefix("req-")) for logged in entries]  # type: ignore[attr-defined]


def test_every_filter_narrows(logged: Engine) -> None:
    cases = {
        "actor": ("agent-1", lambda n: n % 3 == 1),
        "action": ("GetSubject", lambda n: n % 2 == 1),
        "decision": ("deny", lambda n: n % 4 == 0),
        "result_code": ("OK", lambda n: n % 4 != 0),
        "subject_id": ("sub-3", lambda n: n % 5 == 3),
    }
    for name, (value, wanted) in cases.items():
        page = query(logged, **{name: value}, page_size=1000)
        assert _numbers(page.entries) == [n for n in range(SIZE) if wanted(n)], name
        assert page.next_page_token is None
    both = query(logged, actor="agent-1", decision="deny", page_size=1000)
    assert _numbers(both.entries) == [n for n in range(SIZE) if n % 3 == 1 and n % 4 == 0]
    assert query(logged, tenant="other", page_size=10).entries == ()


def test_time_range_is_half_open(logged: Engine) -> None:
    since, until = helpers.T0 + timedelta(seconds=10), helpers.T0 + timedelta(seconds=20)
    page = query(logged, since=since, until=until, page_size=1000)
    assert _numbers(page.entries) == list(range(10, 20))
    with pytest.raises(ValueError):
        query(logged, since=since.replace(tzinfo=None))


def test_pages_neither_skip_nor_repeat_while_the_log_grows(logged: Engine) -> None:
    seen: list[int] = []
    token = None
    while True:
        page = query(logged, page_size=7, page_token=token)
        seen += _numbers(page.entries)
        if len(seen) == 14:  # entries appended between pages come later, in order
            with logged.begin() as conn:
                append_in(conn, [helpers.make_entry(n) for n in range(SIZE, SIZE + 5)])
        if page.next_page_token is None:
            break
        token = page.next_page_token
    assert seen == list(range(SIZE + 5))
    assert [entry.leaf_index for entry in iter_query(logged)][-5:] == [None] * 5


def test_a_page_token_is_bound_to_its_filters(logged: Engine) -> None:
    token = query(logged, actor="agent-1", page_size=2).next_page_token
    assert token is not None
    assert query(logged, actor="agent-1", page_size=2, page_token=token).entries
    with pytest.raises(PageTokenError):
        query(logged, actor="agent-2", page_size=2, page_token=token)
    for garbage in ("", "not-base64!", "eyJ2IjoyfQ"):
        with pytest.raises(PageTokenError):
            query(logged, page_token=garbage)
    with pytest.raises(ValueError):
        query(logged, page_size=0)


def test_subject_history_lists_allowed_and_denied_access(logged: Engine) -> None:
    history = subject_history(logged, "sub-4", page_size=1000)
    numbers = _numbers(history.entries)
    assert numbers == [n for n in range(SIZE) if n % 5 == 4]
    decisions = {logged_entry.entry.decision for logged_entry in history.entries}
    assert decisions == {"allow", "deny"}
    assert all(e.leaf_index is not None for e in history.entries)
    assert subject_history(logged, "sub-4", tenant="other").entries == ()
    first = subject_history(logged, "sub-4", page_size=3)
    assert first.next_page_token is not None
    rest = subject_history(logged, "sub-4", page_size=1000, page_token=first.next_page_token)
    assert _numbers(first.entries) + _numbers(rest.entries) == numbers


def test_an_entry_about_several_subjects_is_in_each_history(logged: Engine) -> None:
    with logged.begin() as conn:
        append_in(conn, [helpers.make_entry(100, subject_ids=("sub-a", "sub-b", "sub-a"))])
    for subject in ("sub-a", "sub-b"):
        assert _numbers(subject_history(logged, subject).entries) == [100]


def _all_pages(engine: Engine, **filters: object) -> tuple[list[int], int]:
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        page = query(engine, page_token=token, **filters)  # type: ignore[arg-type]
        pages += 1
        seen += _numbers(page.entries)
        if page.next_page_token is None:
            return seen, pages
        token = page.next_page_token


def test_newest_first_pages_run_backwards_without_skip_or_repeat(logged: Engine) -> None:
    seen, _ = _all_pages(logged, newest_first=True, page_size=7)
    assert seen == list(reversed(range(SIZE)))
    denied, _ = _all_pages(logged, newest_first=True, decision="deny", page_size=4)
    assert denied == [n for n in reversed(range(SIZE)) if n % 4 == 0]
    oldest_token = query(logged, page_size=7).next_page_token
    with pytest.raises(PageTokenError):  # a token keeps the order it was issued for
        query(logged, newest_first=True, page_size=7, page_token=oldest_token)


def test_role_filter_reads_the_roles_inside_the_entries(logged: Engine) -> None:
    with logged.begin() as conn:
        append_in(
            conn,
            [
                helpers.make_entry(n, actor_roles=("dpo", "compliance_officer"))
                for n in range(SIZE, SIZE + 9)
            ],
        )
    for newest_first in (False, True):
        seen, _ = _all_pages(logged, role="dpo", page_size=4, newest_first=newest_first)
        expected = list(range(SIZE, SIZE + 9))
        assert seen == (expected[::-1] if newest_first else expected)
    both, _ = _all_pages(logged, role="compliance_officer", actor="agent-1", page_size=100)
    assert both == [n for n in range(SIZE, SIZE + 9) if n % 3 == 1]
    assert _all_pages(logged, role="nobody", page_size=5)[0] == []


def test_role_filter_scans_a_bounded_number_of_rows_a_page(
    logged: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module("audit.query")  # `audit.query` is the function
    monkeypatch.setattr(module, "ROLE_SCAN_BUDGET", 10)
    monkeypatch.setattr(module, "_SCAN_CHUNK", 4)
    with logged.begin() as conn:
        append_in(conn, [helpers.make_entry(SIZE, actor_roles=("dpo",))])
    first = query(logged, role="dpo", page_size=5)
    assert first.entries == ()  # ten rows scanned, none matched: a short page
    assert first.next_page_token is not None
    seen, pages = _all_pages(logged, role="dpo", page_size=5)
    assert seen == [SIZE]
    assert pages == (SIZE + 1 + 9) // 10
