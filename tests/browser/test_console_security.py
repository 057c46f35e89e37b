"""The console's security promises, over real HTTP to the running console and vault:
no page without a session, forged and expired tokens refused, CSRF on every form, strict
headers and cookies, the token never in a page or URL, no personal data in the console's
logs, and each person seeing only what the vault's policy allows them."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.browser.conftest import PEOPLE, Console, screenshot, serving_console, shown, sign_in
from tests.data import ADA, GRACE
from vault.clock import SystemClock
from vault.identity import TokenIssuer
from vault.principal import Principal
from vault.web import WebSettings
from vault.web.security import CONTENT_SECURITY_POLICY

PAGES = (
    "/console/",
    "/console/audit",
    "/console/audit.json",
    "/console/audit/entries/0",
    "/console/subjects",
    "/console/subjects/sub_abc/report",
    "/console/subjects/sub_abc/report.pdf",
    "/console/integrity",
    "/console/retention",
)
FORMS = (
    "/signout",
    "/console/integrity/verify",
    "/console/retention/holds",
    "/console/retention/holds/lift",
)


def http(console: Console) -> httpx.Client:
    return httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)


def signed_in(console: Console, who: str) -> tuple[httpx.Client, str]:
    """An HTTP client with a session for `who`, and the session's CSRF token."""
    client = http(console)
    form = client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post("/signin", data={"csrf_token": csrf.group(1), "token": console.token(who)})
    assert answer.status_code == 303, answer.text
    page = client.get("/console/subjects")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return client, token.group(1)


def sign_in_with(console: Console, token: str) -> httpx.Response:
    with http(console) as client:
        form = client.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        return client.post("/signin", data={"csrf_token": csrf.group(1), "token": token})


def test_no_page_without_a_session(console: Console) -> None:
    with http(console) as client:
        for path in PAGES:
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/signin"), path
        for path in FORMS:
            answer = client.post(
                path, data={"csrf_token": "x", "subject_id": "sub_a", "reason": "r"}
            )
            assert answer.status_code in (303, 403), path
            assert "legal hold" not in answer.text
        # A made-up session cookie is no session.
        client.cookies.set("cv_session", "A" * 43)
        assert client.get("/console/").status_code == 303


def test_forged_expired_and_malformed_tokens_are_refused(console: Console, tmp_path: Any) -> None:
    forged = _forged_token(console, tmp_path)
    answer = sign_in_with(console, forged)
    assert answer.status_code == 401
    assert "did not accept this token" in answer.text
    assert "cv_session" not in answer.headers.get("set-cookie", "")

    expired = _issuer(console, SystemClock(), offset=timedelta(hours=-2)).issue(
        Principal("dpo-1", "acme", frozenset({"dpo"}), MappingProxyType({})), timedelta(hours=1)
    )
    answer = sign_in_with(console, expired)
    assert answer.status_code == 401 and "expired" in answer.text

    for garbage in ("", "not a token", "a.b.c", "x" * 9000):
        answer = sign_in_with(console, garbage)
        assert answer.status_code == 401, garbage[:20]
        assert "cv_session" not in answer.headers.get("set-cookie", "")
    # The vault's log holds the forged attempt as an unauthenticated call.
    with console.vault.app.db.engine.connect() as conn:
        actors = (
            conn.execute(
                sa.text("SELECT actor FROM audit_entries WHERE action = 'GetLatestCheckpoint'")
            )
            .scalars()
            .all()
        )
    assert "(unauthenticated)" in actors


def test_a_session_ends_with_its_token(console: Console) -> None:
    client, _ = signed_in(console, "dpo")
    try:
        assert client.get("/console/integrity").status_code == 200
        console.clock.offset = timedelta(minutes=11)  # tokens of the fixture live 10 minutes
        answer = client.get("/console/integrity")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/signin")
    finally:
        client.close()


def test_every_form_needs_the_sessions_csrf_token(console: Console) -> None:
    ada = console.subjects["ada"]
    client, csrf = signed_in(console, "dpo")
    try:
        for token in (None, "", "wrong", csrf[:-1] + ("A" if csrf[-1] != "A" else "B")):
            data = {"subject_id": ada, "reason": "MATTER-9"}
            if token is not None:
                data["csrf_token"] = token
            for path in FORMS:
                answer = client.post(path, data=data)
                assert answer.status_code == 403, (path, token)
        holds = client.get("/console/retention").text
        assert "MATTER-9" not in holds  # nothing was done
        assert client.get("/console/").status_code == 200  # still signed in
        answer = client.post("/console/retention/holds", data={**data, "csrf_token": csrf})
        assert answer.status_code == 200 and "MATTER-9" in answer.text
    finally:
        client.close()
    # The sign-in form too: its token must match its cookie.
    with http(console) as fresh:
        answer = fresh.post("/signin", data={"token": console.token("dpo"), "csrf_token": "x"})
        assert answer.status_code == 403
        assert "cv_session" not in answer.headers.get("set-cookie", "")


def test_headers_cookies_and_the_token_stay_where_they_belong(console: Console, page: Any) -> None:
    client, _ = signed_in(console, "dpo")
    token = console.token("dpo")
    try:
        answer = sign_in_with(console, token)
        cookie = answer.headers["set-cookie"]
        assert "cv_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on loopback; see the TLS test below
        for path in (*PAGES[:2], "/console/integrity", "/signin", "/static/style.css"):
            answer = client.get(path)
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
            if not path.startswith("/static"):
                assert answer.headers["cache-control"] == "no-store"
    finally:
        client.close()
    sign_in(page, console, "dpo")
    visited = []
    complaints: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    page.on("console", lambda message: complaints.append(message.text))
    for path in (
        "/console/",
        "/console/audit",
        f"/console/subjects/{console.subjects['ada']}",
        f"/console/subjects/{console.subjects['ada']}/report",
        "/console/integrity",
        "/console/retention",
    ):
        page.goto(console.url + path)
        html = page.content()
        assert console.token("dpo")[:40] not in html
        assert "<script" not in html  # no script at all, inline or not
    jwt_shaped = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.")  # header.payload.
    assert not [url for url in visited if jwt_shaped.search(url)]
    assert not [url for url in visited if not url.startswith(console.url)]  # nothing external
    assert complaints == []  # no Content-Security-Policy violation, no error
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["cv_session"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"


def test_cookies_are_secure_when_served_over_tls(console: Console) -> None:
    settings = WebSettings(vault_address=console.vault.address, secure_cookies=True)
    with (
        serving_console(settings, console.clock.now) as url,
        httpx.Client(base_url=url, follow_redirects=False) as client,
    ):
        form = client.get("/signin")
        assert "Secure" in form.headers["set-cookie"]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        # A client sends a Secure cookie over TLS only; this test speaks plain HTTP to a
        # console told it is behind TLS, so it hands the cookie over itself.
        answer = client.post(
            "/signin",
            data={"csrf_token": csrf.group(1), "token": console.token("dpo")},
            headers={"cookie": f"cv_signin={form.cookies['cv_signin']}"},
        )
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]


def test_no_personal_data_in_the_consoles_logs(
    console: Console, page: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ada = console.subjects["ada"]
    sign_in(page, console, "dpo")
    # Someone types an e-mail address into the filters: it must not reach a log line.
    page.goto(console.url + "/console/audit?actor=ada.lovelace@example.com")
    page.goto(console.url + "/console/subjects?subject=Ada.Lovelace@Example.COM")
    for path in ("/console/", f"/console/subjects/{ada}", f"/console/subjects/{ada}/report"):
        page.goto(console.url + path)
    page.goto(console.url + "/console/integrity")
    page.get_by_role("button", name="Run verification").click()
    page.wait_for_load_state()  # the verdict streams in; wait for the end
    text = "\n".join(record.getMessage() for record in caplog.records).lower()
    assert "get /console/subjects/" + ada in text  # the console did log its requests
    for record in (ADA, GRACE):
        for value in record.values():
            for piece in (value.strip().lower(), *value.strip().lower().split()):
                if len(piece) >= 5:
                    assert piece not in text, piece
    assert console.token("dpo")[:40].lower() not in text


def test_a_support_agent_sees_only_what_the_policy_allows(console: Console, page: Any) -> None:
    sign_in(page, console, "agent")
    assert page.url.endswith("/console/")  # the token is the vault's: signed in
    shown(page.get_by_role("heading", name="Not allowed"))
    assert "does not let agent-7 (support_agent) read the audit log" in page.content()
    screenshot(page, "11-denied-support-agent")
    for path in (
        "/console/audit",
        "/console/audit/entries/0",
        f"/console/subjects/{console.subjects['ada']}",
        f"/console/subjects/{console.subjects['ada']}/report",
        "/console/integrity",
    ):
        response = page.goto(console.url + path)
        assert response.status == 403, path
        assert page.locator(".sentence").count() == 0
        assert console.subjects["grace"] not in page.content()
    response = page.request.get(console.url + "/console/audit.json")
    assert response.status == 403
    page.goto(console.url + "/console/retention")
    assert page.locator(".success, table").count() == 0  # no report, holds or notices
    assert console.subjects["grace"] not in page.content()
    # Each refusal is in the audit log, as agent-7.
    with console.vault.app.db.engine.connect() as conn:
        denied = (
            conn.execute(
                sa.text(
                    "SELECT action FROM audit_entries WHERE actor = 'agent-7' AND decision = 'deny'"
                )
            )
            .scalars()
            .all()
        )
    for action in (
        "QueryEntries",
        "GetEntry",
        "SubjectHistory",
        "GetLatestCheckpoint",
        "ListLegalHolds",
    ):
        assert action in denied, action


def test_an_administrator_sees_retention_but_no_audit_entries(console: Console, page: Any) -> None:
    sign_in(page, console, "admin")
    page.goto(console.url + "/console/retention")
    shown(page.get_by_role("heading", name="Retention report"))
    assert "k-anonymity" in page.content()
    assert console.subjects["grace"] in page.content()  # the hold, by subject id only
    screenshot(page, "12-retention-admin")
    assert page.goto(console.url + "/console/audit").status == 403
    page.goto(console.url + "/console/integrity")
    assert "does not let your roles read the checkpoint (audit:read)" in page.content()
    page.get_by_role("button", name="Run verification").click()  # audit:verify, not read
    page.wait_for_load_state()  # the verdict streams in; wait for the end
    assert "The log verified" in page.locator("div.verdict").inner_text()


class _Shifted:
    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _issuer(console: Console, clock: Any, offset: timedelta = timedelta(0)) -> TokenIssuer:
    return TokenIssuer(
        console.vault.settings.token_private_key.read_bytes(),
        issuer=console.vault.settings.token_issuer,
        audience=console.vault.settings.token_audience,
        clock=_Shifted(offset),
    )


def _forged_token(console: Console, tmp_path: Any) -> str:
    """A token with the right claims, signed by a key the vault does not trust."""
    from vault import key_custody
    from vault.config import Settings

    other = Settings(data_dir=tmp_path / "other")
    key_custody.init_keys(other)
    issuer = TokenIssuer(
        other.token_private_key.read_bytes(),
        issuer=console.vault.settings.token_issuer,
        audience=console.vault.settings.token_audience,
        clock=SystemClock(),
    )
    who = Principal("dpo-1", "acme", frozenset({"dpo"}), MappingProxyType({}))
    return issuer.issue(who, timedelta(minutes=5))


def test_values_from_the_log_are_escaped(console: Console, page: Any) -> None:
    hostile = '<img src=x onerror="document.title=1"><script>document.title=2</script>'
    lead = console.vault.client(**PEOPLE["lead"])
    lead.reveal(console.subjects["ada"], "national_id", "support", hostile)
    sign_in(page, console, "dpo")
    page.goto(console.url + f"/console/subjects/{console.subjects['ada']}")
    assert hostile in page.locator(".timeline").inner_text()  # shown as text
    assert page.locator(".timeline img, .timeline script").count() == 0
    assert page.title().endswith("Customer Vault")


def test_a_vault_that_does_not_answer_is_said_so(console: Console) -> None:
    settings = WebSettings(vault_address="127.0.0.1:1")
    with (
        serving_console(settings, console.clock.now) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=60) as client,
    ):
        form = client.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        answer = client.post(
            "/signin", data={"csrf_token": csrf.group(1), "token": console.token("dpo")}
        )
        assert answer.status_code == 503 and "not answering" in answer.text
        assert "cv_session" not in answer.headers.get("set-cookie", "")
