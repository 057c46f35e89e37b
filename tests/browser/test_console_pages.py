"""A compliance officer uses the console in Chromium: sign in, search, open an entry, read
a subject's history and print its report, run a verification, manage a legal hold."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from tests.browser.conftest import (
    PEOPLE,
    SCREENSHOTS,
    Console,
    axe_violations,
    screenshot,
    shown,
    sign_in,
    wait_for_checkpoint,
)


def test_sign_in_search_and_open_an_entry(console: Console, page: Any) -> None:
    page.goto(console.url + "/console/audit")
    assert page.url.endswith("/signin")  # no session: the sign-in page
    screenshot(page, "01-signin")
    sign_in(page, console, "dpo")
    assert page.url.endswith("/console/")
    shown(page.get_by_role("heading", name="Activity at a glance"))
    screenshot(page, "02-activity")

    page.get_by_role("link", name="Audit search").click()
    page.select_option("#decision", "deny")
    page.fill("#role", "support_agent")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert "decision=deny" in page.url and "role=support_agent" in page.url
    sentences = page.locator(".result .sentence").all_inner_texts()
    ada = console.subjects["ada"]
    assert sentences, "the denied support reads are listed"
    assert all(s.startswith("agent-7 (support agent) ") for s in sentences)
    assert any(
        s.startswith("agent-7 (support agent) read the full view of")
        and "for support: denied: no policy line allows it" in s
        for s in sentences
    )
    assert ada not in " ".join(sentences)  # shortened: sub_… in sentences
    screenshot(page, "03-search")

    page.locator(".result .more").first.click()
    assert "/console/audit/entries/" in page.url
    verdict = page.locator(".verdict-line").inner_text()
    assert "Included in the log" in verdict, verdict
    assert "Signed by the log's key" in page.content()
    screenshot(page, "04-entry")

    # The .json twin of a search
    response = page.request.get(console.url + "/console/audit.json?decision=allow&size=25")
    assert response.status == 200
    document = json.loads(response.text())
    assert document["entries"] and all(e["decision"] == "allow" for e in document["entries"])
    times = [e["time"] for e in document["entries"]]
    assert times == sorted(times, reverse=True)  # newest first


def test_search_pages_by_cursor_newest_first(console: Console, page: Any) -> None:
    agent = console.vault.client(**PEOPLE["agent"])
    for _ in range(6):  # more than a page of 10 in all
        agent.get(console.subjects["grace"], "support", "support")
    sign_in(page, console, "dpo")
    wait_for_checkpoint(console.vault)
    page.goto(console.url + "/console/audit?size=10")
    first = page.locator(".result .more").all_inner_texts()
    seen = [int(t.split("#")[1].split()[0]) for t in first if "#" in t]
    while page.locator("a[rel=next]").count():
        page.click("a[rel=next]")
        more = page.locator(".result .more").all_inner_texts()
        seen += [int(t.split("#")[1].split()[0]) for t in more if "#" in t]
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) > 10


def test_subject_history_and_its_printable_report(
    console: Console, page: Any, tmp_path: Any
) -> None:
    ada = console.subjects["ada"]
    sign_in(page, console, "dpo")
    page.get_by_role("link", name="Subject history").click()
    screenshot(page, "05-subjects")
    page.fill("#subject", ada)
    page.get_by_role("button", name="Open history").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/console/subjects/{ada}")
    timeline = " ".join(page.locator(".timeline .sentence").all_inner_texts())
    assert "exported all data of" in timeline  # exports
    assert "denied" in timeline  # denied attempts
    assert "revealed national_id of" in timeline
    assert page.locator(".summary .stat.alert .n").inner_text() == "2"  # two denials
    screenshot(page, "06-history")

    page.get_by_role("link", name="Printable report").click()
    text = page.locator(".sheet").inner_text()
    assert "The whole log verified" in text
    assert "Signed checkpoint" in text and "customer-vault/audit" in text
    assert "were proved included in the signed checkpoint" in text
    assert "did NOT match" not in text
    screenshot(page, "07-report")
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()  # print layout: no navigation
    pdf = tmp_path / "report-printed.pdf"
    page.pdf(path=str(pdf), format="A4")
    assert pdf.read_bytes().startswith(b"%PDF")
    page.emulate_media(media="screen")

    response = page.request.get(console.url + f"/console/subjects/{ada}/report.pdf")
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF")
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "07-report.pdf").write_bytes(response.body())
    (SCREENSHOTS / "07-report-printed.pdf").write_bytes(pdf.read_bytes())


def test_run_a_verification_and_see_a_failure_explained(console: Console, page: Any) -> None:
    sign_in(page, console, "dpo")
    page.get_by_role("link", name="Log integrity").click()
    page.wait_for_load_state()
    assert "No witnesses configured" in page.content()
    assert "Signed by the log's key" in page.content()
    page.get_by_role("button", name="Run verification").click()
    page.wait_for_load_state()  # the verdict streams in; wait for the end
    assert "The log verified" in page.locator("div.verdict").inner_text()
    steps = page.locator(".progress-log li").all_inner_texts()
    assert steps[0] == "Verification started by dpo-1."
    assert re.fullmatch(r"Checked (\d+) of \1 entries…", steps[-1]), steps
    screenshot(page, "08-integrity")

    # Someone rewrites an entry in the database: the next run names the position.
    engine = console.vault.app.db.engine
    with engine.begin() as conn:
        row = conn.execute(
            sa.text("SELECT id, leaf_index, entry FROM audit_entries WHERE leaf_index = 3")
        ).one()
        forged = (
            bytes(row.entry)
            .replace(b'"decision":"deny"', b'"decision":"allow"')
            .replace(b'"decision":"allow"', b'"decision":"allow"')
        )
        forged = forged.replace(b"dpo-1", b"dpo-9").replace(b"agent-7", b"agent-9")
        forged = forged.replace(b"order-service", b"order-servicf")
        assert forged != bytes(row.entry)
        conn.execute(
            sa.text("UPDATE audit_entries SET entry = :e WHERE id = :id"),
            {"e": forged, "id": row.id},
        )
    page.get_by_role("button", name="Run verification").click()
    page.wait_for_load_state()  # the verdict streams in; wait for the end
    verdict = page.locator("div.verdict").inner_text()
    assert "FAILED verification" in verdict and "first bad position is 3" in verdict
    shown(page.get_by_role("heading", name="When verification fails"))
    screenshot(page, "09-integrity-failed")


def test_legal_hold_set_and_lifted_with_a_reason(console: Console, page: Any) -> None:
    ada, grace = console.subjects["ada"], console.subjects["grace"]
    sign_in(page, console, "dpo")
    page.get_by_role("link", name="Retention").click()
    assert grace in page.locator("table").first.inner_text() or grace in page.content()
    page.fill("#hold-subject", ada)
    page.fill("#hold-reason", "MATTER-81")
    page.get_by_role("button", name="Place hold").click()
    assert f"{ada} is under legal hold" in page.locator("[role=status]").inner_text()
    screenshot(page, "10-retention")
    row = page.locator("tr", has_text=ada)
    row.get_by_placeholder("reason").fill("matter closed")
    row.get_by_role("button", name="Lift").click()
    assert f"The legal hold on {ada} is lifted" in page.locator("[role=status]").inner_text()
    # both changes are in the audit log, as dpo-1, with their reasons
    page.goto(console.url + f"/console/audit?subject={ada}&actor=dpo-1")
    text = " ".join(page.locator(".result .sentence").all_inner_texts())
    assert "placed a legal hold on" in text and "lifted the legal hold on" in text


def test_pages_have_no_serious_accessibility_violations(console: Console, page: Any) -> None:
    ada = console.subjects["ada"]
    page.goto(console.url + "/signin")
    found = {"/signin": axe_violations(page)}
    sign_in(page, console, "dpo")
    for path in (
        "/console/",
        "/console/audit",
        "/console/audit?decision=deny",
        "/console/audit/entries/1",
        "/console/subjects",
        f"/console/subjects/{ada}",
        f"/console/subjects/{ada}/report",
        "/console/integrity",
        "/console/retention",
    ):
        page.goto(console.url + path)
        found[path] = axe_violations(page)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/console/", "/console/audit", "/console/retention"):
        page.goto(console.url + path)
        found[f"{path} (phone)"] = axe_violations(page)
    assert {path: v for path, v in found.items() if v} == {}


def test_chart_bars_open_the_search_they_count(console: Console, page: Any) -> None:
    sign_in(page, console, "dpo")
    page.goto(console.url + "/console/?days=1")
    screenshot(page, "02-activity-24h")
    denials = page.locator("figure", has_text="Denials by role").locator("a").first
    assert "support_agent" in denials.inner_text()
    count = int(denials.locator(".bar-count").inner_text())
    denials.click()
    page.wait_for_load_state()  # the click starts the navigation; count what it loads
    assert "decision=deny" in page.url and "role=support_agent" in page.url
    assert page.locator(".result.deny").count() == count == 2
    assert page.locator(".result.allow").count() == 0
    page.goto(console.url + "/console/?days=1")
    page.locator("figure", has_text="Decisions").locator("svg a").first.click()
    page.wait_for_load_state()
    assert "since=" in page.url and "until=" in page.url and "decision=" in page.url
    assert page.locator(".result").count() >= 1
    screenshot(page, "13-search-from-chart")
