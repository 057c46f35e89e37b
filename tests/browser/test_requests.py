"""Data-subject requests in Chromium, as the people involved use them: a customer asks
for erasure in the privacy center and confirms it with the code the front end sent; the
DPO approves it on the console's Requests page with a reason; the customer sees it
fulfilled and their data gone. A rectification is decided (rejected) with its reason."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus
from customer_vault_client.gen.customervault.v1 import requests_pb2 as req

from tests.browser.conftest import Console, axe_violations, screenshot, shown, sign_in

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}
REQUEST_ID = re.compile(r"DSR-\d{8}-[A-Z2-7]{10}")


def _frontend(console: Console) -> Any:
    return console.vault.client(**FRONTEND)


def _open_privacy_center(console: Console, page: Any, subject_id: str) -> None:
    frontend = _frontend(console)
    link = frontend.call(
        frontend.customers,
        "CreateCustomerLink",
        cus.CreateCustomerLinkRequest(subject_id=subject_id),
    ).code
    page.goto(f"{console.url}/privacy/link?code={link}")
    page.get_by_role("button", name="Continue").click()
    assert page.url.endswith("/privacy/")


def _code_for(console: Console, request_id: str) -> str:
    """What the organization's front end does on the request's event: get a code and
    send it to the customer by e-mail (here: hand it to the test)."""
    frontend = _frontend(console)
    return str(
        frontend.call(
            frontend.customers,
            "IssueRequestVerificationCode",
            cus.IssueRequestVerificationCodeRequest(data_subject_request_id=request_id),
        ).code
    )


def test_a_customer_asks_for_erasure_confirms_and_sees_it_fulfilled(
    console: Console, chromium: Any
) -> None:
    ada = console.subjects["ada"]
    customer_context = chromium.new_context(viewport={"width": 1400, "height": 900})
    dpo_context = chromium.new_context(viewport={"width": 1400, "height": 900})
    try:
        customer = customer_context.new_page()
        _open_privacy_center(console, customer, ada)
        customer.get_by_role("link", name="Your requests").click()
        shown(customer.get_by_role("heading", name="Your requests", level=1))
        screenshot(customer, "r01-privacy-requests-empty")
        assert axe_violations(customer) == []

        customer.get_by_role("button", name="Ask for erasure").click()
        shown(customer.locator("#asked"))
        request_id = REQUEST_ID.search(customer.url)
        assert request_id is not None
        rid = request_id.group(0)
        mine = customer.locator(f"[id='{rid}']")
        assert "Waiting for you to confirm" in mine.inner_text()
        assert "We must answer by" in mine.inner_text()
        assert "GDPR art. 12(3)" in mine.inner_text()
        screenshot(customer, "r02-privacy-request-asked")
        assert axe_violations(customer) == []

        # A wrong code is refused and said so; the right one confirms.
        mine.get_by_label("Verification code").fill("AAAAA-AAAAA")
        mine.get_by_role("button", name="Confirm").click()
        assert "not right" in customer.locator(".error").inner_text()
        code = _code_for(console, rid)
        customer.locator(f"[id='{rid}']").get_by_label("Verification code").fill(code)
        customer.locator(f"[id='{rid}']").get_by_role("button", name="Confirm").click()
        shown(customer.locator("#confirmed"))
        assert "Being reviewed" in customer.locator(f"[id='{rid}']").inner_text()

        # The DPO approves it on the console's Requests page.
        dpo = dpo_context.new_page()
        sign_in(dpo, console, "dpo")
        dpo.goto(console.url + "/console/requests")
        row = dpo.locator("tr", has_text=rid)
        assert "Waiting for a decision" in row.inner_text()
        assert "days left" in row.inner_text()
        screenshot(dpo, "r03-console-requests")
        assert axe_violations(dpo) == []
        row.get_by_role("link", name=rid).click()
        shown(dpo.get_by_role("heading", name=re.compile("Erasure")))
        screenshot(dpo, "r04-console-request")
        assert axe_violations(dpo) == []
        dpo.get_by_label(re.compile("Approve:")).check()
        dpo.get_by_label(re.compile("Reason")).fill("Identity confirmed; no legal hold.")
        dpo.get_by_role("button", name="Record the decision").click()
        assert f"{rid}: Fulfilled" in dpo.locator(".success").inner_text()
        assert rid in dpo.locator("tr", has_text=rid).inner_text()  # on the Decided tab
        screenshot(dpo, "r05-console-request-decided")

        # The customer sees it fulfilled, with the reason, and their data is gone.
        customer.goto(console.url + "/privacy/requests")
        mine = customer.locator(f"[id='{rid}']")
        assert "Fulfilled" in mine.inner_text()
        assert "Identity confirmed; no legal hold." in mine.inner_text()
        shown(customer.locator("#erased"))
        screenshot(customer, "r06-privacy-request-fulfilled")
        assert axe_violations(customer) == []
        customer.goto(console.url + "/privacy/")
        assert customer.url.endswith("/privacy/requests?gone=1")
        assert "ada.lovelace" not in customer.content()
        with console.vault.app.db.engine.connect() as conn:
            state = conn.execute(
                sa.text("SELECT state FROM subjects WHERE id = :id"), {"id": ada}
            ).scalar_one()
        assert state == "erased"

        customer.goto(console.url + "/privacy/language?to=zh&next=/privacy/requests")
        assert "您的请求" in customer.locator("h1").inner_text()
        assert "已完成" in customer.locator(f"[id='{rid}']").inner_text()
        screenshot(customer, "r07-privacy-requests-zh")
    finally:
        customer_context.close()
        dpo_context.close()


def test_the_dpo_rejects_a_correction_and_an_unconfirmed_request_cannot_be_decided(
    console: Console, chromium: Any
) -> None:
    ada = console.subjects["ada"]
    customer_context = chromium.new_context(viewport={"width": 1400, "height": 900})
    dpo_context = chromium.new_context(viewport={"width": 1400, "height": 900})
    try:
        customer = customer_context.new_page()
        _open_privacy_center(console, customer, ada)
        customer.goto(console.url + "/privacy/requests")
        customer.get_by_label("What is wrong").select_option("city")
        customer.get_by_label("The right value").fill("Marylebone")
        customer.get_by_role("button", name="Ask for the correction").click()
        found = REQUEST_ID.search(customer.url)
        assert found is not None
        rid = found.group(0)
        assert "Correct my data: City" in customer.locator(f"[id='{rid}']").inner_text()

        dpo = dpo_context.new_page()
        sign_in(dpo, console, "dpo")
        dpo.goto(f"{console.url}/console/requests/{rid}")
        assert "cannot be decided yet" in dpo.locator("main").inner_text()
        assert dpo.get_by_role("button", name="Record the decision").count() == 0

        code = _code_for(console, rid)
        customer.locator(f"[id='{rid}']").get_by_label("Verification code").fill(code)
        customer.locator(f"[id='{rid}']").get_by_role("button", name="Confirm").click()

        dpo.goto(f"{console.url}/console/requests/{rid}")
        assert "Marylebone" in dpo.locator("main").inner_text()  # the DPO sees the proposal
        dpo.get_by_label(re.compile("Reject:")).check()
        dpo.get_by_label(re.compile("Reason")).fill("DSR-77: the address proof did not match.")
        dpo.get_by_role("button", name="Record the decision").click()
        assert f"{rid}: Rejected" in dpo.locator(".success").inner_text()

        customer.goto(console.url + "/privacy/requests")
        mine = customer.locator(f"[id='{rid}']")
        assert "Rejected" in mine.inner_text()
        assert "the address proof did not match" in mine.inner_text()
        customer.goto(console.url + "/privacy/")
        assert "Marylebone" not in customer.locator("dl.fields").inner_text()  # kept as it was

        # A compliance officer sees the queue but cannot decide.
        officer_context = chromium.new_context(viewport={"width": 390, "height": 844})
        try:
            officer = officer_context.new_page()
            sign_in(officer, console, "compliance")
            officer.goto(console.url + "/console/requests?show=decided")
            assert rid in officer.locator("main").inner_text()
            screenshot(officer, "r08-console-requests-decided")
            assert axe_violations(officer) == []
        finally:
            officer_context.close()
    finally:
        customer_context.close()
        dpo_context.close()


def test_a_decision_without_the_csrf_token_is_refused(console: Console, page: Any) -> None:
    sign_in(page, console, "dpo")
    response = page.request.post(
        f"{console.url}/console/requests/DSR-20270101-ABCDEFGHJK/decision",
        form={"decision": "approve", "reason": "forged"},
    )
    assert response.status == 403


def test_an_overdue_request_stands_out_in_the_queue(console: Console, page: Any) -> None:
    ada = console.subjects["ada"]
    customer = console.vault.client(principal=f"customer:{ada}", roles=("customer",), subject=ada)
    made = customer.call(
        customer.customers,
        "CreateDataSubjectRequest",
        cus.CreateDataSubjectRequestRequest(
            subject_id=ada, kind=req.DATA_SUBJECT_REQUEST_KIND_RESTRICTION, jurisdiction="CN"
        ),
    ).request
    customer.call(
        customer.customers,
        "VerifyDataSubjectRequest",
        cus.VerifyDataSubjectRequestRequest(
            data_subject_request_id=made.request_id, code=_code_for(console, made.request_id)
        ),
    )
    # As if received 40 days ago: well past 15 working days.
    with console.vault.app.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE subject_requests SET created_at = created_at - :d, "
                "deadline_at = deadline_at - :d WHERE id = :id"
            ),
            {"d": int(timedelta(days=40).total_seconds() * 1_000_000), "id": made.request_id},
        )
    sign_in(page, console, "dpo")
    page.goto(console.url + "/console/requests")
    row = page.locator("tr.overdue", has_text=made.request_id)
    assert "overdue" in row.inner_text()
    assert "PIPL" in row.inner_text()
    screenshot(page, "r09-console-requests-overdue")
    assert axe_violations(page) == []
