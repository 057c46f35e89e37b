"""Masked means masked, also through search (issue 20, items 4 and 5), through the server.

A search confirms or denies a guessed value, so it is a clear read of the searched
field: a support agent who sees the national id masked cannot confirm guesses of it,
and a marketing principal gets nothing from a search by national id. Subjects the
purpose may not touch are left out, searches spend a per-principal budget, results are
paged, and every page's and every export batch's subjects are linked to an audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb

import audit
from tests.data import ADA, DPO
from tests.integration.consent_support import MARKETER, MovableClock, grant, opt_out
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClientError
from vault.context import CallContext
from vault.crypto import new_subject_id
from vault.principal import Principal

# A support agent of the usual clearance: sees the national id as *****56 C.
AGENT = {"principal": "agent-1", "roles": ("support_agent",), "clearance": "1"}


def _entries(vault: RunningVault, **filters: str) -> list[audit.AuditEntry]:
    return [e.entry for e in audit.iter_query(vault.app.db.engine, **filters)]


def test_a_support_agent_cannot_confirm_guesses_of_a_masked_national_id(
    vault: RunningVault,
) -> None:
    subject = vault.client().create(ADA).subject_id
    agent = vault.client(**AGENT)
    shown = agent.get(subject, "support", "support").fields["national_id"]
    assert (shown.disclosure, shown.value) == (pb.DISCLOSURE_MASKED, "*****456C")

    # The attack: complete the masked number guess by guess. Today the right guess
    # came back as a match; now every search by the field is refused, right or wrong.
    guesses = [f"QQ {a:02d} 34 56 C" for a in range(5, 15)]  # holds the real one (12)
    for guess in guesses:
        with pytest.raises(VaultClientError) as caught:
            agent.find("national_id", guess, "support", "support")
        assert caught.value.code == "PERMISSION_DENIED"
    refusals = _entries(vault, action="FindSubjects", actor="agent-1")
    assert len(refusals) == len(guesses)
    assert {(e.decision, e.result_code) for e in refusals} == {("deny", "PERMISSION_DENIED")}
    assert all(e.subject_ids == () for e in refusals)
    # The same agent still finds the customer by what support looks people up by.
    [found] = agent.find("family_name", "Lovelace", "support", "support")
    assert found.meta.subject_id == subject


def test_a_marketing_principal_gets_nothing_from_a_search_by_national_id(
    vault: RunningVault,
) -> None:
    service = vault.client()
    subject = service.create(ADA).subject_id
    grant(service, subject, "marketing")
    marketer = vault.client(**MARKETER)
    with pytest.raises(VaultClientError) as caught:
        marketer.find("national_id", ADA["national_id"], "marketing", "marketing")
    assert caught.value.code == "PERMISSION_DENIED"
    assert subject not in caught.value.message
    [entry] = _entries(vault, action="FindSubjects", actor="mkt-1")
    assert entry.decision == "deny" and entry.subject_ids == ()
    assert entry.reason == "p, *, *, fields:*, class:restricted, marketing, 0, *, deny"


def test_subjects_withheld_for_consent_or_an_opt_out_are_left_out(vault: RunningVault) -> None:
    service, dpo = vault.client(), vault.client(**DPO)
    subject = service.create(ADA).subject_id
    marketer = vault.client(**MARKETER)
    # No consent for marketing: the search does not confirm that the customer exists.
    assert marketer.find("email", ADA["email"], "marketing", "marketing") == []
    grant(service, subject, "marketing")
    [found] = marketer.find("email", ADA["email"], "marketing", "marketing")
    assert found.meta.subject_id == subject
    opt_out(service, subject, "all_marketing")
    assert marketer.find("email", ADA["email"], "marketing", "marketing") == []
    last = _entries(vault, action="FindSubjects", actor="mkt-1")[-1]
    assert last.subject_ids == () and last.extra["left_out"] == "1"
    # A legal obligation is not bound by consent: the DPO still finds the customer.
    assert dpo.find("email", ADA["email"], "full", "data_subject_request", "DSR-1")


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[tuple[RunningVault, MovableClock]]:
    clock = MovableClock()
    settings = settings_for(tmp_path / "data", None, search_rate_per_minute=6, search_burst=3)
    with running_vault(settings, clock=clock) as running:
        yield running, clock


def test_searches_spend_a_per_principal_budget_and_a_refusal_is_audited(
    budgeted: tuple[RunningVault, MovableClock],
) -> None:
    vault, clock = budgeted
    vault.client().create(ADA)
    agent, other = vault.client(**AGENT), vault.client(**{**AGENT, "principal": "agent-2"})
    for _ in range(3):  # the burst
        assert agent.find("family_name", "Lovelace", "support", "support")
    with pytest.raises(VaultClientError) as caught:
        agent.find("family_name", "Lovelace", "support", "support")
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert "6 per minute" in caught.value.message
    assert other.find("family_name", "Lovelace", "support", "support")  # its own budget
    refused = _entries(vault, action="FindSubjects", result_code="RESOURCE_EXHAUSTED")
    assert [(e.actor, e.decision, e.reason) for e in refused] == [
        ("agent-1", "deny", "rate-limit:search")
    ]
    assert refused[0].subject_ids == ()
    clock.advance(timedelta(seconds=10))  # 6 per minute: one more search after 10 s
    assert agent.find("family_name", "Lovelace", "support", "support")
    with pytest.raises(VaultClientError):
        agent.find("family_name", "Lovelace", "support", "support")


@pytest.fixture
def unbudgeted(tmp_path: Path) -> Iterator[RunningVault]:
    settings = settings_for(tmp_path / "data", None, search_rate_per_minute=0)
    with running_vault(settings) as running:
        yield running


MANY = 10_001


def test_a_search_with_more_than_ten_thousand_matches_is_paged_and_every_page_audited(
    unbudgeted: RunningVault,
) -> None:
    vault = unbudgeted
    service = vault.client()
    people = [{**ADA, "email": f"ada{n}@example.com", "national_id": ""} for n in range(MANY)]
    people = [{k: v for k, v in p.items() if v} for p in people]
    ids = set()
    for start in range(0, MANY, 10_000):
        response = service.batch_create(people[start : start + 10_000], all_or_nothing=True)
        ids |= {r.subject_id for r in response.results}
    dpo = vault.client(**DPO)

    first = dpo.find_page("family_name", "Lovelace", "full", "data_subject_request", "DSR-1")
    assert len(first.subjects) == 50 and first.next_page_token  # the default page
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = dpo.find_page(
            "family_name",
            "Lovelace",
            "full",
            "data_subject_request",
            "DSR-1",
            page_size=5_000,  # more than the maximum: capped at 500
            page_token=token,
        )
        assert len(page.subjects) <= 500
        seen += [s.meta.subject_id for s in page.subjects]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == MANY and set(seen) == ids
    assert pages == 21
    entries = _entries(vault, action="FindSubjects", actor="dpo-1")
    assert len(entries) == pages + 1
    assert all(e.result_code == "OK" and e.decision == "allow" for e in entries)
    linked = [sid for e in entries[1:] for sid in e.subject_ids]
    assert sorted(linked) == sorted(seen)  # every subject returned is linked to its page

    with pytest.raises(VaultClientError) as caught:  # a token of another search
        dpo.find_page(
            "email",
            "ada1@example.com",
            "full",
            "data_subject_request",
            "DSR-1",
            page_token=first.next_page_token,
        )
    assert caught.value.code == "INVALID_ARGUMENT"
    assert ("page_token", "not a token this query gave you: start from the first page") in (
        caught.value.violations
    )


def test_the_auditor_splits_an_entry_linking_more_subjects_than_one_entry_holds(
    sqlite_vault: RunningVault,
) -> None:
    """A call touching 25,000 subjects is audited in full (three parts), not refused
    by the log's limit of 10,000 subjects per entry (which failed the call INTERNAL)."""
    ids = [new_subject_id() for _ in range(25_000)]
    who = Principal("dpo-1", "acme", frozenset({"dpo"}))
    call = CallContext(
        method="/customervault.v1.VaultService/FindSubjects",
        request_id="a" * 32,
        principal=who,
        subject_ids=ids,
        decision="allow",
    )
    sqlite_vault.app.auditor.record(call)
    parts = _entries(sqlite_vault, action="FindSubjects")
    assert [e.extra["part"] for e in parts] == ["1/3", "2/3", "3/3"]
    assert [sid for e in parts for sid in e.subject_ids] == ids
    with sqlite_vault.app.db.write() as conn:
        sqlite_vault.app.auditor.record_in(conn, call)
    assert len(_entries(sqlite_vault, action="FindSubjects")) == 6


@pytest.fixture
def small_batches(tmp_path: Path) -> Iterator[RunningVault]:
    settings = settings_for(tmp_path / "data", None, export_batch_size=2)
    with running_vault(settings) as running:
        yield running


def test_every_exported_subject_is_linked_to_an_audit_entry_and_its_access_package(
    small_batches: RunningVault,
) -> None:
    vault = small_batches
    service = vault.client()
    subjects = [
        service.create({**ADA, "email": f"ada{n}@example.com"}).subject_id for n in range(5)
    ]
    lead = vault.client(principal="lead-1", roles=("support_lead",))
    exported = [v.meta.subject_id for v in lead.export("support", "support")]
    assert sorted(exported) == sorted(subjects)

    entries = _entries(vault, action="ExportView")
    assert [e.extra.get("export_batch") for e in entries] == [None, "1", "2", "3"]
    assert entries[0].subject_ids == ()  # the call's own entry, before any data left
    assert sorted(sid for e in entries[1:] for sid in e.subject_ids) == sorted(subjects)
    for subject in subjects:
        [linked] = _entries(vault, subject_id=subject, action="ExportView")
        assert linked.actor == "lead-1" and linked.purpose == "support"

    dpo = vault.client(**DPO)
    request = rpb.ExportSubjectDataRequest(subject_id=subjects[3], reason="DSR-2026-7")
    package = json.loads(dpo.call(dpo.rights, "ExportSubjectData", request).package_json)
    exports = [a for a in package["access_history"] if a["action"] == "ExportView"]
    assert [(a["actor"], a["purpose"], a["result"]) for a in exports] == [
        ("lead-1", "support", "OK")
    ]
