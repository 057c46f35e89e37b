"""A dormant customer sees the anonymization date in the privacy center and keeps the
account with one button, which records activity and closes the notice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from customer_vault_client.gen.customervault.v1 import customers_pb2 as cus

from tests.browser.conftest import axe_violations, screenshot, serving_console, shown
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    customer,
    retention_vault,
)
from vault.storage import subjects
from vault.subject import SubjectState
from vault.web import WebSettings

FRONTEND: dict[str, Any] = {"principal": "shop-frontend", "roles": ("frontend",)}


def test_a_dormancy_notice_and_keep_my_account(tmp_path: Path, page: Any) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", None, clock) as vault:
        subject = vault.client().create(customer(1)).subject_id
        clock.advance(timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1))
        vault.app.retention_job.run()
        frontend = vault.client(**FRONTEND)
        notice = frontend.call(
            frontend.customers,
            "GetDormancyNotice",
            cus.GetDormancyNoticeRequest(subject_id=subject),
        )
        assert notice.open
        deadline = notice.deadline.ToDatetime().date().isoformat()
        code = frontend.call(
            frontend.customers,
            "CreateCustomerLink",
            cus.CreateCustomerLinkRequest(subject_id=subject),
        ).code
        settings = WebSettings(vault_address=vault.address)
        # The web app reads token expiry with this clock (the vault's test clock).
        with serving_console(settings, clock.now) as url:
            page.goto(f"{url}/privacy/link?code={code}")
            page.get_by_role("button", name="Continue").click()
            banner = page.locator("#dormancy")
            assert f"Your account will be anonymized on {deadline}" in banner.inner_text()
            history = page.locator("#history").inner_text()
            assert "Our systems noticed your account has not been used for a long time" in history
            screenshot(page, "p10-dormancy")
            assert axe_violations(page) == []
            banner.get_by_role("button", name="Keep my account").click()
            shown(page.locator("#kept"))
            assert page.locator("#dormancy").count() == 0
        again = frontend.call(
            frontend.customers,
            "GetDormancyNotice",
            cus.GetDormancyNoticeRequest(subject_id=subject),
        )
        assert not again.open
        with vault.app.db.read() as conn:
            row = subjects.get(conn, subject)
        assert row is not None and row.meta.state is SubjectState.ACTIVE
