"""The retention page after real retention runs: a notice, an anonymization, the
k-anonymity of the anonymized records, and the runs read back from the audit log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.browser.conftest import Clock, screenshot, serving_console, wait_for_checkpoint
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    customer,
    retention_vault,
)
from vault.web import WebSettings


def test_runs_notices_and_k_anonymity_after_a_real_run(tmp_path: Path, page: Any) -> None:
    clock = TestClock()
    with retention_vault(tmp_path / "data", None, clock) as vault:
        service = vault.client()
        dormant = [service.create(customer(n)).subject_id for n in range(6)]
        job = vault.app.retention_job
        clock.advance(timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1))
        job.run()  # notices for all six
        clock.advance(timedelta(days=NOTICE_DAYS + 1))
        vault.client().record_activity(dormant[0])  # keeps the first one
        job.run()  # anonymizes the other five
        wait_for_checkpoint(vault)
        settings = WebSettings(
            vault_address=vault.address, audit_public_key=vault.settings.audit_public_key
        )
        with serving_console(settings, Clock().now) as url:
            # The tokens come from the vault's (test) clock; the console only reads them.
            for roles, checks in (
                # The admin (retention:admin) sees the runs as the vault stored them,
                # each with its k-anonymity; the DPO sees them from the audit log.
                (("admin",), ("k-anonymity", "5 records in", "5/5 groups below k=5")),
                (("dpo",), ("Last retention runs", "needs retention:admin")),
            ):
                page.goto(url + "/signin")
                page.fill("#token", vault.token(principal="p-1", roles=roles))
                page.click("button[type=submit]")
                page.goto(url + "/console/retention")
                text = page.locator("main").inner_text()
                for check in checks:
                    assert check in text, (roles, check)
                if roles == ("admin",):
                    latest = page.locator("table.stack tbody tr").first.inner_text()
                    assert "5/5 groups below k=5" in latest
                if roles == ("dpo",):
                    run = page.locator("table.stack tbody tr").first.inner_text()
                    assert "5" in run  # anonymized in the latest run
                    screenshot(page, "14-retention-after-run-dpo")
                else:
                    screenshot(page, "14-retention-after-run-admin")
                page.context.clear_cookies()
