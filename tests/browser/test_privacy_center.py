"""A customer uses the privacy center in Chromium: open a one-time link, see their data,
withdraw a consent (and the next marketing read withholds the fields), opt out, send GPC,
download a receipt; a used link and another subject's data stay out of reach."""

from __future__ import annotations

import json
from typing import Any

from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus

from tests.browser.conftest import Console, axe_violations, screenshot, shown
from tests.integration.consent_support import MARKETER, grant

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}


def _link(console: Console, subject_id: str) -> str:
    frontend = console.vault.client(**FRONTEND)
    response = frontend.call(
        frontend.customers,
        "CreateCustomerLink",
        cus.CreateCustomerLinkRequest(subject_id=subject_id),
    )
    return f"{console.url}/privacy/link?code={response.code}"


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Continue").click()


def test_open_a_link_see_my_data_and_withdraw_marketing(console: Console, page: Any) -> None:
    ada = console.subjects["ada"]
    grant(console.vault.client(), ada, "marketing")
    marketer = console.vault.client(**MARKETER)
    assert "email" in marketer.get(ada, "marketing", "marketing").fields

    link = _link(console, ada)
    page.goto(link)
    screenshot(page, "p01-link")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Continue").click()
    assert page.url.endswith("/privacy/")
    shown(page.get_by_role("heading", name="Your data and your choices"))
    data = page.locator("dl.fields").inner_text()
    assert "ada.lovelace@example.com" in data
    assert "Lovelace" in data
    marketing = page.locator("#purpose-marketing")
    assert "Only with your consent" in marketing.inner_text()
    assert marketing.locator(".badge").inner_text() == "On"
    history = page.locator("#history").inner_text()
    assert "Our customer support looked at your data to answer your support request" in history
    assert "Our data protection officer prepared a copy of your data" in history
    assert (
        "this was refused: nothing was shown or changed" in history
    )  # the support agent's denied marketing read
    assert "agent-7" not in history and "dpo-1" not in history  # teams, not colleagues
    screenshot(page, "p02-overview")
    assert axe_violations(page) == []

    marketing.get_by_role("button", name="Withdraw consent").click()
    shown(page.locator("#saved"))
    assert page.locator("#purpose-marketing .badge").inner_text() == "Off"
    screenshot(page, "p03-withdrawn")
    after = marketer.get(ada, "marketing", "marketing")
    assert "email" not in after.fields
    assert {w.reason for w in after.withheld} == {"consent"}

    with page.expect_download() as download:
        page.locator("#saved a").click()
    receipt = json.loads(download.value.path().read_text())
    assert receipt, "the receipt is a JSON document"

    # The link worked once: the same link again is refused.
    page.context.clear_cookies()
    _open(page, link)
    assert "already been used or has expired" in page.locator(".error").inner_text()
    screenshot(page, "p04-link-used")


def test_opt_out_of_all_marketing_stops_every_marketing_purpose(
    console: Console, page: Any
) -> None:
    ada = console.subjects["ada"]
    grant(console.vault.client(), ada, "marketing")
    _open(page, _link(console, ada))
    page.locator("#purpose-all_marketing").get_by_role("button", name="Opt out").click()
    shown(page.locator("#saved"))
    assert "You opted out" in page.locator("#purpose-all_marketing").inner_text()
    assert "stopped by your opt-out" in page.locator("#purpose-marketing").inner_text()
    marketer = console.vault.client(**MARKETER)
    assert "email" not in marketer.get(ada, "marketing", "marketing").fields


def test_a_gpc_signal_is_recorded_as_an_opt_out_of_all_sharing(
    console: Console, chromium: Any
) -> None:
    ada = console.subjects["ada"]
    context = chromium.new_context(
        viewport={"width": 1400, "height": 900}, extra_http_headers={"Sec-GPC": "1"}
    )
    try:
        page = context.new_page()
        _open(page, _link(console, ada))
        shown(page.locator("#gpc"))
        assert "You opted out" in page.locator("#purpose-all_sharing").inner_text()
        screenshot(page, "p05-gpc")
        page.reload()
        assert page.locator("#gpc").count() == 0  # recorded once
    finally:
        context.close()
    consent = console.vault.client()
    from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb

    events = consent.call(
        consent.consent, "ListConsentEvents", cpb.ListConsentEventsRequest(subject_id=ada)
    ).events
    gpc = [e for e in events if e.purpose == "all_sharing"]
    assert len(gpc) == 1 and gpc[0].source.channel == cpb.CONSENT_CHANNEL_GPC


def test_without_a_session_or_with_a_forged_form_nothing_changes(
    console: Console, page: Any
) -> None:
    page.goto(console.url + "/privacy/")
    assert "open a new link" in page.locator("main").inner_text()
    ada = console.subjects["ada"]
    _open(page, _link(console, ada))
    response = page.request.post(
        console.url + "/privacy/consent",
        form={"purpose": "marketing", "action": "grant", "csrf_token": "forged"},
    )
    assert response.status == 403
    # A customer's session opens no console page: it is sent back to its own pages.
    page.goto(console.url + "/console/audit")
    assert page.url.endswith("/privacy/")


def test_switch_to_chinese_and_chinese_from_accept_language(
    console: Console, chromium: Any
) -> None:
    ada = console.subjects["ada"]
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        _open(page, _link(console, ada))
        assert page.locator("html").get_attribute("lang") == "en"
        page.get_by_role("link", name="简体中文").click()
        assert page.url.endswith("/privacy/")
        assert page.locator("html").get_attribute("lang") == "zh-Hans"
        shown(page.get_by_role("heading", name="您的数据和您的选择"))
        assert "仅在您同意时进行" in page.locator("#purpose-marketing").inner_text()
        history = page.locator("#history").inner_text()
        assert "我们的客户服务团队查看了您的数据，用于回复您的客服请求。" in history  # noqa: RUF001 - Chinese punctuation
        screenshot(page, "p06-chinese")
        assert axe_violations(page) == []
        page.locator("#purpose-personalization").get_by_role("button", name="给予同意").click()
        assert page.locator("#saved").inner_text().startswith("您的选择已保存")
        page.get_by_role("link", name="English").click()
        shown(page.get_by_role("heading", name="Your data and your choices"))
    finally:
        context.close()
    chinese = chromium.new_context(locale="zh-CN")
    try:
        page = chinese.new_page()
        page.goto(_link(console, ada))
        shown(page.get_by_role("heading", name="打开您的隐私中心"))
        page.get_by_role("button", name="继续").click()
        shown(page.get_by_role("heading", name="您的数据和您的选择"))
    finally:
        chinese.close()


def test_download_my_data_signed_and_readable_and_verify_it(console: Console, page: Any) -> None:
    from vault.consent.receipts import verify_package

    ada = console.subjects["ada"]
    _open(page, _link(console, ada))
    page.get_by_role("link", name="Download your data").click()
    screenshot(page, "p07-download")
    assert axe_violations(page) == []
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the signed JSON file").click()
    document = download.value.path().read_bytes()
    package = verify_package(document, console.vault.settings.receipt_public_key.read_bytes())
    assert package["subject"]["subject_id"] == ada
    assert package["fields"]["email"]["value"] == "ada.lovelace@example.com"
    actors = {a["actor"] for a in package["access_history"]}
    assert actors <= {"", f"customer:{ada}"}  # teams, not colleagues
    assert all(a["justification"] == "" for a in package["access_history"])
    edited = document.replace(b"ada.lovelace", b"eve.lovelace")
    import pytest

    from vault.consent.receipts import ReceiptError

    with pytest.raises(ReceiptError):
        verify_package(edited, console.vault.settings.receipt_public_key.read_bytes())

    page.get_by_role("link", name="Open the readable copy").click()
    shown(page.get_by_role("heading", name="Your data", exact=True))
    assert "ada.lovelace@example.com" in page.locator("main").inner_text()
    assert "Our customer support looked at your data" in page.locator("main").inner_text()
    screenshot(page, "p08-readable")
    assert axe_violations(page) == []
    page.get_by_role("link", name="How to check the signature").click()
    assert "BEGIN PUBLIC KEY" in page.locator("#public-key").inner_text()
    screenshot(page, "p09-verify")
    assert axe_violations(page) == []


def _pdf_text_and_package(console: Console, document: bytes) -> tuple[str, dict[str, Any]]:
    """The PDF's text, and its attached signed package once its signature verified."""
    import hashlib
    import io

    from pypdf import PdfReader

    from vault.consent.receipts import verify_package

    reader = PdfReader(io.BytesIO(document))
    text = "\n".join(p.extract_text() for p in reader.pages)
    [attached] = reader.attachments["my-data-signed.json"]
    package = verify_package(attached, console.vault.settings.receipt_public_key.read_bytes())
    assert hashlib.sha256(attached).hexdigest() in text.replace("\n", "")
    return text, package


def test_download_my_data_as_a_signed_pdf_in_english_and_chinese(
    console: Console, page: Any
) -> None:
    ada = console.subjects["ada"]
    _open(page, _link(console, ada))
    page.get_by_role("link", name="Download your data").click()
    screenshot(page, "p10-download-pdf")
    assert axe_violations(page) == []
    with page.expect_download() as download:
        page.get_by_role("link", name="Download it as a PDF").click()
    assert download.value.suggested_filename == "my-data.pdf"
    text, package = _pdf_text_and_package(console, download.value.path().read_bytes())
    for heading in (
        "Your data",
        "The data we hold about you",
        "Your choices",
        "Who has used your data",
        "Signature",
    ):
        assert heading in text
    assert "ada.lovelace@example.com" in text
    assert package["subject"]["subject_id"] == ada
    assert package["fields"]["email"]["value"] == "ada.lovelace@example.com"

    page.get_by_role("link", name="How to check the PDF").click()
    shown(page.get_by_role("heading", name="The PDF"))
    screenshot(page, "p11-verify-pdf")
    assert axe_violations(page) == []

    page.get_by_role("link", name="简体中文").click()
    page.goto(f"{console.url}/privacy/download")
    shown(page.get_by_role("link", name="下载 PDF 版本"))
    with page.expect_download() as chinese:
        page.get_by_role("link", name="下载 PDF 版本").click()
    text, package = _pdf_text_and_package(console, chinese.value.path().read_bytes())
    for heading in ("您的数据", "我们持有的关于您的数据", "您的选择", "谁使用过您的数据", "签名"):
        assert heading in text
    assert "?" not in text.split("ada.lovelace@example.com")[0]  # every glyph printed
    assert package["subject"]["subject_id"] == ada
