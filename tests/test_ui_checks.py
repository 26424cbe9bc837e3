"""The inbox's Checks tab in Debian's chromium: each check on demand, explained, and a clear
state for a check that is not configured."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dns_server import dns_server

from mailtrap import Server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


@pytest.fixture
def page(make_server: Callable[..., Server]) -> Iterator[tuple[object, Server]]:
    with dns_server() as (zone, address):
        zone.add_txt("example.test", "v=spf1 ip4:127.0.0.1 -all")
        server = make_server(dns=address)
        with playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
            )
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.set_default_timeout(10000)
            yield tab, server
            browser.close()
            assert errors == []


def test_the_checks_tab_runs_each_check_when_opened_and_says_what_is_not_configured(
    page: tuple[object, Server], tmp_path: Path
) -> None:
    tab, server = page
    address = server.smtp_address
    html = "<p style='display:flex'>Sale</p><a href='https://example.test/x'>buy</a>"
    raw = f"From: shop@example.test\r\nSubject: Sale\r\nContent-Type: text/html\r\n\r\n{html}"
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.sendmail("shop@example.test", ["ann@example.test"], raw)
    tab.goto(server.http_url)  # type: ignore[attr-defined]
    tab.locator("#list .row").first.click()  # type: ignore[attr-defined]
    tab.get_by_role("tab", name="Checks").click()  # type: ignore[attr-defined]

    checks = tab.locator(".checks")  # type: ignore[attr-defined]
    checks.locator("summary", has_text="HTML compatibility").click()
    expect(checks).to_contain_text(re.compile(r"% of mail clients render what this message uses"))
    expect(checks).to_contain_text("display:flex")
    checks.locator("summary", has_text="Spam score").click()
    expect(checks).to_contain_text("Not configured: start Mailtrap with --spamassassin")
    checks.locator("summary", has_text="Authentication").click()
    expect(checks).to_contain_text("Authentication-Results: mailtrap;")
    expect(checks.locator("[data-check=auth] .check-badge").first).to_have_text("none")  # DKIM
    expect(checks).to_contain_text("SPF: whether the sending machine's address may send mail")
    checks.locator("summary", has_text="Links").click()
    expect(checks).to_contain_text("links are broken")  # example.test resolves nowhere here
    tab.screenshot(path=str(tmp_path / "checks.png"))  # type: ignore[attr-defined]
