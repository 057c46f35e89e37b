"""The compliance console in a real Chromium: a real vault on a loopback port, the console
served by uvicorn on another, and Debian's /usr/bin/chromium driven by Playwright.

Playwright's own browser download is never used (`playwright install` is not run);
without /usr/bin/chromium or the playwright package the browser tests are skipped with a
message, except under CI=true, where they fail (`.ci/run` installs Chromium).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.console_seed import PEOPLE, seed, wait_for_checkpoint
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.web import WebSettings, create_app

__all__ = ["PEOPLE", "seed", "wait_for_checkpoint"]

CHROMIUM = Path(os.environ.get("VAULT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE = Path(__file__).parent / "data" / "axe.min.js"
SIZES = {"wide": (1400, 900), "phone": (390, 844)}


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI=true the browser tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session (pages and contexts are per test)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[browser]')")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Clock:
    """The console's clock: real time plus an offset a test can move forward."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Console:
    vault: RunningVault
    url: str
    clock: Clock
    subjects: dict[str, str] = field(default_factory=dict)

    def token(self, who: str) -> str:
        return self.vault.token(**PEOPLE[who])


@contextmanager
def serving_console(settings: WebSettings, now: Callable[[], datetime]) -> Iterator[str]:
    """The console app under uvicorn on a free loopback port, in a thread."""
    config = uvicorn.Config(
        create_app(settings, now=now),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    """A seeded vault and the console in front of it (SQLite, embedded default)."""
    with running_vault(settings_for(tmp_path / "data", None)) as vault:
        subjects = seed(vault)
        wait_for_checkpoint(vault)
        clock = Clock()
        settings = WebSettings(
            vault_address=vault.address,
            audit_public_key=vault.settings.audit_public_key,
            restricted_fields=frozenset({"national_id"}),
            receipt_public_key=vault.settings.receipt_public_key,
        )
        with serving_console(settings, clock.now) as url:
            yield Console(vault, url, clock, subjects)


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, console: Console, who: str) -> None:
    page.goto(console.url + "/signin")
    page.fill("#token", console.token(who))
    page.click("button[type=submit]")
    # The click returns once the next page's headers arrive; its body may still stream.
    page.wait_for_load_state()


def shown(locator: Any) -> None:
    """Assert that the element is visible, waiting (up to Playwright's five seconds) for a
    page that is still loading. A bare `is_visible()` answers at once, and a page whose
    headers have arrived but not yet its body fails it: a flake seen in CI."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible()


def screenshot(page: Any, name: str) -> None:
    """The page at both sizes, into tests/browser/screenshots (git-ignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for label, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page (WCAG 2.x A and AA rules).

    The script is evaluated through the DevTools protocol, which the page's CSP does not
    govern; the console itself never serves it."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}
            });
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]
