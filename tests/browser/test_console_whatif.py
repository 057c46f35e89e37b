"""The policy what-if page and the as-of explanation in a real Chromium: a draft uploaded
through the CSRF-protected form, its report over the seeded log and the decision matrix,
an example entry explained; both sizes screenshotted, axe clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import audit
from tests.browser.conftest import (
    Console,
    axe_violations,
    screenshot,
    sign_in,
    wait_for_checkpoint,
)
from tests.integration.consent_support import MARKETER, grant, withdraw

POLICY = Path(__file__).resolve().parents[2] / "policies" / "vault_policy.csv"
AGENT_READ = "p, support_agent, *, subjects:read, view:support, support, 0, *, allow\n"
WIDEN = "p, support_agent, *, fields:clear, class:restricted, support, 0, *, allow\n"


def test_a_draft_uploaded_to_the_what_if_page_and_an_example_explained(
    console: Console, page: Any, tmp_path: Path
) -> None:
    sign_in(page, console, "compliance")
    page.goto(console.url + "/console/policy")
    assert page.locator("h1").inner_text() == "Policy what-if"
    assert axe_violations(page) == []
    screenshot(page, "20-policy-whatif-form")

    # The policy in force, chosen among the kept versions: nothing changes.
    page.click("button[type=submit]:has-text('Simulate')")
    text = page.locator("main").inner_text()
    assert "No recorded decision in the window would change." in text
    assert "No cell of the matrix changes." in text

    draft = tmp_path / "vault_policy.csv"
    draft.write_text(POLICY.read_text(encoding="utf-8").replace(AGENT_READ, "") + WIDEN)
    page.check("#source-upload")
    page.set_input_files("input[name='vault_policy.csv']", str(draft))
    page.click("button[type=submit]:has-text('Simulate')")
    main = page.locator("main")
    assert "The draft widens access to sensitive fields" in main.inner_text()
    groups = page.locator("section.card:has(h2:text('Recorded decisions')) tbody tr")
    assert groups.count() >= 2
    first = groups.first.inner_text()
    assert "allowed → denied" in first and "support_agent" in first
    assert "default-deny" in first and AGENT_READ.strip() in first
    assert (
        "class:restricted"
        in page.locator("section.card:has(h2:text('Decision matrix'))").inner_text()
    )
    # Identifiers only: no value of a seeded subject on the page.
    assert "ada.lovelace@example.com" not in main.inner_text()
    assert axe_violations(page) == []
    screenshot(page, "21-policy-whatif-report")

    groups.first.locator("a[href$='/explain']").first.click()
    assert page.locator("h1").inner_text().startswith("Why entry #")
    verdict = page.locator("#verdict-title").inner_text()
    assert verdict == "Allowed then, allowed now"
    assert "p, support_agent, *, subjects:read, view:support" in page.locator("main").inner_text()
    assert axe_violations(page) == []
    screenshot(page, "22-entry-explained")


def test_the_simulate_form_needs_its_csrf_token_and_the_permission(
    console: Console, page: Any
) -> None:
    sign_in(page, console, "compliance")
    refused = page.request.post(
        console.url + "/console/policy/simulate", multipart={"source": "version", "days": "30"}
    )
    assert refused.status == 403
    page.context.clear_cookies()
    sign_in(page, console, "agent")
    response = page.goto(console.url + "/console/policy")
    assert response is not None and response.status == 403


def test_a_read_whose_consent_was_withdrawn_since_is_explained_as_withheld_now(
    console: Console, page: Any
) -> None:
    vault, ada = console.vault, console.subjects["ada"]
    service = vault.client()
    grant(service, ada, "marketing")
    vault.client(**MARKETER).get(ada, "marketing", "marketing")
    withdraw(service, ada, "marketing")
    wait_for_checkpoint(vault)
    read = next(
        e for e in audit.iter_query(vault.app.db.engine, action="GetSubject")
        if "marketing" in e.entry.actor_roles
    )  # fmt: skip
    sign_in(page, console, "dpo")
    page.goto(f"{console.url}/console/audit/entries/{read.leaf_index}")
    page.click("text=Why was it decided so")
    assert page.locator("#verdict-title").inner_text() == "Allowed then, would be withheld now"
    main = page.locator("main").inner_text()
    assert "opt-out:marketing" in main and "grant marketing" in main
    assert axe_violations(page) == []
    screenshot(page, "23-entry-explained-withheld-now")
